// The contract between the HTTP API, the coordinator and the gradient workers: run configs (validated
// with one message per bad field), leases, status and metrics.
import { z } from 'zod';
import type { DatasetManifest, Split } from './data/blocks';
import { DEFAULT_MODEL_CONFIG, modelConfigSchema } from './models/presets';
import { optimizerPatchSchema, optimizerSchema, withOptimizerDefaults } from './optim/config';
import { scheduleFields, scheduleSchema } from './optim/schedule';
import { int, oneOf, real, strictObject } from './schema/fields';
import { AGGREGATIONS, type Aggregation } from './training/robust-mean';
import type { CompressionConfig, DilocoConfig } from './training/communication';
import { compressionFields, dilocoFields } from './training/communication-fields';
import { addIssues, whenValid, type FieldIssue } from './schema/issues';
import { MAX_BATCH, SEED_TRAIN_CONFIG, trainConfigFields, type TrainConfig } from './training/config';

export type { FieldIssue } from './schema/issues';

export const RUN_STATES = ['created', 'training', 'completed', 'failed', 'cancelled'] as const;
export type RunState = (typeof RUN_STATES)[number];
export const FINAL_STATES: readonly RunState[] = ['completed', 'failed', 'cancelled'];

/** How a run is spread over workers. */
export interface ClusterConfig {
  /** Examples per lease (shard); the global batch must be a multiple of it. */
  readonly microBatch: number;
  /**
   * Examples per run of the training graph inside a lease (0 = the whole lease). Smaller than the
   * lease, the worker accumulates: more compute per byte sent, within a graph's memory.
   */
  readonly graphBatch: number;
  /**
   * Examples per run of the eval graph inside an eval lease (0 = the preset's Workers eval graph
   * batch): an eval lease of train.evalBatch examples runs in chunks of this many, summed.
   */
  readonly evalGraphBatch: number;
  /**
   * The most milliseconds a lease may go unanswered (heartbeats included) before its shard is given to
   * another worker. Once a few answers are in, deadlines adapt below it to the run's recent answer
   * times (coordinator/lease-window.ts), so a stalled worker costs a few step times, not leaseMs.
   */
  readonly leaseMs: number;
  /**
   * Commit parameters and optimizer state to the coordinator's storage every N steps (and at every
   * epoch end). 1 = every step before it is acknowledged. With N > 1 a restarted coordinator resumes
   * from the last commit and re-leases the steps after it, which recompute to the same values (the
   * data order is deterministic); that trades up to N − 1 steps of recomputation for less storage
   * time per step.
   */
  readonly commitEvery: number;
  /** Write a checkpoint snapshot to R2 every N steps (and at every epoch end). */
  readonly snapshotEvery: number;
  /** Gradient-worker invocations to fan out to on Cloudflare (queue messages sent at start). */
  readonly workers: number;
  /**
   * Aggregator Durable Objects that sum a step's gradients before the coordinator sees them: shard s
   * goes to aggregator s % aggregators, which forwards one float64 partial sum. 0: every gradient goes
   * to the coordinator itself. At most the shards per step (batch / microBatch).
   */
  readonly aggregators: number;
  /**
   * The fraction of train and eval shards also leased to a second worker of another identity, unknown
   * to either, whose answers must agree before the shard counts; on disagreement a third worker
   * decides and the outvoted one is excluded (coordinator/verification.ts). 0: none.
   */
  readonly verifyRate: number;
  /**
   * How far two answers to one shard may differ and still agree: 0 = bit for bit (WASM and native
   * CPU workers compute the same bits); > 0 = relative L2 distance, for non-deterministic backends (WebGPU).
   */
  readonly verifyTolerance: number;
  /**
   * How a step combines its shards' gradients: the mean, or coordinate-wise over shards the median or
   * the mean with `trim` of the values cut from each end, so that a minority of wrong answers moves the
   * result little (robust to bad workers without the cost of duplicate leases).
   */
  readonly aggregation: Aggregation;
  /** The fraction cut from each end by 'trimmed-mean' (of a step's shards, rounded down). */
  readonly trim: number;
  /**
   * Worker identities (POST /v1/runs/:id/workers) alive at once; an excluded one counts until it
   * expires. The fleet's chains are not counted. Default: max(16, 4 × workers).
   */
  readonly maxWorkers: number;
  /** Codecs of the frames workers send and fetch, error feedback (training/communication.ts); fp32 both ways without. */
  readonly compression?: Partial<CompressionConfig>;
  /** Local SGD rounds (DiLoCo) instead of synchronous steps when innerSteps > 0. */
  readonly diloco?: Partial<DilocoConfig>;
}

