// The bindings of the edgetrain Worker (wrangler.toml) and the messages its queue carries.
import type { DurableObjectNamespace, Queue } from '@cloudflare/workers-types/index';
import type { GradientAggregator } from '../coordinator/aggregator';
import type { TrainingCoordinator } from '../coordinator/coordinator';
import type { CoordinatorEnv } from '../coordinator/env';
import type { AiBinding } from '../shared/text/workers-ai-encoder';

export interface WorkMessage {
  readonly runId: string;
  /** The run's worker token: what the invocation authenticates with. */
  readonly token: string;
  /** Invocations of this worker chain that failed in a row. */
  readonly failures?: number;
}

/** DATA (R2): dataset blocks and manifests, checkpoint snapshots; KV: the run index and caption sets. */
export interface Env extends CoordinatorEnv {
  /** One TrainingCoordinator per run, addressed by idFromName(runId). */
  readonly COORDINATOR: DurableObjectNamespace<TrainingCoordinator>;
  /** A run's gradient aggregators (cluster.aggregators of them), addressed by idFromName(`${runId}/${group}`). */
  readonly AGGREGATOR: DurableObjectNamespace<GradientAggregator>;
  /** Workers AI, for embedding captions on Cloudflare (absent locally). */
  readonly AI?: AiBinding;
  /** Fan-out of gradient work: each message starts one worker invocation that loops over leases. */
  readonly WORK?: Queue<WorkMessage>;
  /**
   * The operator's secret (`wrangler secret put API_TOKEN`): run control and data writes need it as a
   * bearer token, and worker and lease tokens are signed with a key derived from it. Unset, every
   * route but /v1/health answers 503.
   */
  readonly API_TOKEN?: string;
  /** "true": the run list, status and metrics are readable without a token (e.g. a public dashboard). */
  readonly PUBLIC_READS?: string;
  /** Where a gradient worker reaches the API; unset = the same Worker, called in-process. */
  readonly API_URL?: string;
  /** Milliseconds a gradient-worker invocation keeps taking leases (its CPU budget, minus a margin). */
  readonly WORKER_BUDGET_MS?: string;
  /** Dataset blocks a worker keeps in memory, in MiB. */
  readonly DATA_CACHE_MB?: string;
  /** Per-image caption chunks a worker keeps in memory, in MiB. */
  readonly CAPTION_CACHE_MB?: string;
  /**
   * The memory one gradient-worker isolate may use, in MiB: run creation resolves an unset
   * cluster.graphBatch to the preset's Workers default and refuses a config whose estimate exceeds
   * it. Unset (local clusters with Node workers): no check.
   */
  readonly WORKER_MEMORY_MB?: string;
}
