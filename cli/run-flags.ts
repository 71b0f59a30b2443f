// The flags that describe a run (training config + how it is spread over workers + its data), shared by
// `start` (the local cluster) and `run` (any API).
import { DEFAULT_CLUSTER_CONFIG, clusterConfigFields, type ClusterConfig, type RunRequest } from '../shared/protocol';
import type { TrainConfig } from '../shared/training/config';
import { AGGREGATIONS } from '../shared/training/robust-mean';
import type { CompressionConfig, DilocoConfig } from '../shared/training/communication';
import { compressionFields, dilocoFields } from '../shared/training/communication-fields';
import { DENSE_CODECS, GRADIENT_CODECS } from '../shared/wire/codec';
import { choiceFlag, fieldFlag } from './args';
import { CONFIG_FLAGS, CONFIG_USAGE, trainConfigFromValues } from './config-flags';

/** The flags of cluster.compression and cluster.diloco, shared with `train` (which simulates them). */
export const COMMUNICATION_FLAGS = {
  gradients: { type: 'string' },
  'param-codec': { type: 'string' },
  'top-k': { type: 'string' },
  'error-feedback': { type: 'boolean' },
  'momentum-correction': { type: 'string' },
  diloco: { type: 'string' },
  'outer-lr': { type: 'string' },
  'outer-momentum': { type: 'string' },
} as const;

export const CLUSTER_FLAGS = {
  'micro-batch': { type: 'string' },
  'graph-batch': { type: 'string' },
  'eval-graph-batch': { type: 'string' },
  'lease-ms': { type: 'string' },
  'commit-every': { type: 'string' },
  'snapshot-every': { type: 'string' },
  workers: { type: 'string' },
  aggregators: { type: 'string' },
  'verify-rate': { type: 'string' },
  'verify-tolerance': { type: 'string' },
  aggregation: { type: 'string' },
  trim: { type: 'string' },
  'max-workers': { type: 'string' },
  ...COMMUNICATION_FLAGS,
} as const;

export const COMMUNICATION_USAGE = `  --gradients ${GRADIENT_CODECS.join('|')} (fp32)  codec of the frames workers send   --top-k F (0.01)  fraction kept by topk
  --error-feedback       each worker adds what its last encoding lost to its next gradient
  --momentum-correction M  DGC: workers keep the momentum M (use --optimizer sgd --momentum 0)
  --param-codec ${DENSE_CODECS.join('|')} (fp32)  codec of the parameter versions workers fetch
  --diloco H             local SGD: each lease is H inner steps (default optimizer adamw), the delta sent
  --outer-lr X (0.7)  --outer-momentum X (0.9)   DiLoCo's outer Nesterov SGD`;

export const CLUSTER_USAGE = `  --micro-batch N (32)   examples per lease      --graph-batch N   examples per graph run inside a lease (accumulated)
  --eval-graph-batch N   examples per eval graph run inside an eval lease (default: the preset's)
  --lease-ms N (30000)  --commit-every N (1)  --snapshot-every N (100)
  --aggregators N (0)    aggregator objects summing each step's gradients (shard s → s mod N) before the coordinator
  --verify-rate F (0)    fraction of shards also leased to a second worker; answers must agree (liars are excluded)
  --verify-tolerance F (0)  relative difference two answers may have (0: bit for bit; WebGPU workers need > 0)
  --aggregation mean|trimmed-mean|median (mean)  how a step combines its shards' gradients   --trim F (0.25)
  --max-workers N        worker identities the run takes at once (default max(16, 4 × workers))
${COMMUNICATION_USAGE}`;

export const RUN_FLAGS = {
  ...CONFIG_FLAGS,
  ...CLUSTER_FLAGS,
  dataset: { type: 'string' },
  'target-dataset': { type: 'string' },
  captions: { type: 'string' },
  'image-captions': { type: 'string' },
} as const;

export const RUN_DATA_USAGE = `  --captions HASH        the class caption set (from \`edgetrain captions\`) the heads read; default: seeded placeholders
  --image-captions HASH  per-image captions for the concat head (from \`edgetrain captions --images\`)`;

export { CONFIG_USAGE };

