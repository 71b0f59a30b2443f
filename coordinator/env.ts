// The bindings the TrainingCoordinator itself uses (a subset of the Worker's Env in workers/env.ts).
import type { KVNamespace, Queue, R2Bucket } from '@cloudflare/workers-types/index';
import type { ChainMessage } from '../shared/protocol';

export interface CoordinatorEnv {
  /** Checkpoint snapshots (and the dataset blocks the workers read). */
  readonly DATA: R2Bucket;
  /** The run index (`runs/<id>`) and the caption sets a model export bakes in. */
  readonly KV: KVNamespace;
  /** The work queue: where it is bound (a deployment), the coordinator supervises the run's fleet of worker chains. */
  readonly WORK?: Queue<ChainMessage>;
  /** The operator's secret: the fleet's messages carry the run's worker token, signed with a key derived from it. */
  readonly API_TOKEN?: string;
}
