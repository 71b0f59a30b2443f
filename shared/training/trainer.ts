// The single-process trainer: the reference the distributed runtime must equal.
import type { AutodiffOptions } from '../autodiff/rule';
import { firstExamples, type Cifar10, type CifarSplit } from '../data/cifar';
import { buildEvalGraph, buildTrainingGraph, trainingLayout } from '../models/compile';
import type { Domain } from '../models/layers';
import { adaptBatchNorm } from './adabn';
import { TEXT_DIM } from '../models/heads';
import { decayMask, initBuffers, initParameters } from '../models/params';
import type { OrtApi, SessionOptions } from '../onnx/session';
import { createOptimizer, restoreOptimizer } from '../optim/optimizer';
import { placeholderCaptions } from './caption-feed';
import type { EpochReport, TrainerState } from './checkpoint';
import { checkTrainConfig, type TrainConfig } from './config';
import { BatchFeeder } from './feeder';
import { RunPlan } from './plan';
import { GraphRunner, type RunLayout, type StepResult } from './step';
import { StepAggregator, type StepMean } from './step-aggregator';
import { applyOuterUpdate, applyUpdate, type ModelState } from './update';
import { flatLayout } from '../models/params';
import { roundTrip } from '../wire/codec';
import { gradientCodec, gradientFrameBytes, outerOptimizer, paramsCodec, paramsFrameBytes, RoundPlan, type CompressionConfig, type DilocoConfig } from './communication';
import { ErrorFeedback } from './error-feedback';
import { innerLoop } from './local-sgd';

export interface StepProgress {
  readonly epoch: number;
  readonly stepInEpoch: number;
  readonly stepsPerEpoch: number;
  readonly loss: number;
  /** The live parameters after this step's update (read, don't keep: the next step changes them). */
  readonly params: Float32Array;
}

export class NonFiniteLossError extends Error {
  constructor(
    readonly epoch: number,
    readonly step: number,
    readonly loss: number,
  ) {
    super(`loss became ${loss} at epoch ${epoch + 1}, step ${step}: training stopped; parameters were not updated with this step`);
  }
}

export interface TrainOptions {
  readonly ort: OrtApi;
  readonly data: Cifar10;
  /**
   * A shifted target domain (a corruption of `data`, say): its test split is evaluated every epoch
   * beside the source's, and a DANN run trains on its train split's images (never their labels).
   */
  readonly target?: Cifar10;
  readonly config: TrainConfig;
  readonly resume?: TrainerState;
  /** Caption vectors [classes, captionsPerClass, 768] for the heads; seeded placeholders without. */
  readonly captions?: Float32Array;
  readonly onEpoch?: (report: EpochReport, state: TrainerState) => void | Promise<void>;
  readonly onStep?: (p: StepProgress) => void;
  /** Stop after this step (a checkpoint mid-epoch); default: the end of the run. */
  readonly untilStep?: number;
  /**
   * Examples per graph run ("ghost batch"): each step is computed as the cluster computes it, in
   * batch / ghostBatch slices of the step's examples whose gradients and batch-norm statistics are
   * averaged in float64. Default: the whole batch in one graph run.
   */
  readonly ghostBatch?: number;
  readonly autodiff?: AutodiffOptions;
  readonly sessionOptions?: SessionOptions;
  /**
   * Simulates a cluster's communication exactly as its workers and coordinator do it: each ghost batch
   * is a shard, computed by worker (shard mod `workers`) at the parameters it would fetch (the params
   * codec's round trip), sent through the gradient codec with that worker's error feedback; with
   * DiLoCo, each shard is a lease of H inner steps. Counts the bytes per epoch (EpochReport up/downBytes).
   */
  readonly communication?: {
    readonly compression: CompressionConfig;
    readonly diloco: DilocoConfig;
    readonly workers?: number;
    /** Churn: every N answers one worker (in turn) is replaced by a new one, its error-feedback residual lost. */
    readonly replaceWorkerEvery?: number;
  };
}

/** Loss and accuracy over one split with the eval graph, its sessions created once per run. */
export class Evaluator {
  private constructor(
    private readonly split: CifarSplit,
    /** Consecutive ranges of the split, each run at its own batch (a second graph covers a ragged tail). */
    private readonly parts: readonly { start: number; end: number; runner: GraphRunner; feeder: BatchFeeder }[],
  ) {}

