// The local cluster: the API + coordinator in one workerd process (Miniflare, persistent state), and
// gradient workers each in a process of their own, since one workerd runs all its JavaScript on one
// thread. Workerd workers run the deployed Worker's own queue consumer; Node workers run the same loop
// with ORT in a worker thread.
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Miniflare } from 'miniflare';
import type { WorkMessage } from '../../workers/env';
import { COMPATIBILITY_DATE, bundleModules, bundleWorker, type WorkerBundle } from './bundle';

export const WORKER_ENTRY = 'workers/index.ts';

/** The Worker's Durable Object bindings, as wrangler.toml declares them. */
export const DURABLE_OBJECTS = {
  COORDINATOR: { className: 'TrainingCoordinator', useSQLite: true },
  AGGREGATOR: { className: 'GradientAggregator', useSQLite: true },
};
/** Workerd's output is read and dropped unless verbose (an unread pipe would stall the process). */
const drain = (stdout: Readable, stderr: Readable) => {
  stdout.resume();
  stderr.resume();
};

/** Workerd's stdout handed over line by line (stderr dropped). */
const lines = (onLine: (line: string) => void) => (stdout: Readable, stderr: Readable) => {
  let rest = '';
  stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    parts.forEach(onLine);
  });
  stderr.resume();
};

const bundle = (): Promise<WorkerBundle> => bundleWorker(WORKER_ENTRY, 'edgetrain');

export interface LocalCoordinator {
  readonly url: string;
  /** The API token this coordinator was started with. */
  readonly token: string;
  readonly mf: Miniflare;
  dispose(): Promise<void>;
}

export interface CoordinatorOptions {
  /** Durable Object, KV and R2 state kept across restarts; omitted, state lives in memory. */
  readonly persistDir?: string;
  /** 0 (default) picks a free one. */
  readonly port?: number;
  /** The API token (API_TOKEN); a random one when omitted. */
  readonly token?: string;
  /** Status reads without a token (PUBLIC_READS). */
  readonly publicReads?: boolean;
  readonly verbose?: boolean;
  /** Also consume the work queue in this process, as deployed. */
  readonly queue?: { budgetMs: number };
  /** WORKER_MEMORY_MB: the memory budget run creation checks configs against (unset: no check). */
  readonly workerMemoryMb?: number;
  /** Open workerd's V8 inspector on this port (memory measurements). */
  readonly inspectorPort?: number;
}

/** Starts the API and coordinator. */
export async function startCoordinator(opts: CoordinatorOptions = {}): Promise<LocalCoordinator> {
  const persist = opts.persistDir;
  // With `queue`, the Worker also consumes its own work queue, as deployed (wrangler.toml): creating
  // a run fans out gradient work to consumer invocations in this same process.
  const queue = opts.queue
    ? {
        queueProducers: { WORK: { queueName: 'edgetrain-work' } },
        queueConsumers: { 'edgetrain-work': { maxBatchSize: 1, maxBatchTimeout: 0, maxRetries: 2 } },
      }
    : {};
  const token = opts.token ?? `local-${crypto.randomUUID()}`;
  const mf = new Miniflare({
    ...bundleModules(await bundle()),
    name: 'edgetrain',
    compatibilityDate: COMPATIBILITY_DATE,
    durableObjects: DURABLE_OBJECTS,
    kvNamespaces: ['KV'],
    r2Buckets: ['DATA'],
    ...queue,
    bindings: {
      API_TOKEN: token,
      ...(opts.publicReads ? { PUBLIC_READS: 'true' } : {}),
      ...(opts.queue ? { WORKER_BUDGET_MS: String(opts.queue.budgetMs) } : {}),
      ...(opts.workerMemoryMb ? { WORKER_MEMORY_MB: String(opts.workerMemoryMb) } : {}),
    },
    ...(opts.inspectorPort ? { inspectorPort: opts.inspectorPort } : {}),
    ...(persist ? { durableObjectsPersist: join(persist, 'do'), kvPersist: join(persist, 'kv'), r2Persist: join(persist, 'r2') } : {}),
    // Served straight from the Worker's socket, not through Miniflare's entry worker: multi-MB
    // parameter and gradient bodies move ~1.5× faster that way.
    unsafeDirectSockets: [{ host: '127.0.0.1', port: opts.port ?? 0 }],
    ...(opts.verbose ? {} : { handleRuntimeStdio: drain }),
  });
  await mf.ready;
  const url = (await mf.unsafeGetDirectURL('edgetrain')).toString().replace(/\/$/, '');
  return { url, token, mf, dispose: () => mf.dispose() };
}

export interface WorkerdWorker {
  readonly index: number;
  /** Sends the queue message that starts this worker's loop on a run, with the run's worker token. */
  start(runId: string, token: string): Promise<void>;
  dispose(): Promise<void>;
}

export interface WorkerdWorkerOptions {
  readonly index: number;
  readonly apiUrl: string;
  readonly budgetMs?: number;
  /** DATA_CACHE_MB (default 256: local workers have the machine's memory). */
  readonly cacheMb?: number;
  /** CAPTION_CACHE_MB (default: the Worker's). */
  readonly captionCacheMb?: number;
  readonly verbose?: boolean;
  /** Open workerd's V8 inspector on this port (memory measurements). */
  readonly inspectorPort?: number;
  /** Each line the worker writes to stdout (instead of dropping it). */
  readonly onStdout?: (line: string) => void;
}

/** The worker's name in workerd, which its inspector target is named after (`core:user:<name>`). */
export const workerdWorkerName = (index: number) => `edgetrain-worker-${index}`;

/** One gradient worker in its own workerd process, driven by its own local queue. */
export async function startWorkerdWorker(opts: WorkerdWorkerOptions): Promise<WorkerdWorker> {
  const queueName = `edgetrain-work-${opts.index}`;
  const mf = new Miniflare({
    ...bundleModules(await bundle()),
    name: workerdWorkerName(opts.index),
    compatibilityDate: COMPATIBILITY_DATE,
    queueProducers: { WORK: { queueName } },
    queueConsumers: { [queueName]: { maxBatchSize: 1, maxBatchTimeout: 0, maxRetries: 0 } },
    bindings: {
      API_URL: opts.apiUrl,
      WORKER_BUDGET_MS: String(opts.budgetMs ?? 600_000),
      DATA_CACHE_MB: String(opts.cacheMb ?? 256),
      ...(opts.captionCacheMb ? { CAPTION_CACHE_MB: String(opts.captionCacheMb) } : {}),
    },
    ...(opts.inspectorPort ? { inspectorPort: opts.inspectorPort } : {}),
    ...(opts.onStdout ? { handleRuntimeStdio: lines(opts.onStdout) } : opts.verbose ? {} : { handleRuntimeStdio: drain }),
  });
  await mf.ready;
  const queue = await mf.getQueueProducer<WorkMessage>('WORK');
  return {
    index: opts.index,
    start: async (runId, token) => void (await queue.send({ runId, token })),
    dispose: () => mf.dispose(),
  };
}
