// The bindings the TrainingCoordinator itself uses (a subset of the Worker's Env in workers/env.ts).
import type { KVNamespace, R2Bucket } from '@cloudflare/workers-types/index';

export interface CoordinatorEnv {
  /** Checkpoint snapshots (and the dataset blocks the workers read). */
  readonly DATA: R2Bucket;
  /** The run index (`runs/<id>`) and the caption sets a model export bakes in. */
  readonly KV: KVNamespace;
}