  /** `layout`: the run's flat parameter layout (the training graph's, when the caller has it). */
  static async create(
    ort: OrtApi,
    config: TrainConfig,
    split: CifarSplit,
    captions: Float32Array,
    sessionOptions?: SessionOptions,
    layout: RunLayout = trainingLayout(config.model),
    domain: Domain = 'source',
  ): Promise<Evaluator> {
    const full = Math.floor(split.count / config.evalBatch) * config.evalBatch;
    const ranges = [
      { start: 0, end: full, batch: config.evalBatch },
      { start: full, end: split.count, batch: split.count - full },
    ].filter((r) => r.end > r.start);
    const parts = [];
    for (const r of ranges) {
      const graph = buildEvalGraph(config.model, r.batch, domain);
      parts.push({ start: r.start, end: r.end, runner: await GraphRunner.create(ort, graph, sessionOptions, layout), feeder: new BatchFeeder(graph, config, captions, r.batch) });
    }
    return new Evaluator(split, parts);
  }

  async evaluate(params: Float32Array, buffers: Float32Array): Promise<{ loss: number; accuracy: number }> {
    let loss = 0;
    let correct = 0;
    for (const { start, end, runner, feeder } of this.parts) {
      for (let first = start; first < end; first += feeder.batch) {
        const indices = Array.from({ length: feeder.batch }, (_, i) => first + i);
        const r = await runner.evaluate(params, buffers, feeder.feeds({ split: this.split, indices, epoch: 0, firstPosition: first }, false));
        loss += r.loss * feeder.batch;
        correct += r.correct;
      }
    }
    return { loss: loss / this.split.count, accuracy: correct / this.split.count };
  }

  async release(): Promise<void> {
    for (const p of this.parts) await p.runner.release();
  }
}

