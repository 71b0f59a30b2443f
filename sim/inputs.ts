// What the model is fed: figures measured on this machine (JSON lines under docs/data, written by the
// benches), Cloudflare's documented limits (each with its page), and the assumptions Cloudflare
// documents no number for (each a flag). Every figure names where it came from.
import { readFileSync } from 'node:fs';
import type { Costs } from './model';

export interface Sourced<T> {
  readonly value: T;
  readonly source: string;
}

/** Cloudflare's documented limits the projection respects or reports against. */
export const CLOUDFLARE = {
  isolateMemoryMB: { value: 128, source: 'https://developers.cloudflare.com/workers/platform/limits/ (memory per isolate)' },
  simultaneousConnections: { value: 6, source: 'https://developers.cloudflare.com/workers/platform/limits/ (simultaneous open connections per invocation)' },
  queueConsumerConcurrency: { value: 250, source: 'https://developers.cloudflare.com/queues/platform/limits/ (concurrent consumer invocations per queue)' },
  durableObjectSingleThreaded: { value: true, source: 'https://developers.cloudflare.com/durable-objects/platform/limits/ (each object runs on one thread; soft limit ~1,000 requests/s)' },
  durableObjectRequestsPerSecond: { value: 1000, source: 'https://developers.cloudflare.com/durable-objects/platform/limits/ (soft limit per object)' },
  sqliteRowMB: { value: 2, source: 'https://developers.cloudflare.com/durable-objects/platform/limits/ (max row/BLOB size)' },
  cacheIsPerDataCenter: { value: true, source: 'https://developers.cloudflare.com/workers/runtime-apis/cache/ (no replication outside the data center; no effect on *.workers.dev)' },
} satisfies Record<string, Sourced<number | boolean>>;

/** Figures Cloudflare documents no number for: named assumptions, each overridable by a flag. */
export interface Assumptions {
  /** Round trip of one request between a Worker and an object in the same region, ms. */
  readonly rpcMs: number;
  /** A Worker's network throughput, each way, MB/s. */
  readonly workerMBps: number;
  /** A Durable Object's network intake, MB/s (added to its CPU per MB). */
  readonly objectMBps: number;
  /** Reading a parameter version from the cache (hit) or R2, ms before the bytes. */
  readonly versionReadMs: number;
  /** Putting a version into the cache, ms (leases wait for it). */
  readonly cachePutMs: number;
  /** Relative spread of a worker's compute time (standard deviation ÷ mean). */
  readonly computeCv: number;
}

export const DEFAULT_ASSUMPTIONS: Assumptions = { rpcMs: 10, workerMBps: 100, objectMBps: 500, versionReadMs: 15, cachePutMs: 10, computeCv: 0.05 };

export const ASSUMPTION_FLAGS: Record<keyof Assumptions, string> = {
  rpcMs: 'rpc-ms',
  workerMBps: 'worker-mbps',
  objectMBps: 'object-mbps',
  versionReadMs: 'version-read-ms',
  cachePutMs: 'cache-put-ms',
  computeCv: 'compute-cv',
};

type Line = Record<string, unknown>;

