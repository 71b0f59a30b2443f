// Everything that defines a training run, validated with one message per bad field.
import { z } from 'zod';
import { DEFAULT_MODEL_CONFIG, modelConfigSchema, type ModelConfig } from '../models/presets';
import { defaultOptimizerConfig, optimizerSchema, type OptimizerConfig } from '../optim/config';
import { defaultScheduleConfig, scheduleSchema, type ScheduleConfig } from '../optim/schedule';
import { bool, int, oneOf, real, strictObject } from '../schema/fields';
import { checked, schemaErrors } from '../schema/issues';

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

/** The most examples in one optimizer step (a lease's shard is part of one). */
export const MAX_BATCH = 4096;

/** Every bound of a training config; the HTTP run request is built from these fields. */
export const trainConfigFields = strictObject({
  model: modelConfigSchema,
  optimizer: optimizerSchema,
  schedule: scheduleSchema,
  epochs: int(1, 1000),
  batch: int(1, MAX_BATCH),
  evalBatch: int(1, 10_000),
  seed: int(),
  augment: bool(),
  normalization: oneOf(NORMALIZATIONS),
  bnMomentum: real({ gt: 0, max: 1 }),
  trainLimit: int(0, 10_000_000),
  shuffleBlock: int(0, 10_000_000),
}) satisfies z.ZodType<TrainConfig>;

/** One "path: message" per bad field; empty when valid. */
export const trainConfigErrors = (c: TrainConfig): string[] => schemaErrors(trainConfigFields, c);

export const checkTrainConfig = (c: TrainConfig): TrainConfig => checked(trainConfigFields, c, 'training config');
