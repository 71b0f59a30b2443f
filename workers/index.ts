// The edgetrain Worker: the HTTP API (fetch), gradient work fanned out through a queue (queue), and
// the TrainingCoordinator Durable Object class.
//
// Why a queue: a Worker invocation is single-threaded and a service-binding call runs on the caller's
// thread, so parallel gradient work needs separate top-level invocations. Each queue message starts one
// consumer invocation (up to max_concurrency at once) that loops over leases until its budget is nearly
// spent, then re-enqueues itself while the run is still training.
import type { ExecutionContext, MessageBatch } from '@cloudflare/workers-types/index';
import { app } from './api/app';
import type { Env, WorkMessage } from './env';
import { BlockCache } from './gradient/block-cache';
import { ApiClient, type Fetch } from './gradient/client';
import { LocalComputer } from './gradient/lease-computer';
import { workLoop } from './gradient/loop';
import { loadOrtWorkerd, ortWasmHeapBytes } from './ort/workerd';
import { WORKERS_CACHES } from '../shared/memory-budget';

export { TrainingCoordinator } from '../coordinator/coordinator';
export { GradientAggregator } from '../coordinator/aggregator';

/** Default budget: 25 s of a Worker's default 30 s CPU limit (wall time bounds CPU time from above). */
const DEFAULT_BUDGET_MS = 25_000;

// Per isolate: compiled graphs and dataset blocks survive across invocations.
const computer = new LocalComputer(loadOrtWorkerd);
let cache: BlockCache | undefined;

/** How long an invocation keeps retrying an unreachable or restarting API before it gives up. */
const RETRY_MS = 60_000;

function apiFor(env: Env, ctx: ExecutionContext, token: string): ApiClient {
  // Without API_URL the worker shares the API's Worker and calls it in-process.
  const fetch: Fetch | undefined = env.API_URL ? undefined : (input, init) => Promise.resolve(app.fetch(new Request(input, init), env, ctx as never));
  return new ApiClient(env.API_URL ?? 'http://edgetrain.internal', { workerId: `worker-${crypto.randomUUID().slice(0, 8)}`, token, fetch, retryForMs: RETRY_MS });
}

/** Invocations in a row that may fail before a worker chain gives up (its leases are re-issued anyway). */
const MAX_FAILURES = 3;

/**
 * One gradient worker's invocation. It hands over to a fresh invocation when its budget is spent, and
 * also when it fails (an exception, a CPU limit): the chain of invocations is the run's worker, so a
 * failure must not cost the run that worker for good. Only repeated failures in a row end the chain.
 */
async function work(message: WorkMessage, env: Env, ctx: ExecutionContext): Promise<void> {
  const api = apiFor(env, ctx, message.token);
  cache ??= new BlockCache(Number(env.DATA_CACHE_MB ?? WORKERS_CACHES.blockCacheMb) * 2 ** 20);
  const captionCacheBytes = Number(env.CAPTION_CACHE_MB ?? WORKERS_CACHES.captionCacheMb) * 2 ** 20;
  try {
    const report = await workLoop({ api, runId: message.runId, computer, cache, captionCacheBytes, budgetMs: Number(env.WORKER_BUDGET_MS ?? DEFAULT_BUDGET_MS), log: console.log });
    // The wasm heap never shrinks: this is the isolate's peak so far (JS objects are not counted here).
    console.log(`gradient worker: ${JSON.stringify({ ...report, wasmHeapBytes: ortWasmHeapBytes() })}`);
    if (report.reason === 'budget') await env.WORK?.send({ runId: message.runId, token: message.token });
  } catch (e) {
    const failures = (message.failures ?? 0) + 1;
    console.error(`gradient worker failed (${failures} in a row): ${e instanceof Error ? e.stack : String(e)}`);
    if (failures < MAX_FAILURES) await env.WORK?.send({ ...message, failures });
  }
}

export default {
  fetch: app.fetch,
  async queue(batch: MessageBatch<WorkMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
    for (const message of batch.messages) {
      await work(message.body, env, ctx);
      message.ack();
    }
  },
};