type Values = { [K in keyof typeof RUN_FLAGS]?: (typeof RUN_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

/** The run request body of a training config (every field explicit). */
export const runRequestOf = (c: TrainConfig): RunRequest => ({
  model: c.model,
  optimizer: { ...c.optimizer },
  schedule: { ...c.schedule },
  epochs: c.epochs,
  batch: c.batch,
  evalBatch: c.evalBatch,
  seed: c.seed,
  augment: c.augment,
  normalization: c.normalization,
  bnMomentum: c.bnMomentum,
  trainLimit: c.trainLimit,
  shuffleBlock: c.shuffleBlock,
});

/** The cluster flags given, over `defaults` (pass DEFAULT_CLUSTER_CONFIG for a complete config). */
export function clusterFromValues(v: Values, defaults: Partial<ClusterConfig> = {}): Partial<ClusterConfig> {
  const fields: [keyof typeof CLUSTER_FLAGS, NumericClusterField][] = [
    ['micro-batch', 'microBatch'],
    ['graph-batch', 'graphBatch'],
    ['eval-graph-batch', 'evalGraphBatch'],
    ['lease-ms', 'leaseMs'],
    ['commit-every', 'commitEvery'],
    ['snapshot-every', 'snapshotEvery'],
    ['workers', 'workers'],
    ['aggregators', 'aggregators'],
    ['verify-rate', 'verifyRate'],
    ['verify-tolerance', 'verifyTolerance'],
    ['trim', 'trim'],
    ['max-workers', 'maxWorkers'],
  ];
  const cluster: { -readonly [K in keyof ClusterConfig]?: ClusterConfig[K] } = { ...defaults };
  for (const [flag, field] of fields) {
    if (v[flag] !== undefined) cluster[field] = fieldFlag(flag, v[flag] as string, 0, clusterConfigFields.shape[field]);
  }
  if (v.aggregation !== undefined) cluster.aggregation = choiceFlag('aggregation', v.aggregation, AGGREGATIONS, 'mean');
  return { ...cluster, ...communicationFromValues(v) };
}

type CommunicationValues = { [K in 'gradients' | 'param-codec' | 'top-k' | 'momentum-correction' | 'diloco' | 'outer-lr' | 'outer-momentum']?: string } & { 'error-feedback'?: boolean };

/** The compression and DiLoCo flags given (each part only when one of its flags is). */
export function communicationFromValues(v: CommunicationValues): { compression?: Partial<CompressionConfig>; diloco?: Partial<DilocoConfig> } {
  const compression: { -readonly [K in keyof CompressionConfig]?: CompressionConfig[K] } = {};
  if (v.gradients !== undefined) compression.gradients = choiceFlag('gradients', v.gradients, GRADIENT_CODECS, 'fp32');
  if (v['param-codec'] !== undefined) compression.params = choiceFlag('param-codec', v['param-codec'], DENSE_CODECS, 'fp32');
  if (v['top-k'] !== undefined) compression.topK = fieldFlag('top-k', v['top-k'], 0, compressionFields.shape.topK);
  if (v['error-feedback']) compression.errorFeedback = true;
  if (v['momentum-correction'] !== undefined) compression.momentumCorrection = fieldFlag('momentum-correction', v['momentum-correction'], 0, compressionFields.shape.momentumCorrection);
  const diloco: { -readonly [K in keyof DilocoConfig]?: DilocoConfig[K] } = {};
  if (v.diloco !== undefined) diloco.innerSteps = fieldFlag('diloco', v.diloco, 0, dilocoFields.shape.innerSteps);
  if (v['outer-lr'] !== undefined) diloco.outerLr = fieldFlag('outer-lr', v['outer-lr'], 0, dilocoFields.shape.outerLr);
  if (v['outer-momentum'] !== undefined) diloco.outerMomentum = fieldFlag('outer-momentum', v['outer-momentum'], 0, dilocoFields.shape.outerMomentum);
  return { ...(Object.keys(compression).length ? { compression } : {}), ...(Object.keys(diloco).length ? { diloco } : {}) };
}

/** DiLoCo's inner optimizer is AdamW unless --optimizer names another. */
export const withDilocoOptimizer = <V extends { diloco?: string; optimizer?: string }>(v: V): V => (v.diloco !== undefined && v.optimizer === undefined ? { ...v, optimizer: 'adamw' } : v);

type NumericClusterField = Exclude<keyof ClusterConfig, 'aggregation' | 'compression' | 'diloco'>;

/** The run request the flags describe: the training config (validated here), cluster, dataset, captions. */
export function runRequestFromValues(v: Values, clusterDefaults: Partial<ClusterConfig> = {}): RunRequest {
  const config = trainConfigFromValues(withDilocoOptimizer(v));
  const cluster = clusterFromValues(v, clusterDefaults);
  return {
    ...runRequestOf(config),
    ...(Object.keys(cluster).length ? { cluster } : {}),
    ...(v.dataset ? { dataset: v.dataset } : {}),
    ...(v['target-dataset'] ? { targetDataset: v['target-dataset'] } : {}),
    ...(v.captions ? { captions: v.captions } : {}),
    ...(v['image-captions'] ? { imageCaptions: v['image-captions'] } : {}),
  };
}

export { DEFAULT_CLUSTER_CONFIG };
