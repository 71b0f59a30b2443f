// The peak memory of one gradient-worker isolate for a run, estimated before the run exists, so that
// run creation can refuse a config that would not fit a Worker's memory (128 MB per isolate, shared
// by every request in it). Calibrated against `npm run bench -- worker-memory` (README, "Memory on
// Workers"); it errs high.
import { RECORD_BYTES } from './data/cifar';
import { trainingLayout } from './models/compile';
import { findBackbone } from './models/presets';
import { flatLayout } from './models/params';
import type { ClusterConfig, RunConfig } from './protocol';
import { slotCount } from './optim/optimizer';
import { communicationOf } from './training/communication';

const MiB = 2 ** 20;

/** What the gradient worker keeps besides its graphs; set by the Worker's vars (DATA_CACHE_MB, CAPTION_CACHE_MB). */
export interface WorkerCaches {
  readonly blockCacheMb: number;
  readonly captionCacheMb: number;
}

/** The Workers defaults (wrangler.toml): one 5,000-image block (14.7 MiB), two caption chunks. */
export const WORKERS_CACHES: WorkerCaches = { blockCacheMb: 16, captionCacheMb: 12 };

/** ORT's wasm heap once the runtime has started and before any graph ran (measured in workerd and Node). */
const WASM_BASE_MIB = 16;
/** The isolate's JS heap with the Worker's code loaded, between leases (measured). */
const JS_BASE_MIB = 8;
/**
 * JS bytes per parameter during a lease: the parameter frame and its decoded arrays, the gradient
 * read back from ORT and its accumulated sum, and the gradient frame being sent.
 */
const JS_BYTES_PER_PARAM = 20;

export interface MemoryEstimate {
  /** ORT's wasm heap: the training graph at its graph batch and the eval graph at its chunk. */
  readonly wasmMiB: number;
  readonly trainMiB: number;
  readonly evalMiB: number;
  /** Dataset blocks (the cache plus the block being fetched) and per-image caption chunks. */
  readonly cachesMiB: number;
  readonly jsMiB: number;
  /** Of jsMiB, what the run's communication adds: DiLoCo's inner loop, error feedback's residual. */
  readonly communicationMiB: number;
  readonly totalMiB: number;
}

/**
 * JS bytes per parameter the communication settings add: a DiLoCo lease's working parameters, delta
 * and inner optimizer slots; error feedback's residual, corrected vector and decoded copy (and
 * momentum correction's velocity). Measured: seed-cnn's peak rose 7.3 MiB with DiLoCo + int8 error
 * feedback, where this counts 17.6 (peaks that do not coincide): it errs high.
 */
export function communicationBytesPerParam(config: Pick<RunConfig, 'train' | 'cluster'>): number {
  const { compression, diloco } = communicationOf(config.cluster);
  const local = diloco.innerSteps > 0 ? 8 + 4 * slotCount(config.train.optimizer) : 0;
  const lossy = compression.gradients !== 'fp32';
  const feedback = lossy && (compression.errorFeedback || compression.momentumCorrection > 0) ? 12 + (compression.momentumCorrection > 0 ? 4 : 0) : 0;
  return local + feedback;
}

/** Examples per training-graph run: `cluster.graphBatch`, or the whole lease when 0. */
export const trainGraphBatch = (c: ClusterConfig) => c.graphBatch || c.microBatch;

/** Examples per eval-graph run: `cluster.evalGraphBatch`, or the preset's Workers default when 0. */
export const evalGraphBatch = (config: Pick<RunConfig, 'train' | 'cluster'>) => config.cluster.evalGraphBatch || findBackbone(config.train.model.preset).workers.evalGraphBatch;