export async function train(opts: TrainOptions): Promise<TrainerState> {
  const plan = new RunPlan(checkTrainConfig(opts.config), opts.data.train.count);
  const { stepsPerEpoch } = plan;
  // RunPlan checked the schedule it resolved; the rest was checked above.
  const config: TrainConfig = { ...opts.config, schedule: plan.schedule };
  const split = firstExamples(opts.data.train, plan.trainCount);
  const ghostBatch = opts.ghostBatch ?? config.batch;
  if (!Number.isInteger(ghostBatch) || ghostBatch < 1 || config.batch % ghostBatch !== 0) {
    throw new RangeError(`ghost batch ${ghostBatch} must divide the batch ${config.batch}`);
  }
  const untilStep = Math.min(opts.untilStep ?? plan.totalSteps, plan.totalSteps);
  const graph = buildTrainingGraph(config.model, ghostBatch, opts.autodiff);
  const mask = decayMask(graph.params);
  const captions = opts.captions ?? placeholderCaptions(config.model.classes, config.model.captionsPerClass, TEXT_DIM);
  const feeder = new BatchFeeder(graph, config, captions, ghostBatch);
  const runner = await GraphRunner.create(opts.ort, graph, opts.sessionOptions);
  const target = opts.target;
  if (config.model.dann && !target) throw new Error('a DANN run needs a target domain to align to (TrainOptions.target: a shifted dataset)');
  if (config.model.dann && target!.train.count < plan.trainCount) throw new Error(`the target domain has ${target!.train.count} train images, fewer than the ${plan.trainCount} source images a DANN epoch pairs them with`);
  const evaluators: Evaluator[] = [];
  const evaluatorOf = async (split: CifarSplit, domain: Domain) => {
    const e = await Evaluator.create(opts.ort, config, split, captions, opts.sessionOptions, graph, domain);
    evaluators.push(e);
    return e;
  };
  let evaluator: Evaluator;
  /** The target's test split, evaluated with its own statistics (DANN), else with the source's. */
  let targetEvaluator: Evaluator | undefined;
  try {
    evaluator = await evaluatorOf(opts.data.test, 'source');
    if (target) targetEvaluator = await evaluatorOf(target.test, config.model.dann ? 'target' : 'source');
  } catch (e) {
    await runner.release();
    for (const v of evaluators) await v.release();
    throw e;
  }
  /** The domain classifier over the epoch (DANN): summed mean losses and correct counts of every graph run. */
  const domainSums = { loss: 0, correct: 0, runs: 0 };

  const params = opts.resume?.params ?? initParameters(graph.params, config.seed);
  const buffers = opts.resume?.buffers ?? initBuffers(graph.buffers);
  const comm = opts.communication;
  if (comm?.compression.momentumCorrection && (config.optimizer.kind !== 'sgd' || config.optimizer.momentum !== 0)) {
    throw new RangeError(`momentum correction ${comm.compression.momentumCorrection} keeps the momentum on the workers: the optimizer must be SGD with momentum 0 (it is ${config.optimizer.kind}${config.optimizer.kind === 'sgd' ? ` with momentum ${config.optimizer.momentum}` : ''})`);
  }
  const diloco = comm && comm.diloco.innerSteps > 0 ? comm.diloco : undefined;
  // A DiLoCo run's own optimizer is the outer one; train.optimizer runs inside each lease.
  const optimizerConfig = diloco ? outerOptimizer(diloco) : config.optimizer;
  const optimizer = opts.resume
    ? restoreOptimizer(optimizerConfig, opts.resume.optimizer, params.length)
    : createOptimizer(optimizerConfig, params.length);
  const model: ModelState = { params, buffers, optimizer, mask };
  let state: TrainerState = opts.resume ?? { config, epoch: 0, step: 0, params, buffers, optimizer: optimizer.state, history: [] };
  let step = state.step;
  const runSliceAt = async (at: number, offset: number, p: Float32Array, b: Float32Array): Promise<StepResult> => {
    const ex = plan.examples(at, offset, ghostBatch);
    const dann = ex.dann && { split: target!.train, indices: ex.dann.indices, lambda: ex.dann.lambda };
    const r = await runner.step(p, b, feeder.feeds({ split, ...ex }, config.augment, dann));
    if (r.domain) {
      domainSums.loss += r.domain.loss;
      domainSums.correct += r.domain.correct;
      domainSums.runs++;
    }
    return r;
  };
  const runSlice = (offset: number) => runSliceAt(step, offset, params, buffers);
  const shards = config.batch / ghostBatch;
  const link = comm && communicationLink(comm.compression, Math.min(comm.workers ?? shards, shards), graph.params, buffers.length, config.model.dann, comm.replaceWorkerEvery);
  /** One step: the whole batch in one graph run, or ghost batches averaged as the coordinator averages shards. */
  const computeStep = async (): Promise<Pick<StepMean, 'grads' | 'stats' | 'loss' | 'correct'>> => {
    if (ghostBatch === config.batch && !link) return runSlice(0);
    const slices = new StepAggregator(step, shards, params.length, buffers.length);
    const seen = link ? link.fetch(params) : params;
    for (let slice = 0; slice < slices.shards; slice++) {
      const r = await runSliceAt(step, slice * ghostBatch, seen, buffers);
      slices.add({ shard: slice, worker: 'trainer', ...r, grads: link ? link.send(slice, r.grads) : r.grads });
    }
    return slices.mean();
  };
  const rounds = diloco && new RoundPlan(stepsPerEpoch, diloco.innerSteps);
  /** One DiLoCo round from `step`: every shard a lease of inner steps; returns the steps it covered. */
  const computeRound = async (): Promise<{ count: number; mean: StepMean }> => {
    const round = rounds!.roundStartingAt(step);
    if (round === undefined) throw new Error(`step ${step} is inside a DiLoCo round: resume at a round's start`);
    const { first, count } = rounds!.steps(round);
    const leases = new StepAggregator(step, shards, params.length, buffers.length);
    const seen = link!.fetch(params);
    for (let shard = 0; shard < shards; shard++) {
      const r = await innerLoop(seen, buffers, { first, count }, config, mask, (p, b, at) => runSliceAt(at, shard * ghostBatch, p, b));
      leases.add({ shard, worker: 'trainer', loss: r.loss, correct: r.correct, grads: link!.send(shard, r.delta), stats: r.buffers });
    }
    return { count, mean: leases.mean() };
  };
  try {
    // A resumed state may sit mid-epoch (a coordinator snapshot): the loop continues at its step.
    for (let epoch = Math.floor(step / stepsPerEpoch); epoch < config.epochs && step < untilStep; epoch++) {
      const started = performance.now();
      const firstStep = step;
      let lossSum = 0;
      let correct = 0;
      const epochEnd = Math.min((epoch + 1) * stepsPerEpoch, untilStep);
      for (; step < epochEnd && rounds; ) {
        const { count, mean } = await computeRound();
        applyOuterUpdate(model, mean.grads, mean.stats, diloco!);
        lossSum += mean.loss * count;
        correct += mean.correct;
        step += count;
        opts.onStep?.({ epoch, stepInEpoch: step - epoch * stepsPerEpoch, stepsPerEpoch, loss: mean.loss, params });
      }
      for (; step < epochEnd; ) {
        const r = await computeStep();
        if (!Number.isFinite(r.loss)) throw new NonFiniteLossError(epoch, step, r.loss);
        applyUpdate(model, r.grads, r.stats, step, config);
        lossSum += r.loss;
        correct += r.correct;
        step++;
        opts.onStep?.({ epoch, stepInEpoch: step - epoch * stepsPerEpoch, stepsPerEpoch, loss: r.loss, params });
      }
      if (step < (epoch + 1) * stepsPerEpoch) {
        // Stopped mid-epoch (untilStep): no evaluation, no report; the state records the step.
        state = { ...state, config, step, params, buffers, optimizer: optimizer.state };
        break;
      }
      const steps = step - firstStep;
      const trainSeconds = (performance.now() - started) / 1000;
      const test = await evaluator.evaluate(params, buffers);
      const report: EpochReport = {
        ...(await targetReport(epoch + 1 === config.epochs)),
        epoch: epoch + 1,
        trainLoss: lossSum / steps,
        trainAccuracy: correct / (steps * config.batch),
        testLoss: test.loss,
        testAccuracy: test.accuracy,
        seconds: (performance.now() - started) / 1000,
        trainImagesPerSecond: (steps * config.batch) / trainSeconds,
        ...(link ? link.traffic() : {}),
        ...domainReport(),
      };
      state = { config, epoch: epoch + 1, step, params, buffers, optimizer: optimizer.state, history: [...state.history, report] };
      await opts.onEpoch?.(report, state);
    }
  } finally {
    await runner.release();
    for (const v of evaluators) await v.release();
  }
  return state;

  /** Target accuracy; at the run's end, for a source-only model with batch norm, AdaBN's too. */
  async function targetReport(last: boolean): Promise<Partial<EpochReport>> {
    if (!targetEvaluator) return {};
    const t = await targetEvaluator.evaluate(params, buffers);
    const report = { targetLoss: t.loss, targetAccuracy: t.accuracy };
    if (!last || config.model.dann) return report;
    const adapted = await adaptBatchNorm(opts.ort, config, params, buffers, target!.train, captions, { sessionOptions: opts.sessionOptions });
    if (!adapted) return report;
    const a = await targetEvaluator.evaluate(params, adapted);
    return { ...report, adabnLoss: a.loss, adabnAccuracy: a.accuracy };
  }

  function domainReport(): Partial<EpochReport> {
    if (!domainSums.runs) return {};
    const report = { domainLoss: domainSums.loss / domainSums.runs, domainAccuracy: domainSums.correct / (domainSums.runs * 2 * ghostBatch) };
    domainSums.loss = domainSums.correct = domainSums.runs = 0;
    return report;
  }
}

