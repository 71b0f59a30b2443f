// The local cluster, split as deployed: the API script (API + coordinator, workers/index.ts) in one
// workerd process (Miniflare, persistent state), and the gradient script (workers/gradient/consumer.ts)
// in processes of their own, one per gradient worker, since one workerd runs all its JavaScript on one
// thread; they reach the API over HTTP (API_URL). Node workers run the same loop with ORT in a worker
// thread.
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Miniflare, type WorkerOptions } from 'miniflare';
import type { HandStartedMessage } from '../../workers/gradient/invocation';
import { COMPATIBILITY_DATE, bundleModules, bundleWorker, type WorkerBundle } from './bundle';
import { deliverTo, relayWorker, type ConsumerSlot } from './queue-broker';

/** The API script's entry (wrangler.toml). */
export const WORKER_ENTRY = 'workers/index.ts';
/** The gradient script's entry (workers/gradient/wrangler.toml). */
export const GRADIENT_ENTRY = 'workers/gradient/consumer.ts';
const API_NAME = 'edgetrain';
const GRADIENT_NAME = 'edgetrain-gradient';
const QUEUE = 'edgetrain-work';
const DEAD_LETTERS = 'edgetrain-work-dlq';

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

const bundleApi = (): Promise<WorkerBundle> => bundleWorker(WORKER_ENTRY, API_NAME);
const bundleGradient = (): Promise<WorkerBundle> => bundleWorker(GRADIENT_ENTRY, GRADIENT_NAME);

/**
 * wrangler.toml's `[assets]` for Miniflare: the folder served ahead of the Worker, and
 * `run_worker_first = ["/v1/*"]` as wrangler passes it to Miniflare in `wrangler dev`.
 */
function assetOptions(directory: string): Pick<WorkerOptions, 'assets'> {
  return { assets: { directory, routerConfig: { has_user_worker: true, static_routing: { user_worker: ['/v1/*'] } } } };
}

type StdioHandler = (stdout: Readable, stderr: Readable) => void;

/** Workerd's output on this process's own (Miniflare's default prints it line by line alike). */
const echo: StdioHandler = (stdout, stderr) => {
  stdout.pipe(process.stdout, { end: false });
  stderr.pipe(process.stderr, { end: false });
};

/**
 * `handle`, and `onExit` when the process's stdout ends, which it does when the process exits. Miniflare's
 * dispose() destroys the stream instead, which ends nothing: a disposed process is not reported.
 */
const watchExit = (handle: StdioHandler, onExit: () => void): StdioHandler => (stdout, stderr) => {
  stdout.once('end', onExit);
  handle(stdout, stderr);
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
  /** Also run the gradient script in this process, consuming the API's work queue, as deployed. */
  readonly queue?: { budgetMs: number };
  /**
   * The work queue's messages go to `relay` (a queue broker's receive: cli/cluster/queue-broker.ts)
   * instead of a consumer in this process; dead letters come back through the API Worker's queue
   * handler. `maxConcurrency`: the consumer invocations the broker runs at once (WORK_MAX_CONCURRENCY).
   */
  readonly workQueue?: { relay: (request: Request) => Promise<Response>; maxConcurrency: number };
  /** A folder the API serves as static assets, as wrangler.toml's [assets] (buildDeployAssets()). */
  readonly assets?: string;
  /** WORKER_MEMORY_MB: the memory budget run creation checks configs against (unset: no check). */
  readonly workerMemoryMb?: number;
  /** Open workerd's V8 inspector on this port (memory measurements). */
  readonly inspectorPort?: number;
  /** Called when the API's workerd process exits on its own (killed, crashed), not through dispose(). */
  readonly onExit?: () => void;
}

