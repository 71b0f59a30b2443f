// The gradient consumer script (workers/gradient/wrangler.toml): each WORK queue message starts one
// gradient worker invocation that loops over leases with onnxruntime-web until its budget is nearly
// spent, then re-enqueues itself while the run is still training.
//
// Why a queue: a Worker invocation is single-threaded and a service-binding call runs on the caller's
// thread, so parallel gradient work needs separate top-level invocations (up to max_concurrency).
// Why a script of its own: the API script then carries no ORT (its bundle and start-up stay small).
import type { MessageBatch } from '@cloudflare/workers-types/index';
import type { WorkMessage } from '../work-message';
import { BlockCache } from './block-cache';
import { ApiClient, type Fetch } from './client';
import type { GradientEnv } from './env';
import { LocalComputer } from './lease-computer';
import { workLoop } from './loop';
import { loadOrtWorkerd } from '../ort/workerd';

/** Default budget: 25 s of a Worker's default 30 s CPU limit (wall time bounds CPU time from above). */
const DEFAULT_BUDGET_MS = 25_000;
const DEFAULT_CACHE_MB = 48;
/** How long an invocation keeps retrying an unreachable or restarting API before it gives up. */
const RETRY_MS = 60_000;
/** Invocations in a row that may fail before a worker chain gives up (its leases are re-issued anyway). */
const MAX_FAILURES = 3;

// Per isolate: compiled graphs and dataset blocks survive across invocations.
const computer = new LocalComputer(loadOrtWorkerd);
let cache: BlockCache | undefined;

function apiFor(env: GradientEnv, token: string): ApiClient {
  const workerId = `worker-${crypto.randomUUID().slice(0, 8)}`;
  if (env.API_URL) return new ApiClient(env.API_URL, { workerId, token, retryForMs: RETRY_MS });
  const service = env.API;
  if (!service) throw new Error('gradient consumer: neither the API service binding nor API_URL is set (workers/gradient/wrangler.toml)');
  // The host is never resolved: a service binding delivers the request to the bound script.
  const fetch: Fetch = (input, init) => service.fetch(new Request(input, init));
  return new ApiClient('https://edgetrain.internal', { workerId, token, fetch, retryForMs: RETRY_MS });
}

/**
 * One gradient worker's invocation. It hands over to a fresh invocation when its budget is spent, and
 * also when it fails (an exception, a CPU limit): the chain of invocations is the run's worker, so a
 * failure must not cost the run that worker for good. Only repeated failures in a row end the chain.
 */
export async function work(message: WorkMessage, env: GradientEnv): Promise<void> {
  try {
    const api = apiFor(env, message.token);
    cache ??= new BlockCache(Number(env.DATA_CACHE_MB ?? DEFAULT_CACHE_MB) * 1024 * 1024);
    const report = await workLoop({ api, runId: message.runId, computer, cache, budgetMs: Number(env.WORKER_BUDGET_MS ?? DEFAULT_BUDGET_MS), log: console.log });
    console.log(`gradient worker: ${JSON.stringify(report)}`);
    if (report.reason === 'budget') await env.WORK?.send({ runId: message.runId, token: message.token });
  } catch (e) {
    const failures = (message.failures ?? 0) + 1;
    console.error(`gradient worker failed (${failures} in a row): ${e instanceof Error ? e.stack : String(e)}`);
    if (failures < MAX_FAILURES) await env.WORK?.send({ ...message, failures });
  }
}

export default {
  async queue(batch: MessageBatch<WorkMessage>, env: GradientEnv): Promise<void> {
    for (const message of batch.messages) {
      await work(message.body, env);
      message.ack();
    }
  },
};