/**
 * The simulated wire between `workers` workers and the coordinator: what a worker computes with when it
 * fetches a version, what the coordinator decodes from a shard's answer (through its worker's error
 * feedback), and the bytes both moved since the last `traffic()`.
 */
function communicationLink(compression: CompressionConfig, workers: number, layout: readonly { name: string; shape: readonly number[] }[], bufferCount: number, dann: boolean, replaceEvery = 0) {
  const segments = flatLayout(layout).slices.map((s) => s.size);
  const size = segments.reduce((a, b) => a + b, 0);
  const feedback = Array.from({ length: workers }, () => new ErrorFeedback(size, compression.momentumCorrection));
  const spec = gradientCodec(compression);
  let up = 0;
  let down = 0;
  let answers = 0;
  let replaced = 0;
  /** What replaced workers' residuals held, relative to the answer they were lost at (L2 norms). */
  let lostRatio = 0;
  return {
    /** Each worker fetches the version once (it takes shards of every step, or of every round). */
    fetch(params: Float32Array): Float32Array {
      down += workers * paramsFrameBytes(compression, segments, bufferCount);
      return compression.params === 'fp32' ? params : roundTrip(params, paramsCodec(compression), segments);
    },
    send(shard: number, values: Float32Array): Float32Array {
      up += gradientFrameBytes(compression, segments, bufferCount, dann);
      if (spec.codec === 'fp32') return values;
      const worker = feedback[shard % workers];
      const { sent } = worker.encode(values, spec, segments, compression.errorFeedback);
      if (replaceEvery && ++answers % replaceEvery === 0) {
        const lost = replaced % workers;
        lostRatio += norm(feedback[lost].residual) / norm(values);
        feedback[lost] = new ErrorFeedback(size, compression.momentumCorrection);
        replaced++;
      }
      return sent;
    },
    traffic(): { upBytes: number; downBytes: number; workersReplaced?: number; lostResidualRatio?: number } {
      const t = { upBytes: up, downBytes: down, ...(replaceEvery ? { workersReplaced: replaced, lostResidualRatio: replaced ? lostRatio / replaced : 0 } : {}) };
      up = down = 0;
      replaced = 0;
      lostRatio = 0;
      return t;
    },
  };
}

function norm(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}