export const DEFAULT_CLUSTER_CONFIG: ClusterConfig = {
  microBatch: 32,
  graphBatch: 0,
  evalGraphBatch: 0,
  leaseMs: 30_000,
  commitEvery: 1,
  snapshotEvery: 100,
  workers: 2,
  aggregators: 0,
  maxWorkers: 16,
  verifyRate: 0,
  verifyTolerance: 0,
  aggregation: 'mean',
  trim: 0.25,
};

/** cluster.maxWorkers, or its default for a config that leaves it out (and for runs stored before it existed). */
export const maxWorkersOf = (cluster: Omit<ClusterConfig, 'maxWorkers'> & { readonly maxWorkers?: number }): number => cluster.maxWorkers ?? Math.max(16, 4 * cluster.workers);

export interface RunConfig {
  readonly train: TrainConfig;
  readonly cluster: ClusterConfig;
  /** Dataset name (e.g. 'cifar10') or manifest id. */
  readonly dataset: string;
  /**
   * The class caption set the heads read, by its hash (as `edgetrain captions` prints it); it must be
   * in KV when the run is created. Without it the heads read seeded placeholder vectors.
   */
  readonly captions?: string;
  /**
   * Per-image captions for the concat head, by the hash `edgetrain captions --images` prints: one
   * caption per train and test record. Without it, concat reads each image's class caption.
   */
  readonly imageCaptions?: string;
  /**
   * A prepared dataset of the target domain (a shifted CIFAR-10, e.g. 'cifar10-fog-3'), by name or
   * manifest id: its test split is evaluated every epoch beside the source's, and a DANN run
   * (train.model.dann) trains on its train split's images (never their labels). DANN needs one.
   */
  readonly targetDataset?: string;
}

export const clusterConfigFields = strictObject({
  microBatch: int(1, MAX_BATCH),
  graphBatch: int(0, MAX_BATCH),
  evalGraphBatch: int(0, 10_000),
  leaseMs: int(100, 3_600_000),
  commitEvery: int(1, 10_000),
  snapshotEvery: int(1, 1_000_000),
  workers: int(1, 1000),
  aggregators: int(0, 256),
  maxWorkers: int(1, 10_000),
  verifyRate: real({ min: 0, max: 1 }),
  verifyTolerance: real({ min: 0, max: 1 }),
  aggregation: oneOf(AGGREGATIONS),
  trim: real({ min: 0, lt: 0.5 }),
  compression: compressionFields.partial().optional(),
  diloco: dilocoFields.partial().optional(),
}) satisfies z.ZodType<ClusterConfig>;

/** What the rules across fields read, defaults filled in. */
const withDefaults = (req: RunRequestFields) => ({
  batch: req.batch ?? SEED_TRAIN_CONFIG.batch,
  head: req.model?.head ?? DEFAULT_MODEL_CONFIG.head,
  cluster: { ...DEFAULT_CLUSTER_CONFIG, ...req.cluster },
});

const runRequestFields = trainConfigFields
  .extend({
    model: modelConfigSchema.partial(),
    optimizer: optimizerPatchSchema,
    schedule: scheduleFields.partial(),
    cluster: clusterConfigFields.partial(),
    dataset: z.string().min(1).max(128),
    captions: z.string().regex(/^[0-9a-f]{64}$/, 'must be a caption set hash: 64 hex digits, as `edgetrain captions` prints it'),
    imageCaptions: z.string().regex(/^[0-9a-f]{64}$/, 'must be an image caption set hash: 64 hex digits, as `edgetrain captions --images` prints it'),
    targetDataset: z.string().min(1).max(128),
  })
  .partial();
type RunRequestFields = z.infer<typeof runRequestFields>;

/**
 * The body of POST /v1/runs: every field optional, unknown fields rejected. Built from the config
 * schemas, so its bounds are theirs; the rules across fields check the request merged over the defaults.
 */
