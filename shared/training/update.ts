// One optimizer step of a run: the update the single-process trainer and the coordinator both apply,
// from a batch's mean gradient and batch-norm statistics.
import type { Optimizer } from '../optim/optimizer';
import { learningRate } from '../optim/schedule';
import type { DilocoConfig } from './communication';
import type { TrainConfig } from './config';

/** What a step changes: parameters and optimizer state (by the optimizer), batch-norm running statistics. */
export interface ModelState {
  readonly params: Float32Array;
  readonly buffers: Float32Array;
  readonly optimizer: Optimizer;
  /** Which parameters weight decay applies to (models/params.ts decayMask). */
  readonly mask: Uint8Array;
}

/**
 * Blends batch statistics into running statistics. The batch variance is the biased one; PyTorch's
 * N/(N−1) correction is below 0.1 % at the ≥ 1024 values per channel these presets normalise over.
 */
export function updateRunningStats(buffers: Float32Array, stats: Float32Array, momentum: number): void {
  for (let k = 0; k < buffers.length; k++) buffers[k] = (1 - momentum) * buffers[k] + momentum * stats[k];
}

/** Applies global step `step` (0-based) of a run: the schedule's learning rate, then the running statistics. */
export function applyUpdate(state: ModelState, grads: Float32Array, stats: Float32Array, step: number, config: Pick<TrainConfig, 'optimizer' | 'schedule' | 'bnMomentum'>): void {
  state.optimizer.step(state.params, grads, learningRate(config.optimizer.lr, config.schedule, step), state.mask);
  if (stats.length) updateRunningStats(state.buffers, stats, config.bnMomentum);
}

/**
 * Applies a DiLoCo round: the outer optimizer (model.optimizer, outerOptimizer(diloco)) steps on the
 * leases' mean parameter delta, and the running statistics become the leases' mean.
 */
export function applyOuterUpdate(state: ModelState, delta: Float32Array, buffers: Float32Array, diloco: DilocoConfig): void {
  state.optimizer.step(state.params, delta, diloco.outerLr);
  if (buffers.length) state.buffers.set(buffers);
}
