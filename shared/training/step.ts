// Runs a compiled graph on flat parameter/buffer vectors: the unit of work of every trainer and worker.
import type { CompiledGraph } from '../models/compile';
import { DOMAIN_CORRECT, DOMAIN_LOSS, gradOutputName } from '../models/compile';
import { flatLayout, type TensorSlice } from '../models/params';
import { GraphSession, type Feed, type OrtApi, type SessionOptions } from '../onnx/session';

export type DataFeeds = Readonly<Record<string, Feed>>;

/** A run's flat parameter and buffer layout, in order. */
export interface RunLayout {
  readonly params: readonly { name: string; shape: readonly number[] }[];
  readonly buffers: readonly { name: string; shape: readonly number[] }[];
}

export interface StepResult {
  readonly loss: number;
  readonly correct: number;
  /** d(loss)/d(params), flat in parameter order. */
  readonly grads: Float32Array;
  /** Batch statistics, flat in buffer order (empty without batch norm). */
  readonly stats: Float32Array;
  /** DANN: the domain classifier's mean loss and correct count over the source and target images. */
  readonly domain?: DomainResult;
}

export interface DomainResult {
  readonly loss: number;
  readonly correct: number;
}

/** A flat vector's layout, and the slices of it that one graph reads (an eval graph skips DANN's). */
interface FlatInputs {
  readonly size: number;
  readonly fed: readonly TensorSlice[];
}

function flatInputs(layout: readonly { name: string; shape: readonly number[] }[], graphInputs: readonly { name: string }[]): FlatInputs {
  const { slices, size } = flatLayout(layout);
  const names = new Set(graphInputs.map((s) => s.name));
  const fed = slices.filter((s) => names.has(s.name));
  if (fed.length !== names.size) throw new Error(`the graph reads tensors the flat layout does not hold: ${[...names].filter((n) => !fed.some((s) => s.name === n)).join(', ')}`);
  return { size, fed };
}

function feedFlat(feeds: Record<string, Feed>, inputs: FlatInputs, flat: Float32Array, what: string): void {
  if (flat.length !== inputs.size) throw new Error(`${what}: ${flat.length} values, the layout needs ${inputs.size}`);
  for (const s of inputs.fed) feeds[s.name] = { data: flat.subarray(s.offset, s.offset + s.size), dims: s.shape };
}

/**
 * Copies (`add` false) or adds each output tensor into its slice of `flat`: no flat copy of the
 * outputs per run, which are garbage already.
 */
function into(flat: Float32Array, out: Record<string, unknown>, slices: readonly TensorSlice[], name: (s: string) => string, add: boolean): void {
  for (const s of slices) {
    const values = out[name(s.name)] as Float32Array;
    if (!add) flat.set(values, s.offset);
    else for (let i = 0, o = s.offset; i < values.length; i++, o++) flat[o] += values[i];
  }
}

/** Where a training graph's gradient and statistics are summed over several runs. */
export interface StepSums {
  readonly grads: Float32Array;
  readonly stats: Float32Array;
}

/** A compiled graph bound to an ORT session, fed from flat vectors. */
export class GraphRunner {
  private readonly params: FlatInputs;
  private readonly buffers: FlatInputs;
  private readonly grads: ReturnType<typeof flatLayout>;
  private readonly stats: ReturnType<typeof flatLayout>;

  private constructor(
    readonly graph: CompiledGraph,
    private readonly session: GraphSession,
    layout: RunLayout,
  ) {
    this.params = flatInputs(layout.params, graph.params);
    this.buffers = flatInputs(layout.buffers, graph.buffers);
    this.grads = flatLayout(graph.params);
    this.stats = flatLayout(graph.buffers);
  }

  /**
   * `layout` is the run's flat parameter/buffer layout (the training graph's); an eval graph reads
   * the part of it that it uses. Defaults to the graph's own.
   */
  static async create(ort: OrtApi, graph: CompiledGraph, options?: SessionOptions, layout: RunLayout = graph): Promise<GraphRunner> {
    return new GraphRunner(graph, await GraphSession.create(ort, graph.bytes, options), layout);
  }

  get paramCount(): number {
    return this.params.size;
  }

  get bufferCount(): number {
    return this.buffers.size;
  }

  private feeds(params: Float32Array, buffers: Float32Array, data: DataFeeds): Record<string, Feed> {
    const feeds: Record<string, Feed> = { ...data };
    feedFlat(feeds, this.params, params, 'parameters');
    feedFlat(feeds, this.buffers, buffers, 'buffers');
    return feeds;
  }

  /** Training graph: loss, correct count, flat gradient and batch statistics. */
  async step(params: Float32Array, buffers: Float32Array, data: DataFeeds): Promise<StepResult> {
    const out = await this.session.run(this.feeds(params, buffers, data));
    const sums = { grads: new Float32Array(this.grads.size), stats: new Float32Array(this.stats.size) };
    return { ...this.results(out, sums, false), ...sums };
  }

  /**
   * Training graph, its gradient and statistics added into `sums`: gradient accumulation without a
   * flat copy per run, since in a Worker's 128 MB the copies of a lease's many runs outpace the collector.
   */
  async stepInto(params: Float32Array, buffers: Float32Array, data: DataFeeds, sums: StepSums): Promise<{ loss: number; correct: number; domain?: DomainResult }> {
    return this.results(await this.session.run(this.feeds(params, buffers, data)), sums, true);
  }

  private results(out: Record<string, unknown>, sums: StepSums, add: boolean): { loss: number; correct: number; domain?: DomainResult } {
    into(sums.grads, out, this.grads.slices, gradOutputName, add);
    into(sums.stats, out, this.stats.slices, (n) => `stat.${n}`, add);
    const scalar = (name: string) => (out[name] as Float32Array)[0];
    const domain = DOMAIN_LOSS in out ? { domain: { loss: scalar(DOMAIN_LOSS), correct: scalar(DOMAIN_CORRECT) } } : {};
    return { loss: scalar('loss'), correct: scalar('correct'), ...domain };
  }

  /** Statistics graph (buildStatsGraph): its batch statistics added into `stats` (flat, the graph's buffer order). */
  async statsInto(params: Float32Array, buffers: Float32Array, data: DataFeeds, stats: Float32Array): Promise<void> {
    into(stats, await this.session.run(this.feeds(params, buffers, data)), this.stats.slices, (n) => `stat.${n}`, true);
  }

  /** Eval graph: summed loss over the batch (mean × batch) and correct count. */
  async evaluate(params: Float32Array, buffers: Float32Array, data: DataFeeds): Promise<{ loss: number; correct: number }> {
    const out = await this.session.run(this.feeds(params, buffers, data), ['loss', 'correct']);
    return { loss: (out.loss as Float32Array)[0], correct: (out.correct as Float32Array)[0] };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
