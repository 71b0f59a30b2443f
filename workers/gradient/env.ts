// The bindings of the gradient consumer script (workers/gradient/wrangler.toml). Its own, not the
// API's Env: it holds no Durable Object, R2 or KV binding and reaches all of them through the API.
import type { Queue } from '@cloudflare/workers-types/index';
import type { WorkMessage } from '../work-message';

/** A service binding's fetch, as far as the consumer uses it (global Request/Response types). */
export interface ApiService {
  fetch(request: Request): Promise<Response>;
}

export interface GradientEnv {
  /** The API script (`[[services]] binding = "API" service = "edgetrain"`); used when API_URL is unset. */
  readonly API?: ApiService;
  /** Where the API is reached over HTTP instead (separate local processes); wins over API. */
  readonly API_URL?: string;
  /** The work queue, to hand over to the next invocation of this worker chain. */
  readonly WORK?: Queue<WorkMessage>;
  /** Milliseconds an invocation keeps taking leases (its CPU budget, minus a margin). */
  readonly WORKER_BUDGET_MS?: string;
  /** Dataset blocks a worker keeps in memory, in MiB. */
  readonly DATA_CACHE_MB?: string;
}
