// Computes leases: the training graph for a train lease (gradient, loss, batch statistics), the eval
// graph for an eval lease (summed loss, correct count). The same code runs in workerd, in a Node
// worker thread and in a browser Web Worker; only the ORT it is given differs.
import type { CifarSplit } from '../../shared/data/cifar';
import { buildEvalGraph, buildTrainingGraph } from '../../shared/models/compile';
import { TEXT_DIM } from '../../shared/models/heads';
import type { Domain } from '../../shared/models/layers';
import { evalGraphBatch } from '../../shared/memory-budget';
import type { OrtApi } from '../../shared/onnx/session';
import type { Lease, RunSpec, TrainLeaseRound } from '../../shared/protocol';
import { decayMask } from '../../shared/models/params';
import { innerLoop, type InnerLoopResult } from '../../shared/training/local-sgd';
import { BatchFeeder } from '../../shared/training/feeder';
import { graphBatchOf, graphHash, graphMismatch } from '../../shared/graph-hash';
import { GraphRunner, type DomainResult, type RunLayout, type StepResult } from '../../shared/training/step';

/** A lease's examples, gathered so that example i of the lease is record i. */
export interface LeaseExamples {
  readonly examples: CifarSplit;
  /** DANN: the target domain's unlabelled train examples at the same positions (lease.dann.indices). */
  readonly target?: CifarSplit;
  /** Per-image caption vectors [n, 768] (concat head with an image caption set). */
  readonly captions?: Float32Array;
}

export interface EvalResult {
  readonly lossSum: number;
  readonly correct: number;
  readonly count: number;
}

interface Bound {
  readonly runner: GraphRunner;
  readonly feeder: BatchFeeder;
}

const CAPTION_INPUTS = ['class_text', 'class_texts', 'caption'];

export class GradientEngine {
  /** Eval graphs by domain and batch. */
  private readonly evals = new Map<string, Promise<Bound>>();

  private constructor(
    private readonly ort: OrtApi,
    readonly spec: RunSpec,
    private readonly layout: RunLayout,
    private readonly captions: Float32Array,
    private readonly trainer: Bound,
    /** Which parameters the inner optimizer decays (DiLoCo leases). */
    private readonly mask: Uint8Array,
  ) {}

  /** `captions`: the run's caption vectors [classes, perClass, 768], read from KV (none for the linear head). */
  static async create(ort: OrtApi, spec: RunSpec, captions: Float32Array = new Float32Array(0)): Promise<GradientEngine> {
    const { train } = spec.config;
    const graphBatch = graphBatchOf(spec.config);
    const graph = buildTrainingGraph(train.model, graphBatch);
    const mismatch = graphMismatch(spec, await graphHash(graph.bytes));
    if (mismatch) throw new Error(mismatch);
    // The training graph holds every parameter and buffer of the run: it is the run's flat layout.
    const layout: RunLayout = graph;
    if (graph.dataInputs.some((d) => CAPTION_INPUTS.includes(d.name)) && captions.length === 0) {
      throw new Error(`run ${spec.runId}: the ${train.model.head} head reads caption vectors and the run names no caption set`);
    }
    const runner = await GraphRunner.create(ort, graph, undefined, layout);
    if (runner.paramCount !== spec.paramCount || runner.bufferCount !== spec.bufferCount) {
      await runner.release();
      throw new Error(`the compiled model has ${runner.paramCount} parameters / ${runner.bufferCount} buffer values; the run has ${spec.paramCount} / ${spec.bufferCount}`);
    }
    return new GradientEngine(ort, spec, layout, captions, { runner, feeder: new BatchFeeder(graph, train, captions, graphBatch) }, decayMask(graph.params));
  }