export const runRequestSchema = runRequestFields
  .superRefine(
    (req, ctx) => {
      const r = req.optimizer && optimizerSchema.safeParse(withOptimizerDefaults(req.optimizer));
      if (r && !r.success) addIssues(ctx, r.error, ['optimizer']);
    },
    { when: whenValid('optimizer') },
  )
  .superRefine(
    (req, ctx) => {
      const r = scheduleSchema.safeParse({ ...SEED_TRAIN_CONFIG.schedule, ...req.schedule });
      if (!r.success) addIssues(ctx, r.error, ['schedule']);
    },
    { when: whenValid('schedule') },
  )
  .superRefine(
    (req, ctx) => {
      const { batch, cluster } = withDefaults(req);
      if (cluster.microBatch > batch || batch % cluster.microBatch !== 0) {
        ctx.addIssue({ code: 'custom', path: ['cluster', 'microBatch'], message: `${cluster.microBatch} must divide the global batch (${batch}) so every shard has the same size` });
      } else if (cluster.aggregators > batch / cluster.microBatch) {
        ctx.addIssue({ code: 'custom', path: ['cluster', 'aggregators'], message: `${cluster.aggregators} aggregators for ${batch / cluster.microBatch} shards per step (batch ${batch} / microBatch ${cluster.microBatch}): at most one per shard` });
      } else if (cluster.aggregators && (cluster.verifyRate > 0 || cluster.aggregation !== 'mean')) {
        // Aggregators sum answers as they come: they keep neither a first answer to compare a second
        // with, nor each shard's gradient for a coordinate-wise median.
        const what = cluster.verifyRate > 0 ? `verifyRate ${cluster.verifyRate}` : `aggregation '${cluster.aggregation}'`;
        ctx.addIssue({ code: 'custom', path: ['cluster', 'aggregators'], message: `${what} needs every shard's answer at the coordinator: use aggregators 0` });
      }
    },
    { when: whenValid('batch', 'cluster') },
  )
  .superRefine(
    (req, ctx) => {
      const { cluster } = withDefaults(req);
      if (cluster.graphBatch && cluster.microBatch % cluster.graphBatch !== 0) {
        ctx.addIssue({ code: 'custom', path: ['cluster', 'graphBatch'], message: `${cluster.graphBatch} must divide cluster.microBatch (${cluster.microBatch})` });
      }
    },
    { when: whenValid('cluster') },
  )
  .superRefine(
    (req, ctx) => {
      const { cluster } = withDefaults(req);
      // Each worker adds its own residual to its answers, so two workers' answers to one shard differ:
      // verification, which needs them to agree, could only ever see disagreement. (topK with a codec
      // other than 'topk' is allowed and ignored.)
      if (cluster.verifyRate > 0 && (cluster.compression?.errorFeedback || cluster.compression?.momentumCorrection)) {
        const field = cluster.compression?.errorFeedback ? 'errorFeedback' : 'momentumCorrection';
        ctx.addIssue({ code: 'custom', path: ['cluster', 'compression', field], message: `cluster.verifyRate ${cluster.verifyRate} needs workers' answers to agree, and cluster.compression.${field} makes each worker's depend on its own residual: use one or the other` });
      }
    },
    { when: whenValid('cluster') },
  )
  .superRefine(
    (req, ctx) => {
      // Momentum correction moves the momentum to the workers: the coordinator's optimizer must add none.
      const m = req.cluster?.compression?.momentumCorrection;
      if (!m) return;
      const optimizer = req.optimizer ? withOptimizerDefaults(req.optimizer) : SEED_TRAIN_CONFIG.optimizer;
      if (optimizer.kind !== 'sgd' || optimizer.momentum !== 0) {
        const what = optimizer.kind === 'sgd' ? `SGD with momentum ${optimizer.momentum}` : optimizer.kind;
        ctx.addIssue({ code: 'custom', path: ['cluster', 'compression', 'momentumCorrection'], message: `${m} keeps the momentum on the workers, so the optimizer must be SGD with momentum 0 (it is ${what})` });
      } else if (req.cluster?.diloco?.innerSteps) {
        ctx.addIssue({ code: 'custom', path: ['cluster', 'compression', 'momentumCorrection'], message: `${m} is for synchronous steps; DiLoCo (cluster.diloco.innerSteps ${req.cluster.diloco.innerSteps}) has its own outer momentum` });
      }
    },
    { when: whenValid('cluster', 'optimizer') },
  )
  .superRefine(
    (req, ctx) => {
      const { head } = withDefaults(req);
      if (req.imageCaptions && head !== 'concat') ctx.addIssue({ code: 'custom', path: ['imageCaptions'], message: `per-image captions feed the concat head; this run's head is '${head}'` });
      // The caption set covers the source's records; the target's images have none of their own.
      if (req.imageCaptions && req.targetDataset) ctx.addIssue({ code: 'custom', path: ['imageCaptions'], message: `per-image captions are the source dataset's; a run with targetDataset '${req.targetDataset}' has none for the target's images` });
    },
    { when: whenValid('model', 'imageCaptions', 'targetDataset') },
  )
  .superRefine(
    (req, ctx) => {
      if (req.model?.dann && !req.targetDataset) {
        ctx.addIssue({ code: 'custom', path: ['targetDataset'], message: 'a DANN run (model.dann) needs a target domain to align to: a prepared shifted dataset, e.g. `edgetrain prepare --shift fog:3`, which makes cifar10-fog-3' });
      }
    },
    { when: whenValid('model', 'targetDataset') },
  );
