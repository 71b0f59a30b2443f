// The optimizer a run's coordinator keeps and the update it applies per coordinator step: train.optimizer
// on the mean gradient (synchronous SGD), or with DiLoCo the outer optimizer on the mean parameter delta
// of a round. Applied steps and the update log's replay after a restart both go through here.
import type { OptimizerConfig } from '../shared/optim/config';
import type { RunConfig } from '../shared/protocol';
import { communicationOf, outerOptimizer } from '../shared/training/communication';
import { applyOuterUpdate, applyUpdate, type ModelState } from '../shared/training/update';

/** The optimizer whose state the run stores (its slots, its step count). */
export function runOptimizer(config: RunConfig): OptimizerConfig {
  const { diloco } = communicationOf(config.cluster);
  return diloco.innerSteps > 0 ? outerOptimizer(diloco) : config.train.optimizer;
}

/** Applies coordinator step `step` (0-based): a mean gradient, or a round's mean delta; and the mean buffers or statistics. */
export function applyRunUpdate(model: ModelState, mean: { readonly grads: Float32Array; readonly stats: Float32Array }, step: number, config: RunConfig): void {
  const { diloco } = communicationOf(config.cluster);
  if (diloco.innerSteps > 0) applyOuterUpdate(model, mean.grads, mean.stats, diloco);
  else applyUpdate(model, mean.grads, mean.stats, step, config.train);
}
