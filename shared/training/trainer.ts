// The single-process trainer: the reference the distributed runtime must equal.
import type { AutodiffOptions } from '../autodiff/rule';
import { IMAGE_BYTES, type Cifar10, type CifarSplit } from '../data/cifar';
import { CIFAR10_NORMALIZATION, SEED_NORMALIZATION, fillBatch, type Normalization } from '../data/normalize';
import { batches, epochOrder, mulberry32 } from '../data/shuffle';
import { buildEvalGraph, buildTrainingGraph, type CompiledGraph, type TensorSpec } from '../models/compile';
import { TEXT_DIM } from '../models/heads';
import { decayMask, initBuffers, initParameters } from '../models/params';
import type { Feed, OrtApi, SessionOptions } from '../onnx/session';
import { createOptimizer, restoreOptimizer } from '../optim/optimizer';
import { learningRate } from '../optim/schedule';
import { captionFeed, placeholderCaptions } from './captions';
import type { TrainerState } from './checkpoint';
import { checkTrainConfig, type TrainConfig } from './config';
import { GraphRunner, type DataFeeds } from './step';

export interface EpochReport {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
  /** Wall seconds of the epoch (training + evaluation). */
  readonly seconds: number;
  readonly trainImagesPerSecond: number;
}

export interface StepProgress {
  readonly epoch: number;
  readonly stepInEpoch: number;
  readonly stepsPerEpoch: number;
  readonly loss: number;
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
  readonly config: TrainConfig;
  readonly resume?: TrainerState;
  readonly onEpoch?: (report: EpochReport, state: TrainerState) => void | Promise<void>;
  readonly onStep?: (p: StepProgress) => void;
  readonly autodiff?: AutodiffOptions;
  readonly sessionOptions?: SessionOptions;
}

const NORMALIZATION: Record<TrainConfig['normalization'], Normalization> = { seed: SEED_NORMALIZATION, cifar: CIFAR10_NORMALIZATION };

/** DANN's reversal strength schedule (Ganin et al.): 2 / (1 + e^(−10p)) − 1 over progress p ∈ [0, 1]. */
export const dannLambda = (progress: number) => 2 / (1 + Math.exp(-10 * progress)) - 1;

/** Reusable input buffers and the feeds of one batch. */
class BatchFeeder {
  readonly image: Float32Array;
  readonly labels: BigInt64Array;
  private readonly target: Float32Array;
  private readonly targetLabels: BigInt64Array;
  private readonly fixed: Record<string, Feed> = {};
  private readonly norm: Normalization;

  constructor(
    private readonly graph: CompiledGraph,
    private readonly config: TrainConfig,
    private readonly captions: Float32Array,
    readonly batch: number,
  ) {
    this.image = new Float32Array(batch * IMAGE_BYTES);
    this.labels = new BigInt64Array(batch);
    this.target = new Float32Array(graph.dataInputs.some((d) => d.name === 'target_image') ? batch * IMAGE_BYTES : 0);
    this.targetLabels = new BigInt64Array(batch);
    this.norm = NORMALIZATION[config.normalization];
    for (const spec of graph.dataInputs) {
      if (spec.name === 'class_text' || spec.name === 'class_texts') this.fixed[spec.name] = this.caption(spec);
    }
  }

  private caption(spec: TensorSpec): Feed {
    return captionFeed(spec, this.captions, this.config.model.captionsPerClass, this.labels);
  }

  feeds(split: CifarSplit, indices: ArrayLike<number>, rng?: () => number, dann?: { targetIndices: ArrayLike<number>; lambda: number }): DataFeeds {
    const augment = rng ? { rng, padCrop: 4, flip: true } : undefined;
    fillBatch(split, indices, this.image, this.labels, this.norm, augment);
    const feeds: Record<string, Feed> = {
      ...this.fixed,
      image: { data: this.image, dims: [this.batch, 3, 32, 32] },
      label: { data: this.labels, dims: [this.batch] },
    };
    for (const spec of this.graph.dataInputs) if (spec.name === 'caption') feeds.caption = this.caption(spec);
    if (dann && this.target.length) {
      fillBatch(split, dann.targetIndices, this.target, this.targetLabels, this.norm, augment);
      toGrayscale(this.target);
      feeds.target_image = { data: this.target, dims: [this.batch, 3, 32, 32] };
      feeds.lambda = { data: new Float32Array([dann.lambda]), dims: [] };
    }
    return feeds;
  }
}

/**
 * The DANN target domain used here: the same images in grey (luma in all three channels), a
 * stand-in for an unlabeled domain with a real shift until users bring their own target data.
 */
function toGrayscale(images: Float32Array): void {
  const plane = 32 * 32;
  for (let base = 0; base < images.length; base += 3 * plane) {
    for (let i = 0; i < plane; i++) {
      const y = 0.299 * images[base + i] + 0.587 * images[base + plane + i] + 0.114 * images[base + 2 * plane + i];
      images[base + i] = images[base + plane + i] = images[base + 2 * plane + i] = y;
    }
  }
}

/** Loss and accuracy over one split with the eval graph, its sessions created once per run. */
export class Evaluator {
  private constructor(
    private readonly split: CifarSplit,
    /** Consecutive ranges of the split, each run at its own batch (a second graph covers a ragged tail). */
    private readonly parts: readonly { start: number; end: number; runner: GraphRunner; feeder: BatchFeeder }[],
  ) {}