  /**
   * A train lease's answer: the mean gradient over its examples, or for a DiLoCo lease (`lease.inner`)
   * its round's parameter delta and final buffers (round()), in the same StepResult fields the loop sends.
   */
  train(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<StepResult> {
    if (lease.inner) return this.round(lease, lease.inner, params, buffers, data);
    return this.gradient(params, buffers, data, { count: lease.indices.length, epoch: lease.epoch, firstPosition: lease.firstPosition, lambda: lease.dann?.lambda });
  }

  /**
   * A DiLoCo lease: innerLoop from the version's parameters and buffers, inner step k on the lease's
   * examples [k × microBatch, (k + 1) × microBatch). `grads` is the delta (start − end), `stats` the
   * buffers after the last inner step, `loss` the mean inner loss, `correct` the sum (DANN: `domain`
   * likewise).
   */
  async round(lease: Lease, inner: TrainLeaseRound, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<StepResult> {
    const shard = lease.indices.length / inner.count;
    if (!Number.isInteger(shard) || inner.positions.length !== inner.count) throw new Error(`DiLoCo lease of ${lease.indices.length} examples does not split into its ${inner.count} inner steps`);
    const { train } = this.spec.config;
    let diverged: number | undefined;
    const loop = innerLoop(params, buffers, inner, train, this.mask, async (p, b, step) => {
      const k = step - inner.first;
      const r = await this.gradient(p, b, data, { offset: k * shard, count: shard, epoch: lease.epoch, firstPosition: inner.positions[k], lambda: inner.lambdas?.[k] });
      if (!Number.isFinite(r.loss)) diverged = r.loss;
      return r;
    });
    const r: InnerLoopResult = await loop.catch((e: unknown) => {
      if (diverged === undefined) throw e;
      // Answered as a non-finite loss, as a synchronous lease is: the coordinator counts divergence votes.
      return { loss: diverged, correct: 0, delta: new Float32Array(params.length), buffers: buffers.slice() };
    });
    return { loss: r.loss, correct: r.correct, grads: r.delta, stats: r.buffers, ...(r.domain ? { domain: r.domain } : {}) };
  }

  /**
   * The mean gradient over examples [offset, offset + count) of the gathered data. More examples than
   * the graph's batch run it on consecutive slices and average (gradient accumulation): the same
   * result, in a graph's memory.
   */
  private async gradient(params: Float32Array, buffers: Float32Array, data: LeaseExamples, at: { offset?: number; count: number; epoch: number; firstPosition: number; lambda?: number }): Promise<StepResult> {
    const n = at.count;
    const offset = at.offset ?? 0;
    const { runner, feeder } = this.trainer;
    const g = feeder.batch;
    if (n % g !== 0) throw new Error(`train lease of ${n} examples is not a whole number of graph batches of ${g}`);
    // The first graph run's vectors hold the lease's sum: later runs add into them.
    let sum: { loss: number; correct: number; grads: Float32Array; stats: Float32Array } | undefined;
    let domain: DomainResult | undefined;
    for (let first = 0; first < n; first += g) {
      const indices = Array.from({ length: g }, (_, i) => offset + first + i);
      const dann = at.lambda !== undefined && data.target ? { split: data.target, indices, lambda: at.lambda } : undefined;
      const captions = data.captions?.subarray((offset + first) * TEXT_DIM, (offset + first + g) * TEXT_DIM);
      const feeds = feeder.feeds({ split: data.examples, indices, epoch: at.epoch, firstPosition: at.firstPosition + first, captions }, this.spec.config.train.augment, dann);
      let r: { loss: number; correct: number; domain?: DomainResult };
      if (!sum) {
        const one = await runner.step(params, buffers, feeds);
        sum = { loss: one.loss, correct: one.correct, grads: one.grads, stats: one.stats };
        r = one;
      } else {
        r = await runner.stepInto(params, buffers, feeds, sum);
        sum.loss += r.loss;
        sum.correct += r.correct;
      }
      if (r.domain) domain = { loss: (domain?.loss ?? 0) + r.domain.loss, correct: (domain?.correct ?? 0) + r.domain.correct };
    }
    const parts = n / g;
    if (parts > 1) {
      sum!.loss /= parts;
      for (let i = 0; i < sum!.grads.length; i++) sum!.grads[i] /= parts;
      for (let i = 0; i < sum!.stats.length; i++) sum!.stats[i] /= parts;
    }
    if (!domain) return sum!;
    const domainLoss = parts > 1 ? domain.loss / parts : domain.loss;
    // A domain classifier gone non-finite is a diverged answer: reported as one (a non-finite loss), with
    // no domain figures, which a frame cannot carry non-finite.
    if (!Number.isFinite(domainLoss)) return { ...sum!, loss: domainLoss };
    return { ...sum!, domain: { loss: domainLoss, correct: domain.correct } };
  }

  /**
   * Summed loss and correct count over the lease's examples, in chunks of the eval graph batch: the
   * same sums as one graph over the whole lease, in a small graph's memory. A target eval lease of a
   * DANN run normalises with the target's own batch-norm statistics; otherwise with the source's.
   */
  async evaluate(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<EvalResult> {
    const n = lease.indices.length;
    const domain: Domain = lease.domain === 'target' && this.spec.config.train.model.dann ? 'target' : 'source';
    const chunk = Math.min(n, evalGraphBatch(this.spec.config));
    let lossSum = 0;
    let correct = 0;
    for (let first = 0; first < n; first += chunk) {
      const size = Math.min(chunk, n - first);
      const { runner, feeder } = await this.evalFor(size, domain);
      const indices = Array.from({ length: size }, (_, i) => first + i);
      const captions = data.captions?.subarray(first * TEXT_DIM, (first + size) * TEXT_DIM);
      const r = await runner.evaluate(params, buffers, feeder.feeds({ split: data.examples, indices, epoch: lease.epoch, firstPosition: lease.firstPosition + first, captions }, false));
      lossSum += r.loss * size;
      correct += r.correct;
    }
    return { lossSum, correct, count: n };
  }

  /** One eval graph per domain and chunk size (the full chunk and a ragged tail). */
  private evalFor(batch: number, domain: Domain): Promise<Bound> {
    const key = `${domain}:${batch}`;
    let bound = this.evals.get(key);
    if (!bound) {
      const graph = buildEvalGraph(this.spec.config.train.model, batch, domain);
      bound = GraphRunner.create(this.ort, graph, undefined, this.layout).then((runner) => ({ runner, feeder: new BatchFeeder(graph, this.spec.config.train, this.captions, batch) }));
      this.evals.set(key, bound);
    }
    return bound;
  }

  async release(): Promise<void> {
    await this.trainer.runner.release();
    for (const b of this.evals.values()) await (await b).runner.release();
  }
}
