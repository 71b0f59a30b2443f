// The bindings of the gradient consumer script (workers/gradient/wrangler.toml). Its own, not the
// API's Env: it holds no Durable Object, R2 or KV binding and reaches all of them through the API.
import type { Queue } from '@cloudflare/workers-types/index';
import type { HandStartedMessage } from './invocation';

/** A service binding's fetch, as far as the consumer uses it (global Request/Response types). */
export interface ApiService {
  fetch(request: Request): Promise<Response>;
}

export interface GradientEnv {
  /** The API script (`[[services]] binding = "API" service = "edgetrain"`); used when API_URL is unset. */
  readonly API?: ApiService;
  /** Where the API is reached over HTTP instead (separate local processes); wins over API. */
  readonly API_URL?: string;
  /**
   * A hand-started worker's own queue (local clusters), to re-enqueue itself at the end of its budget;
   * deployed, chains are handed over by their coordinator and this stays unbound.
   */
  readonly WORK?: Queue<HandStartedMessage>;
  /** Milliseconds an invocation keeps taking leases (its CPU budget, minus a margin). */
  readonly WORKER_BUDGET_MS?: string;
  /** Dataset blocks a worker keeps in memory, in MiB. */
  readonly DATA_CACHE_MB?: string;
  /** Per-image caption chunks a worker keeps in memory, in MiB. */
  readonly CAPTION_CACHE_MB?: string;
}
