export {
  type AdamConfig,
  defaultOptimizerConfig,
  isOptimizerKind,
  OPTIMIZER_KINDS,
  type OptimizerConfig,
  type OptimizerKind,
  parseOptimizerConfig,
  type SgdConfig,
  validateOptimizerConfig,
} from './config.js';
export {
  DECAY_KINDS,
  type DecayKind,
  defaultScheduleConfig,
  learningRate,
  parseScheduleConfig,
  type ScheduleConfig,
  validateScheduleConfig,
} from './schedule.js';
export {
  cloneOptimizerState,
  createOptimizer,
  type Optimizer,
  type OptimizerState,
  restoreOptimizer,
  slotCount,
} from './optimizer.js';
export { clipGradNorm, gradNorm } from './clip.js';
export type { ParseResult } from './validate.js';
