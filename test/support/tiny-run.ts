// The small training config the cluster tests run: seed-cnn/align, Adam 1e-3, 2 epochs of batch 64
// (two 32-image shards per step), augmentation on, over the first `trainLimit` fixture images.
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../../shared/training/config';

export const tinyTrainConfig = (trainLimit: number): TrainConfig => ({
  ...SEED_TRAIN_CONFIG,
  optimizer: { ...SEED_TRAIN_CONFIG.optimizer, lr: 1e-3 },
  epochs: 2,
  batch: 64,
  evalBatch: 50,
  trainLimit,
  shuffleBlock: 128,
  augment: true,
});
