// Everything that defines a training run, validated with one message per bad field.
import { DEFAULT_MODEL_CONFIG, modelConfigErrors, type ModelConfig } from '../models/presets';
import { defaultOptimizerConfig, validateOptimizerConfig, type OptimizerConfig } from '../optim/config';
import { defaultScheduleConfig, validateScheduleConfig, type ScheduleConfig } from '../optim/schedule';

export const NORMALIZATIONS = ['seed', 'cifar'] as const;
export type NormalizationName = (typeof NORMALIZATIONS)[number];

export interface TrainConfig {
  readonly model: ModelConfig;
  readonly optimizer: OptimizerConfig;
  /** Learning-rate schedule; `totalSteps` 0 means the whole run (epochs × steps per epoch). */
  readonly schedule: ScheduleConfig;
  readonly epochs: number;
  /** Global batch (one optimizer step). */
  readonly batch: number;
  readonly evalBatch: number;
  readonly seed: number;
  /** Pad-4 random crop and horizontal flip. */
  readonly augment: boolean;
  readonly normalization: NormalizationName;
  /** Momentum of batch-norm running statistics (PyTorch's 0.1). */
  readonly bnMomentum: number;
  /** Use only the first N training images (quick runs and tests); 0 = all. */
  readonly trainLimit: number;
  /**
   * Shuffle within blocks of this many consecutive images, the blocks themselves in random order
   * (what a memory-bound worker can hold); 0 = one permutation of the whole set.
   */
  readonly shuffleBlock: number;
}

/** The seed's recipe: Adam lr 1e-4, no augmentation, mean/std 0.5. */
export const SEED_TRAIN_CONFIG: TrainConfig = {
  model: DEFAULT_MODEL_CONFIG,
  optimizer: defaultOptimizerConfig('adam'),
  schedule: defaultScheduleConfig(),
  epochs: 10,
  batch: 64,
  evalBatch: 500,
  seed: 1,
  augment: false,
  normalization: 'seed',
  bnMomentum: 0.1,
  trainLimit: 0,
  shuffleBlock: 5000,
};

function positiveInt(errors: string[], field: string, v: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < 1 || v > max) errors.push(`${field}: ${v} must be an integer in 1..${max}`);
}

export function trainConfigErrors(c: TrainConfig): string[] {
  const errors = modelConfigErrors(c.model).map((e) => `model.${e}`);
  errors.push(...validateOptimizerConfig(c.optimizer));
  // totalSteps 0 is resolved by the trainer once the data size is known; check the rest as if resolved.
  const schedule = c.schedule.totalSteps === 0 ? { ...c.schedule, totalSteps: Number.MAX_SAFE_INTEGER } : c.schedule;
  errors.push(...validateScheduleConfig(schedule));
  positiveInt(errors, 'epochs', c.epochs, 1000);
  positiveInt(errors, 'batch', c.batch, 4096);
  positiveInt(errors, 'evalBatch', c.evalBatch, 10000);
  if (!Number.isInteger(c.seed)) errors.push(`seed: ${c.seed} must be an integer`);
  if (!NORMALIZATIONS.includes(c.normalization)) errors.push(`normalization: '${c.normalization}' is not one of ${NORMALIZATIONS.join(', ')}`);
  if (!(c.bnMomentum > 0 && c.bnMomentum <= 1)) errors.push(`bnMomentum: ${c.bnMomentum} must be in (0, 1]`);
  if (!Number.isInteger(c.trainLimit) || c.trainLimit < 0) errors.push(`trainLimit: ${c.trainLimit} must be an integer ≥ 0`);
  if (!Number.isInteger(c.shuffleBlock) || c.shuffleBlock < 0) errors.push(`shuffleBlock: ${c.shuffleBlock} must be an integer ≥ 0 (0 = shuffle the whole set)`);
  return errors;
}

export function checkTrainConfig(c: TrainConfig): TrainConfig {
  const errors = trainConfigErrors(c);
  if (errors.length) throw new Error(`invalid training config:\n  ${errors.join('\n  ')}`);
  return c;
}
