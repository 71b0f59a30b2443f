// One DiLoCo lease's inner loop: H steps of the inner optimizer (train.optimizer, fresh state each
// round) from the round's parameters, on the lease's shard of each step. The same code runs in the
// gradient worker and in the single-process trainer, so both compute the same bits.
import { createOptimizer } from '../optim/optimizer';
import { learningRate } from '../optim/schedule';
import type { TrainConfig } from './config';
import type { DomainResult, StepResult } from './step';
import { updateRunningStats } from './update';

export interface InnerLoopResult {
  /** Round start − end: the pseudo-gradient the outer optimizer applies. */
  readonly delta: Float32Array;
  /** Batch-norm running statistics after the last inner step. */
  readonly buffers: Float32Array;
  /** Mean over the inner steps of the shard's mean loss. */
  readonly loss: number;
  /** Correct predictions summed over the inner steps. */
  readonly correct: number;
  /** DANN: the domain classifier's loss (mean over the inner steps) and correct count (summed), as loss and correct. */
  readonly domain?: DomainResult;
}

/**
 * Runs inner steps `first … first + count − 1` from `start` (not changed). `gradient(params, buffers,
 * step)` computes the lease's shard of global step `step`; its `grads` are the mean over the shard.
 */
export async function innerLoop(
  start: Float32Array,
  startBuffers: Float32Array,
  steps: { readonly first: number; readonly count: number },
  config: Pick<TrainConfig, 'optimizer' | 'schedule' | 'bnMomentum'>,
  mask: Uint8Array,
  gradient: (params: Float32Array, buffers: Float32Array, step: number) => Promise<Pick<StepResult, 'loss' | 'correct' | 'grads' | 'stats' | 'domain'>>,
): Promise<InnerLoopResult> {
  const params = start.slice();
  const buffers = startBuffers.slice();
  const optimizer = createOptimizer(config.optimizer, params.length);
  let loss = 0;
  let correct = 0;
  let domain: DomainResult | undefined;
  for (let step = steps.first; step < steps.first + steps.count; step++) {
    const r = await gradient(params, buffers, step);
    if (!Number.isFinite(r.loss)) throw new Error(`inner step ${step}: loss became ${r.loss}`);
    optimizer.step(params, r.grads, learningRate(config.optimizer.lr, config.schedule, step), mask);
    if (r.stats.length) updateRunningStats(buffers, r.stats, config.bnMomentum);
    loss += r.loss;
    correct += r.correct;
    if (r.domain) domain = { loss: (domain?.loss ?? 0) + r.domain.loss, correct: (domain?.correct ?? 0) + r.domain.correct };
  }
  const delta = new Float32Array(params.length);
  for (let i = 0; i < delta.length; i++) delta[i] = start[i] - params[i];
  return { delta, buffers, loss: loss / steps.count, correct, ...(domain ? { domain: { loss: domain.loss / steps.count, correct: domain.correct } } : {}) };
}
