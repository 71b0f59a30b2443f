// The single-process trainer: the reference the distributed runtime must equal.
import type { AutodiffOptions } from '../autodiff/rule';
import { IMAGE_BYTES, type Cifar10, type CifarSplit } from '../data/cifar';
import { buildEvalGraph, buildTrainingGraph, trainingLayout } from '../models/compile';
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
import { applyUpdate, type ModelState } from './update';

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
  ): Promise<Evaluator> {
    const full = Math.floor(split.count / config.evalBatch) * config.evalBatch;
    const ranges = [
      { start: 0, end: full, batch: config.evalBatch },
      { start: full, end: split.count, batch: split.count - full },
    ].filter((r) => r.end > r.start);
    const parts = [];
    for (const r of ranges) {
      const graph = buildEvalGraph(config.model, r.batch);
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

function trainSubset(data: Cifar10, count: number): CifarSplit {
  if (count >= data.train.count) return data.train;
  return { images: data.train.images.subarray(0, count * IMAGE_BYTES), labels: data.train.labels.subarray(0, count), count };
}

export async function train(opts: TrainOptions): Promise<TrainerState> {
  const plan = new RunPlan(checkTrainConfig(opts.config), opts.data.train.count);
  const { stepsPerEpoch } = plan;
  // RunPlan checked the schedule it resolved; the rest was checked above.
  const config: TrainConfig = { ...opts.config, schedule: plan.schedule };
  const split = trainSubset(opts.data, plan.trainCount);
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
  const evaluator = await Evaluator.create(opts.ort, config, opts.data.test, captions, opts.sessionOptions, graph).catch(async (e: unknown) => {
    await runner.release();
    throw e;
  });

  const params = opts.resume?.params ?? initParameters(graph.params, config.seed);
  const buffers = opts.resume?.buffers ?? initBuffers(graph.buffers);
  const optimizer = opts.resume
    ? restoreOptimizer(config.optimizer, opts.resume.optimizer, params.length)
    : createOptimizer(config.optimizer, params.length);
  const model: ModelState = { params, buffers, optimizer, mask };
  let state: TrainerState = opts.resume ?? { config, epoch: 0, step: 0, params, buffers, optimizer: optimizer.state, history: [] };
  let step = state.step;
  const runSlice = (offset: number): Promise<StepResult> => {
    const ex = plan.examples(step, offset, ghostBatch);
    const dann = ex.dann && { split, indices: ex.dann.indices, lambda: ex.dann.lambda };
    return runner.step(params, buffers, feeder.feeds({ split, ...ex }, config.augment, dann));
  };
  /** One step: the whole batch in one graph run, or ghost batches averaged as the coordinator averages shards. */
  const computeStep = async (): Promise<Pick<StepMean, 'grads' | 'stats' | 'loss' | 'correct'>> => {
    if (ghostBatch === config.batch) return runSlice(0);
    const slices = new StepAggregator(step, config.batch / ghostBatch, params.length, buffers.length);
    for (let slice = 0; slice < slices.shards; slice++) slices.add({ shard: slice, worker: 'trainer', ...(await runSlice(slice * ghostBatch)) });
    return slices.mean();
  };
  try {
    // A resumed state may sit mid-epoch (a coordinator snapshot): the loop continues at its step.
    for (let epoch = Math.floor(step / stepsPerEpoch); epoch < config.epochs && step < untilStep; epoch++) {
      const started = performance.now();
      const firstStep = step;
      let lossSum = 0;
      let correct = 0;
      const epochEnd = Math.min((epoch + 1) * stepsPerEpoch, untilStep);
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
        epoch: epoch + 1,
        trainLoss: lossSum / steps,
        trainAccuracy: correct / (steps * config.batch),
        testLoss: test.loss,
        testAccuracy: test.accuracy,
        seconds: (performance.now() - started) / 1000,
        trainImagesPerSecond: (steps * config.batch) / trainSeconds,
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