/** Starts the API and coordinator (and, with `queue`, the gradient script beside it). */
export async function startCoordinator(opts: CoordinatorOptions = {}): Promise<LocalCoordinator> {
  const persist = opts.persistDir;
  const token = opts.token ?? `local-${crypto.randomUUID()}`;
  const api: WorkerOptions = {
    ...bundleModules(await bundleApi()),
    name: API_NAME,
    compatibilityDate: COMPATIBILITY_DATE,
    durableObjects: DURABLE_OBJECTS,
    kvNamespaces: ['KV'],
    r2Buckets: ['DATA'],
    // The coordinators send their fleets' messages to WORK; the API script consumes the dead letters.
    ...(opts.queue || opts.workQueue ? { queueProducers: { WORK: { queueName: QUEUE } }, queueConsumers: { [DEAD_LETTERS]: { maxBatchSize: 10, maxBatchTimeout: 0 } } } : {}),
    ...(opts.assets ? assetOptions(opts.assets) : {}),
    bindings: {
      API_TOKEN: token,
      ...(opts.publicReads ? { PUBLIC_READS: 'true' } : {}),
      ...(opts.workQueue ? { WORK_MAX_CONCURRENCY: String(opts.workQueue.maxConcurrency) } : {}),
      ...(opts.workerMemoryMb ? { WORKER_MEMORY_MB: String(opts.workerMemoryMb) } : {}),
    },
    // Served straight from the Worker's socket, not through Miniflare's entry worker: multi-MB
    // parameter and gradient bodies move ~1.5× faster that way.
    unsafeDirectSockets: [{ host: '127.0.0.1', port: opts.port ?? 0 }],
  };
  // With `queue`, both scripts as deployed (wrangler.toml, workers/gradient/wrangler.toml): creating a
  // run fans out gradient work to the gradient script's invocations, which call the API through the
  // service binding API.
  const gradient: WorkerOptions[] = opts.queue
    ? [
        {
          ...bundleModules(await bundleGradient()),
          name: GRADIENT_NAME,
          compatibilityDate: COMPATIBILITY_DATE,
          serviceBindings: { API: API_NAME },
          queueConsumers: { [QUEUE]: { maxBatchSize: 1, maxBatchTimeout: 0, maxRetries: 2, retryDelay: 1, deadLetterQueue: DEAD_LETTERS } },
          bindings: { WORKER_BUDGET_MS: String(opts.queue.budgetMs) },
        },
      ]
    : [];
  const relay = opts.workQueue ? [relayWorker(QUEUE, opts.workQueue.relay)] : [];
  const mf = new Miniflare({
    workers: [api, ...gradient, ...relay],
    ...(persist ? { durableObjectsPersist: join(persist, 'do'), kvPersist: join(persist, 'kv'), r2Persist: join(persist, 'r2') } : {}),
    ...(opts.inspectorPort ? { inspectorPort: opts.inspectorPort } : {}),
    ...(opts.onExit ? { handleRuntimeStdio: watchExit(opts.verbose ? echo : drain, opts.onExit) } : opts.verbose ? {} : { handleRuntimeStdio: drain }),
  });
  await mf.ready;
  const url = (await mf.unsafeGetDirectURL(API_NAME)).toString().replace(/\/$/, '');
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

/** One gradient worker: the gradient script in its own workerd process, driven by its own local queue. */
export async function startWorkerdWorker(opts: WorkerdWorkerOptions): Promise<WorkerdWorker> {
  const queueName = `edgetrain-work-${opts.index}`;
  const mf = new Miniflare({
    ...bundleModules(await bundleGradient()),
    name: workerdWorkerName(opts.index),
    compatibilityDate: COMPATIBILITY_DATE,
    queueProducers: { WORK: { queueName } },
    // A failed invocation is retried twice, a second later (its leases are re-issued meanwhile).
    queueConsumers: { [queueName]: { maxBatchSize: 1, maxBatchTimeout: 0, maxRetries: 2, retryDelay: 1 } },
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
  const queue = await mf.getQueueProducer<HandStartedMessage>('WORK');
  return {
    index: opts.index,
    start: async (runId, token) => void (await queue.send({ runId, token })),
    dispose: () => mf.dispose(),
  };
}

/** A gradient-script process that a queue broker delivers messages to (the Cloudflare profile). */
export interface ConsumerProcess extends ConsumerSlot {
  dispose(): Promise<void>;
}

/**
 * The gradient script in its own workerd process with no queue of its own: a broker
 * (queue-broker.ts) runs its queue handler with one message at a time, as Cloudflare Queues does.
 */
export async function startConsumerProcess(opts: { index: number; apiUrl: string; budgetMs: number; verbose?: boolean }): Promise<ConsumerProcess> {
  const name = `edgetrain-gradient-${opts.index}`;
  const mf = new Miniflare({
    ...bundleModules(await bundleGradient()),
    name,
    compatibilityDate: COMPATIBILITY_DATE,
    // The caches keep the Workers defaults, as deployed.
    bindings: { API_URL: opts.apiUrl, WORKER_BUDGET_MS: String(opts.budgetMs) },
    ...(opts.verbose ? {} : { handleRuntimeStdio: drain }),
  });
  await mf.ready;
  const worker = await mf.getWorker();
  return {
    name,
    deliver: (queue, message) => deliverTo(worker, queue, message),
    dispose: () => mf.dispose(),
  };
}