/** `blockImages`: images per dataset block (the larger of the source's and the target's). */
export function estimateWorkerMemory(config: RunConfig, caches: WorkerCaches, blockImages: number): MemoryEstimate {
  const { model } = config.train;
  const perExample = findBackbone(model.preset).workers.wasmMiBPerExample;
  // DANN runs the image branch on a target batch too: twice the examples per graph.
  const trainMiB = perExample.train * trainGraphBatch(config.cluster) * (model.dann ? 2 : 1);
  const evalMiB = perExample.eval * Math.min(evalGraphBatch(config), config.train.evalBatch);
  const wasmMiB = WASM_BASE_MIB + trainMiB + evalMiB;
  const blockMiB = (blockImages * RECORD_BYTES) / MiB;
  // The cache evicts down to its budget, except blocks the lease in hand needs (a DANN lease needs one
  // of the source and one of the target at least), plus the block being fetched.
  const blocksHeld = model.dann ? 2 : 1;
  const cachesMiB = Math.max(caches.blockCacheMb, blocksHeld * blockMiB) + blockMiB + (config.imageCaptions ? caches.captionCacheMb : 0);
  const params = flatLayout(trainingLayout(model).params).size;
  const communicationMiB = (params * communicationBytesPerParam(config)) / MiB;
  const jsMiB = JS_BASE_MIB + (params * JS_BYTES_PER_PARAM) / MiB + communicationMiB;
  const round = (v: number) => Math.round(v * 10) / 10;
  return { wasmMiB: round(wasmMiB), trainMiB: round(trainMiB), evalMiB: round(evalMiB), cachesMiB: round(cachesMiB), jsMiB: round(jsMiB), communicationMiB: round(communicationMiB), totalMiB: round(wasmMiB + cachesMiB + jsMiB) };
}

/** The largest divisor of `n` that is at most `max` (at least 1). */
function divisorAtMost(n: number, max: number): number {
  for (let d = Math.min(n, Math.max(1, Math.floor(max))); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/**
 * The config as it runs on Workers: an unset graph batch (0) becomes the preset's Workers graph
 * batch, or the largest divisor of the lease size below it.
 */
export function withWorkersGraphBatch(config: RunConfig): RunConfig {
  if (config.cluster.graphBatch) return config;
  const { graphBatch } = findBackbone(config.train.model.preset).workers;
  return { ...config, cluster: { ...config.cluster, graphBatch: divisorAtMost(config.cluster.microBatch, graphBatch) } };
}

export interface MemoryIssue {
  readonly error: string;
  readonly issues: { readonly path: string; readonly message: string }[];
}

/** Why a config does not fit `budgetMiB`, naming the field to change; undefined when it fits. */
export function memoryIssue(config: RunConfig, caches: WorkerCaches, blockImages: number, budgetMiB: number): MemoryIssue | undefined {
  const e = estimateWorkerMemory(config, caches, blockImages);
  if (e.totalMiB <= budgetMiB) return undefined;
  const over = e.totalMiB - budgetMiB;
  const { model } = config.train;
  const perExample = findBackbone(model.preset).workers.wasmMiBPerExample;
  const error = `a gradient worker of this run would need about ${e.totalMiB} MiB (wasm heap ${e.wasmMiB}, caches ${e.cachesMiB}, JS ${e.jsMiB}); the deployment's budget is ${budgetMiB} MiB (WORKER_MEMORY_MB)`;
  const issues: MemoryIssue['issues'][number][] = [];
  if (e.communicationMiB > 0) {
    const { diloco } = communicationOf(config.cluster);
    const path = diloco.innerSteps > 0 ? 'cluster.diloco.innerSteps' : 'cluster.compression';
    const without = Math.round((e.totalMiB - e.communicationMiB) * 10) / 10;
    issues.push({ path, message: `DiLoCo's inner loop and error feedback keep about ${e.communicationMiB} MiB per worker of ${model.preset}; without them the run needs about ${without} MiB` });
  }
  if (e.trainMiB >= e.evalMiB) {
    const g = trainGraphBatch(config.cluster);
    const fits = divisorAtMost(config.cluster.microBatch, g - over / (perExample.train * (model.dann ? 2 : 1)));
    issues.push({ path: 'cluster.graphBatch', message: `${g} examples per training-graph run of ${model.preset} need about ${e.trainMiB} MiB of wasm heap; lower it (--graph-batch) to ${fits} or less` });
  } else {
    const g = evalGraphBatch(config);
    const fits = Math.max(1, Math.floor(g - over / perExample.eval));
    issues.push({ path: 'cluster.evalGraphBatch', message: `${g} examples per eval-graph run of ${model.preset} need about ${e.evalMiB} MiB of wasm heap; lower it (--eval-graph-batch) to ${fits} or less` });
  }
  return { error, issues };
}