  static async create(ort: OrtApi, config: TrainConfig, split: CifarSplit, captions: Float32Array, sessionOptions?: SessionOptions): Promise<Evaluator> {
    const full = Math.floor(split.count / config.evalBatch) * config.evalBatch;
    const ranges = [
      { start: 0, end: full, batch: config.evalBatch },
      { start: full, end: split.count, batch: split.count - full },
    ].filter((r) => r.end > r.start);
    const parts = [];
    for (const r of ranges) {
      const graph = buildEvalGraph(config.model, r.batch);
      parts.push({ start: r.start, end: r.end, runner: await GraphRunner.create(ort, graph, sessionOptions), feeder: new BatchFeeder(graph, config, captions, r.batch) });
    }
    return new Evaluator(split, parts);
  }

  async evaluate(params: Float32Array, buffers: Float32Array): Promise<{ loss: number; accuracy: number }> {
    let loss = 0;
    let correct = 0;
    for (const { start, end, runner, feeder } of this.parts) {
      for (let first = start; first < end; first += feeder.batch) {
        const indices = Array.from({ length: feeder.batch }, (_, i) => first + i);
        const r = await runner.evaluate(params, buffers, feeder.feeds(this.split, indices));
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

/**
 * Blends batch statistics into running statistics. The batch variance is the biased one; PyTorch's
 * N/(N−1) correction is below 0.1 % at the ≥ 1024 values per channel these presets normalise over.
 */
function updateRunningStats(buffers: Float32Array, stats: Float32Array, momentum: number): void {
  for (let k = 0; k < buffers.length; k++) buffers[k] = (1 - momentum) * buffers[k] + momentum * stats[k];
}

/** Optimizer steps per epoch (full batches of the possibly limited training set). */
export function epochSteps(trainCount: number, config: Pick<TrainConfig, 'batch' | 'trainLimit'>): number {
  const count = config.trainLimit ? Math.min(config.trainLimit, trainCount) : trainCount;
  return Math.floor(count / config.batch);
}

function trainSubset(data: Cifar10, limit: number): CifarSplit {
  if (!limit || limit >= data.train.count) return data.train;
  return { images: data.train.images.subarray(0, limit * IMAGE_BYTES), labels: data.train.labels.subarray(0, limit), count: limit };
}

export async function train(opts: TrainOptions): Promise<TrainerState> {
  const stepsPerEpoch = epochSteps(opts.data.train.count, opts.config);
  const totalSteps = stepsPerEpoch * opts.config.epochs;
  // A schedule with totalSteps 0 spans the whole run, which only the data size decides.
  const schedule = opts.config.schedule.totalSteps === 0 ? { ...opts.config.schedule, totalSteps } : opts.config.schedule;
  const config = checkTrainConfig({ ...opts.config, schedule });
  const split = trainSubset(opts.data, config.trainLimit);
  if (stepsPerEpoch === 0) throw new Error(`training set of ${split.count} images is smaller than one batch of ${config.batch}`);
  const graph = buildTrainingGraph(config.model, config.batch, opts.autodiff);
  const mask = decayMask(graph.params);
  const captions = placeholderCaptions(config.model.classes, config.model.captionsPerClass, TEXT_DIM);
  const feeder = new BatchFeeder(graph, config, captions, config.batch);
  const runner = await GraphRunner.create(opts.ort, graph, opts.sessionOptions);
  const evaluator = await Evaluator.create(opts.ort, config, opts.data.test, captions, opts.sessionOptions).catch(async (e: unknown) => {
    await runner.release();
    throw e;
  });

  const params = opts.resume?.params ?? initParameters(graph.params, config.seed);
  const buffers = opts.resume?.buffers ?? initBuffers(graph.buffers);
  const optimizer = opts.resume
    ? restoreOptimizer(config.optimizer, opts.resume.optimizer, params.length)
    : createOptimizer(config.optimizer, params.length);
  let state: TrainerState = opts.resume ?? { config, epoch: 0, step: 0, params, buffers, optimizer: optimizer.state, history: [] };
  let step = state.step;
  try {
    for (let epoch = state.epoch; epoch < config.epochs; epoch++) {
      const started = performance.now();
      const order = epochOrder(split.count, config.seed, epoch);
      const rng = config.augment ? mulberry32(config.seed * 7919 + epoch) : undefined;
      const targetOrder = config.model.dann ? epochOrder(split.count, config.seed + 1, epoch) : undefined;
      let lossSum = 0;
      let correct = 0;
      for (const [i, indices] of batches(order, config.batch).entries()) {
        const dann = targetOrder
          ? { targetIndices: targetOrder.subarray(i * config.batch, (i + 1) * config.batch), lambda: dannLambda(step / totalSteps) }
          : undefined;
        const r = await runner.step(params, buffers, feeder.feeds(split, indices, rng, dann));
        if (!Number.isFinite(r.loss)) throw new NonFiniteLossError(epoch, step, r.loss);
        optimizer.step(params, r.grads, learningRate(config.optimizer.lr, config.schedule, step), mask);
        if (r.stats.length) updateRunningStats(buffers, r.stats, config.bnMomentum);
        lossSum += r.loss;
        correct += r.correct;
        step++;
        opts.onStep?.({ epoch, stepInEpoch: i + 1, stepsPerEpoch, loss: r.loss });
      }
      const trainSeconds = (performance.now() - started) / 1000;
      const test = await evaluator.evaluate(params, buffers);
      const report: EpochReport = {
        epoch: epoch + 1,
        trainLoss: lossSum / stepsPerEpoch,
        trainAccuracy: correct / (stepsPerEpoch * config.batch),
        testLoss: test.loss,
        testAccuracy: test.accuracy,
        seconds: (performance.now() - started) / 1000,
        trainImagesPerSecond: (stepsPerEpoch * config.batch) / trainSeconds,
      };
      state = { config, epoch: epoch + 1, step, params, buffers, optimizer: optimizer.state, history: [...state.history, report] };
      await opts.onEpoch?.(report, state);
    }
  } finally {
    await runner.release();
    await evaluator.release();
  }
  return state;
}
