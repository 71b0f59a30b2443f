// The bindings of the edgetrain API script (wrangler.toml); the coordinator's own (WORK, the queue it
// sends its fleet's messages to; API_TOKEN) are in coordinator/env.ts.
import type { DurableObjectNamespace } from '@cloudflare/workers-types/index';
import type { GradientAggregator } from '../coordinator/aggregator';
import type { TrainingCoordinator } from '../coordinator/coordinator';
import type { CoordinatorEnv } from '../coordinator/env';
import type { AiBinding } from '../shared/text/workers-ai-encoder';

/** DATA (R2): dataset blocks and manifests, checkpoint snapshots; KV: the run index and caption sets. */
export interface Env extends CoordinatorEnv {
  /** One TrainingCoordinator per run, addressed by idFromName(runId). */
  readonly COORDINATOR: DurableObjectNamespace<TrainingCoordinator>;
  /** A run's gradient aggregators (cluster.aggregators of them), addressed by idFromName(`${runId}/${group}`). */
  readonly AGGREGATOR: DurableObjectNamespace<GradientAggregator>;
  /** Workers AI, for embedding captions on Cloudflare (absent locally). */
  readonly AI?: AiBinding;
  /**
   * The operator's secret (`wrangler secret put API_TOKEN`): run control and data writes need it as a
   * bearer token, and worker and lease tokens are signed with a key derived from it. Unset, every
   * route but /v1/health answers 503.
   */
  readonly API_TOKEN?: string;
  /** "true": the run list, status and metrics are readable without a token (e.g. a public dashboard). */
  readonly PUBLIC_READS?: string;
  /** The gradient consumer's max_concurrency (workers/gradient/wrangler.toml): the most chains a run may ask for. */
  readonly WORK_MAX_CONCURRENCY?: string;
  /** The gradient script's block cache, in MiB (its DATA_CACHE_MB): the memory estimate counts it. */
  readonly DATA_CACHE_MB?: string;
  /** The gradient script's caption chunk cache, in MiB (its CAPTION_CACHE_MB). */
  readonly CAPTION_CACHE_MB?: string;
  /**
   * The memory one gradient-worker isolate may use, in MiB: run creation resolves an unset
   * cluster.graphBatch to the preset's Workers default and refuses a config whose estimate exceeds
   * it. Unset (local clusters with Node workers): no check.
   */
  readonly WORKER_MEMORY_MB?: string;
}
