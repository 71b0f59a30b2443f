// The flags that describe a training config, shared by `train` (one process) and `start` (the cluster).
import { HEAD_NAMES, PRESET_NAMES } from '../shared/models/presets';
import { OPTIMIZER_KINDS, defaultOptimizerConfig, type OptimizerConfig } from '../shared/optim/config';
import { DECAY_KINDS } from '../shared/optim/schedule';
import { NORMALIZATIONS, SEED_TRAIN_CONFIG, checkTrainConfig, type TrainConfig } from '../shared/training/config';
import { choiceFlag, numberFlag } from './args';

export const CONFIG_FLAGS = {
  preset: { type: 'string' },
  head: { type: 'string' },
  dann: { type: 'boolean' },
  epochs: { type: 'string' },
  batch: { type: 'string' },
  'eval-batch': { type: 'string' },
  optimizer: { type: 'string' },
  lr: { type: 'string' },
  momentum: { type: 'string' },
  nesterov: { type: 'boolean' },
  'weight-decay': { type: 'string' },
  schedule: { type: 'string' },
  warmup: { type: 'string' },
  'label-smoothing': { type: 'string' },
  augment: { type: 'boolean' },
  normalization: { type: 'string' },
  seed: { type: 'string' },
  'train-limit': { type: 'string' },
  'shuffle-block': { type: 'string' },
} as const;

type FlagValues = { [K in keyof typeof CONFIG_FLAGS]?: (typeof CONFIG_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

export const CONFIG_USAGE = `  --preset ${PRESET_NAMES.join('|')}   (default seed-cnn)     --head ${HEAD_NAMES.join('|')} (default align)
  --dann                 add the adversarial domain classifier (needs a target domain: a shifted dataset, --target-dataset for a run)
  --epochs N (10)  --batch N (64)  --eval-batch N (500)  --seed N (1)  --train-limit N (all)
  --optimizer ${OPTIMIZER_KINDS.join('|')} (adam)  --lr X (1e-4)  --momentum X  --nesterov  --weight-decay X
  --schedule ${DECAY_KINDS.join('|')} (constant)  --warmup STEPS  --label-smoothing X
  --augment              pad-4 random crop + horizontal flip
  --normalization ${NORMALIZATIONS.join('|')} (seed: mean/std 0.5)
  --shuffle-block N      shuffle within blocks of N images, blocks in random order (5000; 0 = whole set)`;

function optimizerFrom(v: FlagValues): OptimizerConfig {
  const kind = choiceFlag('optimizer', v.optimizer as string | undefined, OPTIMIZER_KINDS, 'adam');
  const base = defaultOptimizerConfig(kind);
  const lr = numberFlag('lr', v.lr as string | undefined, base.lr);
  const weightDecay = numberFlag('weight-decay', v['weight-decay'] as string | undefined, base.weightDecay);
  if (base.kind === 'sgd') {
    return { ...base, lr, weightDecay, momentum: numberFlag('momentum', v.momentum as string | undefined, base.momentum), nesterov: !!v.nesterov };
  }
  return { ...base, lr, weightDecay };
}

/** The training config the flags describe (defaults: the seed's recipe), validated. */
export function trainConfigFromValues(v: FlagValues): TrainConfig {
  const s = SEED_TRAIN_CONFIG;
  const epochs = numberFlag('epochs', v.epochs, s.epochs);
  const batch = numberFlag('batch', v.batch, s.batch);
  const trainLimit = numberFlag('train-limit', v['train-limit'], s.trainLimit);
  const config: TrainConfig = {
    ...s,
    model: {
      ...s.model,
      preset: v.preset ?? s.model.preset,
      head: v.head ?? s.model.head,
      dann: !!v.dann,
      labelSmoothing: numberFlag('label-smoothing', v['label-smoothing'], s.model.labelSmoothing),
    },
    optimizer: optimizerFrom(v),
    schedule: {
      warmupSteps: numberFlag('warmup', v.warmup, 0),
      decay: choiceFlag('schedule', v.schedule, DECAY_KINDS, 'constant'),
      totalSteps: 0,
      minLrFactor: 0,
    },
    epochs,
    batch,
    evalBatch: numberFlag('eval-batch', v['eval-batch'], s.evalBatch),
    seed: numberFlag('seed', v.seed, s.seed),
    augment: !!v.augment,
    normalization: choiceFlag('normalization', v.normalization, NORMALIZATIONS, s.normalization),
    trainLimit,
    shuffleBlock: numberFlag('shuffle-block', v['shuffle-block'], s.shuffleBlock),
  };
  return checkTrainConfig(config);
}