export type RunRequest = z.infer<typeof runRequestSchema>;

/** Messages of the form "path: problem" (the config checkers' form) as field issues. */
export function fieldIssues(errors: readonly string[]): FieldIssue[] {
  return errors.map((e) => {
    const colon = e.indexOf(':');
    return colon > 0 ? { path: e.slice(0, colon), message: e.slice(colon + 1).trim() } : { path: '', message: e };
  });
}

/** A request the schema accepted, merged over the defaults. */
export function resolveRunConfig(req: RunRequest): RunConfig {
  const s = SEED_TRAIN_CONFIG;
  const { model, optimizer, schedule, cluster, dataset, captions, imageCaptions, targetDataset, ...rest } = req;
  const train: TrainConfig = {
    ...s,
    ...rest,
    model: { ...DEFAULT_MODEL_CONFIG, ...model },
    optimizer: optimizer ? withOptimizerDefaults(optimizer) : s.optimizer,
    schedule: { ...s.schedule, ...schedule },
  };
  const merged = { ...DEFAULT_CLUSTER_CONFIG, ...cluster };
  return { train, cluster: { ...merged, maxWorkers: maxWorkersOf({ ...merged, maxWorkers: cluster?.maxWorkers }) }, dataset: dataset ?? 'cifar10', ...(captions ? { captions } : {}), ...(imageCaptions ? { imageCaptions } : {}), ...(targetDataset ? { targetDataset } : {}) };
}

/** Everything a worker needs to compute any lease of a run; fixed for the run's life. */
export interface RunSpec {
  readonly runId: string;
  readonly config: RunConfig;
  readonly dataset: DatasetManifest;
  /** config.targetDataset's manifest as it was at run creation (the name may be prepared again later). */
  readonly targetDataset?: DatasetManifest;
  readonly paramCount: number;
  readonly bufferCount: number;
  /**
   * Hex SHA-256 of the serialized training graph the run's workers must run (graph-hash.ts),
   * computed at run creation; a worker that built another graph refuses to work. Absent in specs
   * stored before it existed (the check is skipped then).
   */
  readonly graphHash?: string;
  /**
   * The parameter tensors' sizes in flat order, computed at run creation: the segments compressed
   * frames are encoded within (training/run-encodings.ts). Absent in specs stored before it existed
   * (those runs are fp32, which needs none).
   */
  readonly paramSegments?: readonly number[];
}

export type LeaseKind = 'train' | 'eval';

export interface Lease {
  readonly leaseId: string;
  readonly runId: string;
  readonly kind: LeaseKind;
  /** Global step the lease belongs to; eval leases carry the step they evaluate at. */
  readonly step: number;
  readonly shard: number;
  /** Parameter version to compute with (the number of steps applied). */
  readonly version: number;
  /** That version's frame checksum (8 hex digits): where it is stored, and what the bytes fetched must carry. */
  readonly paramsTag: string;
  /** Training leases of a run with aggregators: the one to send the gradient to (shard % aggregators). */
  readonly aggregator?: number;
  readonly epoch: number;
  readonly split: Split;
  readonly indices: readonly number[];
  /** Position of indices[0] in the epoch order (augmentation key). */
  readonly firstPosition: number;
  /** DANN: the target examples of the step, indices into the run's targetDataset train split. */
  readonly dann?: { readonly indices: readonly number[]; readonly lambda: number };
  /** An eval lease of the target's test split ('target'); absent: the run's dataset. */
  readonly domain?: 'target';
  /**
   * A DiLoCo run's train lease: the round's inner steps. `indices` (and `dann.indices`) are then the
   * shard's examples of each inner step, concatenated (count × microBatch); the answer is the round's
   * parameter delta (start − end) and final batch-norm buffers.
   */
  readonly inner?: TrainLeaseRound;
  /** Epoch milliseconds after which the lease may be given to another worker. */
  readonly deadline: number;
  /** Proves this lease was issued to this worker: sent back as x-lease-token with heartbeats and answers. */
  readonly token: string;
}

