// The local cluster: the API + coordinator in one workerd process (Miniflare, persistent state), and
// gradient workers each in a process of their own, since one workerd runs all its JavaScript on one
// thread. Workerd workers run the deployed Worker's own queue consumer; Node workers run the same loop
// with ORT in a worker thread.
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Miniflare } from 'miniflare';
import type { WorkMessage } from '../../workers/gradient/invocation';
import { COMPATIBILITY_DATE, bundleModules, bundleWorker, type WorkerBundle } from './bundle';
import { relayWorker } from './queue-broker';

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
  /**
   * The work queue's messages go to `relay` (a queue broker's receive: cli/cluster/queue-broker.ts)
   * instead of a consumer in this process; dead letters come back through the API Worker's queue
   * handler. `maxConcurrency`: the consumer invocations the broker runs at once (WORK_MAX_CONCURRENCY).
   */
  readonly workQueue?: { relay: (request: Request) => Promise<Response>; maxConcurrency: number };
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
    : opts.workQueue
      ? { queueProducers: { WORK: { queueName: 'edgetrain-work' } } }
      : {};
  const token = opts.token ?? `local-${crypto.randomUUID()}`;
  const api = {
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
      ...(opts.workQueue ? { WORK_MAX_CONCURRENCY: String(opts.workQueue.maxConcurrency) } : {}),
    },
    // Served straight from the Worker's socket, not through Miniflare's entry worker: multi-MB
    // parameter and gradient bodies move ~1.5× faster that way.
    unsafeDirectSockets: [{ host: '127.0.0.1', port: opts.port ?? 0 }],
  };
  const mf = new Miniflare({
    workers: [api, ...(opts.workQueue ? [relayWorker('edgetrain-work', opts.workQueue.relay)] : [])],
    ...(persist ? { durableObjectsPersist: join(persist, 'do'), kvPersist: join(persist, 'kv'), r2Persist: join(persist, 'r2') } : {}),
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

/** One gradient worker in its own workerd process, driven by its own local queue. */
export async function startWorkerdWorker(opts: { index: number; apiUrl: string; budgetMs?: number; cacheMb?: number; verbose?: boolean }): Promise<WorkerdWorker> {
  const queueName = `edgetrain-work-${opts.index}`;
  const mf = new Miniflare({
    ...bundleModules(await bundle()),
    name: `edgetrain-worker-${opts.index}`,
    compatibilityDate: COMPATIBILITY_DATE,
    queueProducers: { WORK: { queueName } },
    queueConsumers: { [queueName]: { maxBatchSize: 1, maxBatchTimeout: 0, maxRetries: 0 } },
    bindings: {
      API_URL: opts.apiUrl,
      WORKER_BUDGET_MS: String(opts.budgetMs ?? 600_000),
      DATA_CACHE_MB: String(opts.cacheMb ?? 256),
    },
    ...(opts.verbose ? {} : { handleRuntimeStdio: drain }),
  });
  await mf.ready;
  const queue = await mf.getQueueProducer<WorkMessage>('WORK');
  return {
    index: opts.index,
    start: async (runId, token) => void (await queue.send({ runId, token })),
    dispose: () => mf.dispose(),
  };
}
