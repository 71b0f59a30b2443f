// The edgetrain Worker: the HTTP API (fetch), gradient work fanned out through a queue (queue), and
// the TrainingCoordinator Durable Object class.
//
// Why a queue: a Worker invocation is single-threaded and a service-binding call runs on the caller's
// thread, so parallel gradient work needs separate top-level invocations. Each queue message starts one
// consumer invocation (up to max_concurrency at once) that loops over leases until its budget is nearly
// spent, then re-enqueues itself while the run is still training.
import type { ExecutionContext, MessageBatch } from '@cloudflare/workers-types/index';
import { app } from './api/app';
import { deadLetters } from './api/dead-letters';
import type { Env } from './env';
import { BlockCache } from './gradient/block-cache';
import { ApiClient, type Fetch } from './gradient/client';
import { runInvocation, type WorkMessage } from './gradient/invocation';
import { LocalComputer } from './gradient/lease-computer';
import { loadOrtWorkerd } from './ort/workerd';

export { TrainingCoordinator } from '../coordinator/coordinator';
export { GradientAggregator } from '../coordinator/aggregator';

/** Default budget: 25 s of a Worker's default 30 s CPU limit (wall time bounds CPU time from above). */
const DEFAULT_BUDGET_MS = 25_000;
const DEFAULT_CACHE_MB = 48;

// Per isolate: compiled graphs and dataset blocks survive across invocations.
const computer = new LocalComputer(loadOrtWorkerd);
let cache: BlockCache | undefined;

/** How long an invocation keeps retrying an unreachable or restarting API before it gives up. */
const RETRY_MS = 60_000;

function apiFor(env: Env, ctx: ExecutionContext, workerId: string, token: string): ApiClient {
  // Without API_URL the worker shares the API's Worker and calls it in-process.
  const fetch: Fetch | undefined = env.API_URL ? undefined : (input, init) => Promise.resolve(app.fetch(new Request(input, init), env, ctx as never));
  return new ApiClient(env.API_URL ?? 'http://edgetrain.internal', { workerId, token, fetch, retryForMs: RETRY_MS });
}

/**
 * One gradient worker's invocation per message. A failure is retried by the queue (retry_delay), and a
 * message that failed every retry is dead-lettered, where the coordinator hears of it.
 */
async function work(batch: MessageBatch<WorkMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
  cache ??= new BlockCache(Number(env.DATA_CACHE_MB ?? DEFAULT_CACHE_MB) * 1024 * 1024);
  for (const message of batch.messages) {
    try {
      const report = await runInvocation(message, {
        api: (workerId, token) => apiFor(env, ctx, workerId, token),
        computer,
        cache,
        budgetMs: Number(env.WORKER_BUDGET_MS ?? DEFAULT_BUDGET_MS),
        requeue: env.WORK ? async (m) => void (await env.WORK!.send(m as never)) : undefined,
        log: console.log,
      });
      if (report) console.log(`gradient worker: ${JSON.stringify(report)}`);
      message.ack();
    } catch (e) {
      console.error(`gradient worker failed (attempt ${message.attempts}): ${e instanceof Error ? e.stack : String(e)}`);
      message.retry();
    }
  }
}

export default {
  fetch: app.fetch,
  async queue(batch: MessageBatch<WorkMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
    if (batch.queue.endsWith('-dlq')) await deadLetters(batch as MessageBatch<unknown>, env);
    else await work(batch, env, ctx);
  },
};
