// The gradient consumer script (workers/gradient/wrangler.toml): each WORK queue message starts one
// gradient worker invocation (invocation.ts) that loops over leases with onnxruntime-web until its
// budget is nearly spent; a supervised chain's coordinator then sends the chain's next message.
//
// Why a queue: a Worker invocation is single-threaded and a service-binding call runs on the caller's
// thread, so parallel gradient work needs separate top-level invocations (up to max_concurrency).
// Why a script of its own: the API script then carries no ORT (its bundle and start-up stay small).
import type { MessageBatch } from '@cloudflare/workers-types/index';
import { BlockCache } from './block-cache';
import { ApiClient, type Fetch } from './client';
import type { GradientEnv } from './env';
import { runInvocation, type WorkMessage } from './invocation';
import { LocalComputer } from './lease-computer';
import { loadOrtWorkerd, ortWasmHeapBytes } from '../ort/workerd';
import { WORKERS_CACHES } from '../../shared/memory-budget';

/** Default budget: 25 s of a Worker's default 30 s CPU limit (wall time bounds CPU time from above). */
const DEFAULT_BUDGET_MS = 25_000;
/** How long an invocation keeps retrying an unreachable or restarting API before it gives up. */
const RETRY_MS = 60_000;

// Per isolate: compiled graphs and dataset blocks survive across invocations.
const computer = new LocalComputer(loadOrtWorkerd);
let cache: BlockCache | undefined;

function apiFor(env: GradientEnv, token: string): ApiClient {
  if (env.API_URL) return new ApiClient(env.API_URL, { token, retryForMs: RETRY_MS });
  const service = env.API;
  if (!service) throw new Error('gradient consumer: neither the API service binding nor API_URL is set (workers/gradient/wrangler.toml)');
  // The host is never resolved: a service binding delivers the request to the bound script.
  const fetch: Fetch = (input, init) => service.fetch(new Request(input, init));
  return new ApiClient('https://edgetrain.internal', { token, fetch, retryForMs: RETRY_MS });
}

export default {
  /**
   * One invocation per message. A failure is retried by the queue after retry_delay, and a message
   * that failed every retry is dead-lettered, where its coordinator hears of it.
   */
  async queue(batch: MessageBatch<WorkMessage>, env: GradientEnv): Promise<void> {
    cache ??= new BlockCache(Number(env.DATA_CACHE_MB ?? WORKERS_CACHES.blockCacheMb) * 2 ** 20);
    for (const message of batch.messages) {
      try {
        const report = await runInvocation(message, {
          api: (token) => apiFor(env, token),
          computer,
          cache,
          captionCacheBytes: Number(env.CAPTION_CACHE_MB ?? WORKERS_CACHES.captionCacheMb) * 2 ** 20,
          budgetMs: Number(env.WORKER_BUDGET_MS ?? DEFAULT_BUDGET_MS),
          requeue: env.WORK ? async (m) => void (await env.WORK!.send(m)) : undefined,
          log: console.log,
        });
        // The wasm heap never shrinks: this is the isolate's peak so far (JS objects are not counted here).
        if (report) console.log(`gradient worker: ${JSON.stringify({ ...report, wasmHeapBytes: ortWasmHeapBytes() })}`);
        message.ack();
      } catch (e) {
        console.error(`gradient worker failed (attempt ${message.attempts}): ${e instanceof Error ? e.stack : String(e)}`);
        message.retry();
      }
    }
  },
};
