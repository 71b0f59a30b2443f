// Runs a compiled graph on flat parameter/buffer vectors: the unit of work of every trainer and worker.
import type { CompiledGraph } from '../models/compile';
import { gradOutputName } from '../models/compile';
import { flatLayout, type TensorSlice } from '../models/params';
import { GraphSession, type Feed, type OrtApi, type SessionOptions } from '../onnx/session';

export type DataFeeds = Readonly<Record<string, Feed>>;

export interface StepResult {
  readonly loss: number;
  readonly correct: number;
  /** d(loss)/d(params), flat in parameter order. */
  readonly grads: Float32Array;
  /** Batch statistics, flat in buffer order (empty without batch norm). */
  readonly stats: Float32Array;
}

function feedFlat(feeds: Record<string, Feed>, slices: readonly TensorSlice[], flat: Float32Array, what: string, size: number): void {
  if (flat.length !== size) throw new Error(`${what}: ${flat.length} values, the graph needs ${size}`);
  for (const s of slices) feeds[s.name] = { data: flat.subarray(s.offset, s.offset + s.size), dims: s.shape };
}

function gather(out: Record<string, unknown>, slices: readonly TensorSlice[], size: number, name: (s: string) => string): Float32Array {
  const flat = new Float32Array(size);
  for (const s of slices) flat.set(out[name(s.name)] as Float32Array, s.offset);
  return flat;
}

/** A compiled graph bound to an ORT session, fed from flat vectors. */
export class GraphRunner {
  private readonly params: ReturnType<typeof flatLayout>;
  private readonly buffers: ReturnType<typeof flatLayout>;

  private constructor(
    readonly graph: CompiledGraph,
    private readonly session: GraphSession,
  ) {
    this.params = flatLayout(graph.params);
    this.buffers = flatLayout(graph.buffers);
  }

  static async create(ort: OrtApi, graph: CompiledGraph, options?: SessionOptions): Promise<GraphRunner> {
    return new GraphRunner(graph, await GraphSession.create(ort, graph.bytes, options));
  }

  get paramCount(): number {
    return this.params.size;
  }

  get bufferCount(): number {
    return this.buffers.size;
  }

  private feeds(params: Float32Array, buffers: Float32Array, data: DataFeeds): Record<string, Feed> {
    const feeds: Record<string, Feed> = { ...data };
    feedFlat(feeds, this.params.slices, params, 'parameters', this.params.size);
    feedFlat(feeds, this.buffers.slices, buffers, 'buffers', this.buffers.size);
    return feeds;
  }

  /** Training graph: loss, correct count, flat gradient and batch statistics. */
  async step(params: Float32Array, buffers: Float32Array, data: DataFeeds): Promise<StepResult> {
    const out = await this.session.run(this.feeds(params, buffers, data));
    return {
      loss: (out.loss as Float32Array)[0],
      correct: (out.correct as Float32Array)[0],
      grads: gather(out, this.params.slices, this.params.size, gradOutputName),
      stats: gather(out, this.buffers.slices, this.buffers.size, (n) => `stat.${n}`),
    };
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
