// Run creation on a deployment with a memory budget per gradient-worker isolate (WORKER_MEMORY_MB):
// an unset graph batch becomes the preset's Workers default, and a config whose estimated peak
// exceeds the budget is refused with the field to change. Unset (local clusters), nothing changes.
import type { DatasetManifest } from '../../shared/data/blocks';
import { WORKERS_CACHES, memoryIssue, withWorkersGraphBatch, type WorkerCaches } from '../../shared/memory-budget';
import type { RunConfig } from '../../shared/protocol';
import type { Env } from '../env';
import type { ErrorBody } from './respond';

type Fitted = { readonly config: RunConfig } | { readonly status: 400 | 500; readonly body: ErrorBody };

function megabytes(env: Env, name: 'WORKER_MEMORY_MB' | 'DATA_CACHE_MB' | 'CAPTION_CACHE_MB', fallback: number): number | ErrorBody {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) return { error: `the Worker's var ${name} is '${raw}': it must be a positive number of MiB`, reason: 'deployment' };
  return value;
}

/** The Worker's caches as its gradient workers size them (workers/index.ts reads the same vars). */
export function workerCaches(env: Env): WorkerCaches | ErrorBody {
  const blockCacheMb = megabytes(env, 'DATA_CACHE_MB', WORKERS_CACHES.blockCacheMb);
  if (typeof blockCacheMb !== 'number') return blockCacheMb;
  const captionCacheMb = megabytes(env, 'CAPTION_CACHE_MB', WORKERS_CACHES.captionCacheMb);
  if (typeof captionCacheMb !== 'number') return captionCacheMb;
  return { blockCacheMb, captionCacheMb };
}

/** `target`: the run's target dataset, whose blocks the workers' cache holds beside the source's. */
export function fitWorkerMemory(config: RunConfig, manifest: DatasetManifest, env: Env, target?: DatasetManifest): Fitted {
  const budget = megabytes(env, 'WORKER_MEMORY_MB', 0);
  if (typeof budget !== 'number') return { status: 500, body: budget };
  if (!budget) return { config };
  const caches = workerCaches(env);
  if ('error' in caches) return { status: 500, body: caches };
  const fitted = withWorkersGraphBatch(config);
  const issue = memoryIssue(fitted, caches, Math.max(manifest.blockImages, target?.blockImages ?? 0), budget);
  return issue ? { status: 400, body: { error: issue.error, reason: 'memory', issues: issue.issues } } : { config: fitted };
}