/** The inner steps of a DiLoCo train lease (shared/training/local-sgd.ts innerLoop). */
export interface TrainLeaseRound {
  /** Global steps first … first + count − 1 (the inner learning rates follow the schedule at them). */
  readonly first: number;
  readonly count: number;
  /** Each inner step's firstPosition (its shard's place in the epoch order: the augmentation key). */
  readonly positions: readonly number[];
  /** DANN: each inner step's reversal strength. */
  readonly lambdas?: readonly number[];
}

/** A lease as the coordinator issues it; the API signs it. */
export type IssuedLease = Omit<Lease, 'token'>;

/** What the coordinator tells the API about an issued lease's answer, signed into the lease token. */
export interface LeaseBounds {
  /** The latest a heartbeat can extend the lease to (issue + leaseMs), epoch ms. */
  readonly expiresAt: number;
  /** The largest answer frame the lease can have, in bytes. */
  readonly maxBytes: number;
}

export type LeaseReply<L = Lease> =
  | { readonly type: 'lease'; readonly lease: L }
  | { readonly type: 'wait'; readonly retryMs: number }
  | { readonly type: 'done'; readonly state: RunState }
  /** A supervised chain's invocation that is no longer the chain's (superseded, a duplicate): it ends. */
  | { readonly type: 'stop'; readonly reason: ChainStop; readonly error: string };

/**
 * One queue message of a supervised fleet: it starts one gradient-worker invocation of chain `chain`.
 * The coordinator mints every message; `generation` counts the chain's invocations, so a message from
 * an earlier one (a retry that lost the race, a duplicate delivery) is told to stop.
 */
export interface ChainMessage {
  readonly runId: string;
  /** The chain's worker credential (etc.…, signed by the coordinator): what the invocation authenticates with. */
  readonly token: string;
  /** The chain's id, also its stable worker id. */
  readonly chain: string;
  readonly generation: number;
}

/** Which delivery of a chain message an invocation is: the queue's message id and attempt number. */
export interface ChainTicket {
  readonly generation: number;
  /**
   * `${message id}/${attempts}/${nonce}`: a retry has the same id and a higher attempt; a duplicate
   * delivery the same id and attempt and another nonce (the invocation's own random one).
   */
  readonly invocation: string;
}

/** Why a chain's invocation is told to stop. */
export type ChainStop = 'unknown-chain' | 'superseded' | 'duplicate' | 'finished';

export type ChainClaim = { readonly type: 'go' } | { readonly type: 'stop'; readonly reason: ChainStop; readonly error: string };

/** The supervised fleet of a run on a deployment (absent where workers are started by hand). */
export interface FleetStatus {
  /** Chains the coordinator keeps running (cluster.workers). */
  readonly target: number;
  /** Chains heard from within the active window. */
  readonly live: number;
  /** Invocations the coordinator started again after a chain went silent or was dead-lettered. */
  readonly restarts: number;
  readonly chains: readonly ChainSummary[];
}

export interface ChainSummary {
  readonly chain: string;
  readonly generation: number;
  readonly restarts: number;
  /** When the coordinator last heard from the chain, or sent its message (epoch ms). */
  readonly lastHeard: number;
}

export interface SubmitReply {
  readonly accepted: boolean;
  /** Why a submission was not counted: 'duplicate' (already counted; nothing to do) or a rejection. */
  readonly reason?: string;
  /** The parameter version after handling this submission. */
  readonly version: number;
}

export interface RunStatus {
  readonly runId: string;
  readonly state: RunState;
  readonly error?: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Coordinator steps applied, and in the run: with DiLoCo (cluster.diloco.innerSteps > 0), rounds. */
  readonly step: number;
  readonly totalSteps: number;
  /** Epochs completed. */
  readonly epoch: number;
  readonly epochs: number;
  readonly version: number;
  readonly phase: LeaseKind;
  /** Mean training loss and accuracy of the last step. */
  readonly loss: number | null;
  readonly trainAccuracy: number | null;
  /** The latest evaluation on the test split. */
  readonly testLoss: number | null;
  readonly testAccuracy: number | null;
  /** Runs with a targetDataset: the latest evaluation on the target's test split. */
  readonly targetLoss?: number | null;
  readonly targetAccuracy?: number | null;
  /** DANN runs: the domain classifier's loss and accuracy over the last completed epoch's source and target images. */
  readonly domainLoss?: number | null;
  readonly domainAccuracy?: number | null;
  readonly imagesPerSecond: number | null;
  readonly activeWorkers: number;
  readonly etaSeconds: number | null;
  readonly config: RunConfig;
  /** Every worker that has called for this run. */
  readonly workers: readonly WorkerSummary[];
  readonly fleet?: FleetStatus;
  /** What verification did since the coordinator last started (runs with cluster.verifyRate > 0). */
  readonly verification?: VerificationCounts;
}

