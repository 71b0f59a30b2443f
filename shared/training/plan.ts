// Which examples form each step of a run: a pure function of the config and the data size, shared by
// the reference trainer and the coordinator so both feed the same batches.
import { epochOrder } from '../data/shuffle';
import { scheduleSchema, type ScheduleConfig } from '../optim/schedule';
import { schemaErrors } from '../schema/issues';
import type { TrainConfig } from './config';
import { dannLambda } from './feeder';

export type PlanConfig = Pick<TrainConfig, 'batch' | 'epochs' | 'seed' | 'trainLimit' | 'shuffleBlock' | 'schedule' | 'model'>;

/** The examples of one step (or of one shard of it). */
export interface StepExamples {
  readonly epoch: number;
  /** Position of indices[0] in the epoch order (the augmentation key). */
  readonly firstPosition: number;
  readonly indices: Uint32Array;
  /** DANN target examples at the same positions of the target order, and the reversal strength. */
  readonly dann?: { readonly indices: Uint32Array; readonly lambda: number };
}

export class RunPlan {
  /** Training examples used (the first `trainLimit` when set). */
  readonly trainCount: number;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  /** The schedule with totalSteps 0 ("the whole run") resolved. */
  readonly schedule: ScheduleConfig;
  private cached: { epoch: number; order: Uint32Array; target?: Uint32Array } | undefined;

  constructor(
    private readonly config: PlanConfig,
    available: number,
  ) {
    this.trainCount = config.trainLimit ? Math.min(config.trainLimit, available) : available;
    this.stepsPerEpoch = Math.floor(this.trainCount / config.batch);
    if (this.stepsPerEpoch === 0) throw new Error(`training set of ${this.trainCount} images is smaller than one batch of ${config.batch}`);
    this.totalSteps = this.stepsPerEpoch * config.epochs;
    this.schedule = config.schedule.totalSteps === 0 ? { ...config.schedule, totalSteps: this.totalSteps } : config.schedule;
    const errors = schemaErrors(scheduleSchema, this.schedule, 'schedule');
    if (errors.length) throw new Error(`for a run of ${this.totalSteps} steps: ${errors.join('; ')}`);
  }

  private orders(epoch: number): { order: Uint32Array; target?: Uint32Array } {
    if (this.cached?.epoch !== epoch) {
      const { seed, shuffleBlock, model } = this.config;
      this.cached = {
        epoch,
        order: epochOrder(this.trainCount, seed, epoch, shuffleBlock),
        target: model.dann ? epochOrder(this.trainCount, seed + 1, epoch, shuffleBlock) : undefined,
      };
    }
    return this.cached;
  }

  /** Examples [offset, offset + count) of global step `step`'s batch (the whole batch by default). */
  examples(step: number, offset = 0, count = this.config.batch - offset): StepExamples {
    if (!Number.isInteger(step) || step < 0 || step >= this.totalSteps) throw new Error(`step ${step} is outside 0..${this.totalSteps - 1}`);
    if (offset < 0 || count < 1 || offset + count > this.config.batch) throw new Error(`examples ${offset}..${offset + count} are outside the batch of ${this.config.batch}`);
    const epoch = Math.floor(step / this.stepsPerEpoch);
    const firstPosition = (step % this.stepsPerEpoch) * this.config.batch + offset;
    const { order, target } = this.orders(epoch);
    const range = (o: Uint32Array) => o.subarray(firstPosition, firstPosition + count);
    return {
      epoch,
      firstPosition,
      indices: range(order),
      dann: target ? { indices: range(target), lambda: dannLambda(step / this.totalSteps) } : undefined,
    };
  }
}