/** The JSON lines of a bench's output file (non-JSON lines skipped). */
export function readLines(path: string): Line[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

/** What this machine measured, from the benches' saved output. */
export interface Measured {
  /** bench coordinator lines per design ('before': d4d1b53; 'after'), synthetic workers, no compute. */
  readonly coordinator: { readonly design: 'before' | 'after'; readonly workers: number; readonly stepMs: number; readonly phases?: Record<string, number> }[];
  /** bench cluster at global batch 64 (leases of 32): single process, 1 and 2 workerd workers. */
  readonly cluster: { readonly workers: number; readonly stepMs: number; readonly shards: number }[];
  /** A workerd worker's batch-32 compute, ms per image (bench step). */
  readonly workerdMsPerImage: Sourced<number>;
  /** The coordinator object's work per MB taken in (decode + sum), from the after-design phases. */
  readonly objectMsPerMB: Sourced<number>;
  readonly applyMs: Sourced<number>;
  readonly commitLogMs: Sourced<number>;
  readonly commitFullMs: Sourced<number>;
  readonly frameMB: number;
}

export function readMeasured(dir: string): Measured {
  const coordinator = [...readLines(`${dir}/bench-coordinator-before.jsonl`), ...readLines(`${dir}/bench-coordinator.jsonl`)]
    .filter((l) => l.bench === 'coordinator' && !l.summary && !l.aggregators)
    .map((l) => ({ design: l.design as 'before' | 'after', workers: l.workers as number, stepMs: l.stepMs as number, phases: (l.phases ?? undefined) as Record<string, number> | undefined }));
  const cluster = readLines(`${dir}/bench-cluster.jsonl`)
    .filter((l) => l.bench === 'cluster' && l.batch === 64 && (l.mode === 'workerd' || l.mode === 'single-process'))
    .map((l) => ({ workers: l.mode === 'single-process' ? 0 : (l.workers as number), stepMs: l.medianStepMs as number, shards: 2 }));
  const after = coordinator.filter((c) => c.design === 'after' && c.phases);
  // Per shard taken in: (decode + sum) ÷ workers, over the points with the most shards (least fixed cost).
  const perShard = after.filter((c) => c.workers >= 16).map((c) => (c.phases!.decodeMs + c.phases!.sumMs) / c.workers);
  const frameMB = 2.635;
  const commit = readLines(`${dir}/bench-commit.jsonl`);
  const commitMs = (full: boolean) => (commit.find((l) => String(l.what).startsWith(full ? 'full state' : 'log entry'))?.medianMs as number) ?? NaN;
  const opt = after.map((c) => c.phases!.optimizerMs);
  return {
    coordinator,
    cluster,
    workerdMsPerImage: { value: 94 / 32, source: 'a workerd worker, seed-cnn/align training step at batch 32, warm: 94 ms (cli/cluster/ort-probe; docs/measurements.md)' },
    objectMsPerMB: { value: mean(perShard) / frameMB, source: `${dir}/bench-coordinator.jsonl: phases (decode + sum) per shard at 16–64 workers` },
    applyMs: { value: mean(opt) + 1.5, source: `${dir}/bench-coordinator.jsonl: phases.optimizerMs, + 1.5 ms encoding the version` },
    commitLogMs: { value: commitMs(false), source: `${dir}/bench-commit.jsonl: log entry + run row` },
    commitFullMs: { value: commitMs(true), source: `${dir}/bench-commit.jsonl: full state` },
    frameMB,
  };
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Costs on Cloudflare: measured object and worker work, Cloudflare's network as assumed. */
export function cloudflareCosts(m: Measured, a: Assumptions, lease: number): Costs {
  const objectInMsPerMB = m.objectMsPerMB.value + 1000 / a.objectMBps;
  return {
    computeMs: m.workerdMsPerImage.value * lease,
    computeCv: a.computeCv,
    rpcMs: a.rpcMs,
    workerMBps: a.workerMBps,
    objectInMsPerMB,
    // Serving a frame: the network out of the object (the old design).
    objectOutMsPerMB: 1000 / a.objectMBps,
    applyMs: m.applyMs.value,
    commitFullMs: m.commitFullMs.value,
    commitLogMs: m.commitLogMs.value,
    publishMs: a.cachePutMs,
    versionReadMs: a.versionReadMs,
    frameMB: m.frameMB,
    oneThread: false,
  };
}

/**
 * Costs of the local cluster (one workerd process for the API, the cache, R2 and every object; the
 * workers on the same two cores): per-MB and fixed costs fitted to two synthetic points per design
 * (stepMs ≈ fixed + workers × per-worker), compute to the one-worker cluster point. The other points
 * validate the fit.
 */
export function localCosts(m: Measured, design: 'before' | 'after', fit: readonly [number, number], computeMs: number): Costs {
  const at = (n: number) => m.coordinator.find((c) => c.design === design && c.workers === n)!.stepMs;
  const [n1, n2] = fit;
  const perWorker = (at(n2) - at(n1)) / (n2 - n1);
  const fixed = at(n1) - perWorker * n1;
  // Per worker per step: a frame in and a frame out through the process, each half of perWorker.
  const perMB = perWorker / (2 * m.frameMB);
  return {
    computeMs,
    computeCv: 0,
    rpcMs: 1,
    workerMBps: 1e6,
    objectInMsPerMB: perMB,
    objectOutMsPerMB: perMB,
    applyMs: Math.max(0, fixed - 2),
    commitFullMs: 0,
    commitLogMs: 0,
    publishMs: 0,
    versionReadMs: 0,
    frameMB: m.frameMB,
    oneThread: true,
  };
}