/** Verification's work: shards checked because drawn or because an evaluation answer looked suspect, disagreements, liars. */
export interface VerificationCounts {
  readonly drawn: number;
  readonly suspectEvals: number;
  /** Answers that disagreed with the shard's first, sending it to a further worker. */
  readonly disagreements: number;
  readonly liars: number;
}

export interface WorkerSummary {
  readonly worker: string;
  readonly lastSeen: number;
  /** Submissions counted, and refused (duplicates are neither). */
  readonly accepted: number;
  readonly rejected: number;
  /** Seen recently and not excluded. */
  readonly active: boolean;
  /** Why the worker was excluded from the run, when it was. */
  readonly excluded?: string;
  /** When it was excluded (ms since the epoch). */
  readonly excludedAt?: number;
}

/** The answer to POST /v1/runs: the status, plus the run's worker token (what volunteers join with) and its expiry. */
export interface RunCreated extends RunStatus {
  readonly workerToken: string;
  readonly workerTokenExpiresAt: number;
}

/** A worker identity the run's coordinator minted (POST /v1/runs/:id/workers, …/workers/renew). */
export interface WorkerIdentity {
  readonly workerId: string;
  /** `Authorization: Bearer` of the worker's lease, heartbeat, answer and chain calls. */
  readonly credential: string;
  /** Epoch ms; renew before it. */
  readonly expiresAt: number;
}

export interface StepMetric {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  readonly accuracy: number;
  readonly images: number;
  /** Wall milliseconds from the step's first lease to its commit. */
  readonly stepMs: number;
  /**
   * The coordinator object's own work on the step: checking and summing answers, the optimizer, the
   * commit and encoding the new version. Handing the version to the cache and to R2 is I/O (`phases`).
   */
  readonly coordinatorMs: number;
  /** Where that time went (absent for steps recorded before this was kept). */
  readonly phases?: StepPhases;
  readonly at: number;
  /** Whose answers the step counted: worker id → shards (absent for steps recorded before this was kept). */
  readonly workers?: Readonly<Record<string, number>>;
  /** DANN runs: the domain classifier's loss (mean over the step's shards) and accuracy over its 2 × images source and target images. */
  readonly domainLoss?: number;
  readonly domainAccuracy?: number;
}

/** Where the coordinator's time on one step went, in milliseconds. */
export interface StepPhases {
  /** Decoding and checking the step's answers (frames, shapes, finiteness, norms). */
  readonly decodeMs: number;
  /** Adding them into the float64 sum, and taking the mean. */
  readonly sumMs: number;
  readonly optimizerMs: number;
  /** Making the step durable: its update-log write to R2 and the commit (wall time, beside the next step's compute). */
  readonly commitMs: number;
  /** Encoding the new version and the cache put (before leases for it go out), then its R2 write (beside the next step). */
  readonly publishMs: number;
  /** With aggregators: their milliseconds decoding and summing the step's answers, added over the groups (in parallel, not the coordinator's). */
  readonly aggregatorMs?: number;
}

export interface EvalMetric {
  readonly epoch: number;
  readonly step: number;
  /** The test split of the run's dataset. */
  readonly loss: number;
  readonly accuracy: number;
  /**
   * Runs with a targetDataset: its test split, with the target's own batch-norm statistics in a DANN
   * run, the source's otherwise.
   */
  readonly targetLoss?: number;
  readonly targetAccuracy?: number;
  /**
   * DANN runs: the domain classifier over the epoch's training steps, as the trainer reports it: the
   * mean of its loss over the epoch's graph runs (steps weighted by images), and its accuracy over the
   * epoch's source and target images.
   */
  readonly domainLoss?: number;
  readonly domainAccuracy?: number;
  readonly at: number;
}

export interface RunMetrics {
  readonly steps: readonly StepMetric[];
  readonly evals: readonly EvalMetric[];
}

export interface RunSummary {
  readonly runId: string;
  readonly state: RunState;
  readonly createdAt: number;
  readonly preset: string;
  readonly head: string;
}
