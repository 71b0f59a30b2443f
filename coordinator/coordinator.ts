// The TrainingCoordinator Durable Object: parameter server and scheduler of one run. A thin shell that
// orders the work of its parts and does their I/O at the right moments:
//   run-store.ts        the run row, tensors and metrics in SQLite (schema.ts: the tables)
//   shard-plan.ts       how steps and evaluations split into leases
//   lease-scheduler.ts  leases, backups for stragglers, long polls, the alarm
//   admission.ts        whether an answer counts; worker exclusion; divergence reports
//   step-aggregator.ts  a step's float64 sum and mean; shared/training/update.ts applies it
//   version-store.ts    parameter versions (what workers read) and the update log, in R2
//   snapshots.ts        checkpoints to R2, the exported model, the KV run index
//   fleet.ts            the supervised worker chains of a deployed run (claims, handovers, restarts)
//   status.ts           status and metrics read from the tables
//
// State lives in SQLite and R2 and is reloaded on start; the only thing kept in memory alone is the
// running sum of the current step's gradients: if the object restarts mid-step, that step's shards are
// leased again (the data order is deterministic, so the recomputed gradients are the same) and nothing
// is applied twice. The coordinator hands out parameter versions, not bytes: each applied step is
// offered to the cache and written once to R2 (version-store.ts), and workers read it from there. A
// step is committed before the answer that completed it is acknowledged (every `commitEvery` steps and
// at every epoch end; in between, a restart re-trains the steps since the last commit, to the same
// values): its mean gradient goes to the update log and the run row records the step, one transaction
// of 4 bytes per parameter; the full state (parameters and optimizer moments, 12 bytes per parameter
// with Adam) is rewritten only every FULL_STATE_EVERY steps, and a restart replays the log over it.
import { DurableObject } from 'cloudflare:workers';
import type { DurableObjectState } from '@cloudflare/workers-types/index';
import type { DatasetManifest } from '../shared/data/blocks';
import { trainingLayout } from '../shared/models/compile';
import { decayMask, flatLayout, initBuffers, initParameters } from '../shared/models/params';
import { createOptimizer, restoreOptimizer, slotCount } from '../shared/optim/optimizer';
import { signingKey, workerCredential } from '../shared/auth';
import { FINAL_STATES, maxWorkersOf, type ChainClaim, type ChainMessage, type ChainTicket, type IssuedLease, type LeaseBounds, type LeaseKind, type LeaseReply, type RunConfig, type RunMetrics, type RunSpec, type RunState, type RunStatus, type StepPhases, type SubmitReply } from '../shared/protocol';
import { snapshotKey } from '../shared/storage-keys';
import { runGraphHash } from '../shared/graph-hash';
import { RunPlan } from '../shared/training/plan';
import type { ModelState } from '../shared/training/update';
import { applyRunUpdate, runOptimizer } from './run-update';
import { decodeEval, decodeGradient, WireError, type WireErrorReason } from '../shared/wire';
import { payloadBytes } from '../shared/wire/codec';
import { runEncodings } from '../shared/training/run-encodings';
import { groupShards, type FrameFindings, type GroupPartial, type GroupRound, type ShardAdmission, type ShardCheck } from './aggregation';
import { Admission, DIVERGED, answerableLease, evalProblem, frameVerdict, gradientFindings, wireFailure, type FrameHead } from './admission';
import type { CoordinatorEnv } from './env';
import { FLEET_CHECK_MS, Fleet, RESTART_DELAY_S, SILENT_MARGIN_MS, sendChains, type ChainSend } from './fleet';
import { CREDENTIAL_TTL_MS, Identities, type Minted } from './identities';
import { LONG_POLL_MS, LeaseScheduler, pickShard, type LeaseRow } from './lease-scheduler';
import { fail, ok, type Failure, type Outcome } from './outcome';
import { FULL_STATE_EVERY, RunStore, type EvalScore, type Position, type RunRecord, type StatePoint } from './run-store';
import type { Domain } from '../shared/models/layers';
import { ShardPlan } from './shard-plan';
import { checkpointBytes, exportModel, indexRun } from './snapshots';
import { evalMetrics, runStatus, stepMetrics } from './status';
import { StepAggregator, type ShardResult } from '../shared/training/step-aggregator';
import { VersionStore, type PublishedVersion } from './version-store';
import { drawVerified, evalsAgree, evalSuspect, gradientsAgree, integrityOf, keptAnswersProblem, ShardVerification, type EvalAnswer } from './verification';
import { excludeWorker, workerSummaries } from './worker-record';

/** Workers seen within this window count as active. */
const ACTIVE_WINDOW_MS = 15_000;

/** How long after a version's release its R2 write starts (see storeVersion). */
const R2_WRITE_DELAY_MS = 25;

/** How soon a lease request that found the current version not yet published asks again. */
const PUBLISH_WAIT_MS = 50;


/** An answer an aggregator holds: admitted here, counted once its group's partial arrives. */
interface PendingShard {
  readonly group: number;
  readonly worker: string;
  readonly leaseId: string;
  readonly at: number;
}

/**
 * How long after a group's last shard was admitted its partial sum may take before the group counts as
 * lost and is leased again. A partial normally follows its last shard within milliseconds.
 */
const REOPEN_AFTER_MS = 5_000;

/** A run loaded into memory. */
interface ActiveRun {
  readonly record: RunRecord;
  readonly shards: ShardPlan;
  readonly model: ModelState;
  /** Steps applied in memory. */
  position: Position;
  /** The position recorded as durable: behind `position` between commits (commitEvery > 1). */
  committed: Position;
  /** The step of the full state in storage; the update log covers the steps after it. */
  stateAt: StatePoint;
  sum: StepAggregator;
  readonly versions: VersionStore;
  /** The version workers can read; leases wait while the applied step is ahead of it. */
  published?: PublishedVersion;
  /** Answers admitted through an aggregator and not yet summed: shard → where it went. */
  pending: Map<number, PendingShard>;
  /** When the current step's answers started (its groups' first round), and groups given a new round since. */
  roundBase: GroupRound;
  rounds: Map<number, GroupRound>;
  /** The last applied version's R2 write, under way while its successor is computed. */
  persisting: Promise<void>;
  /** The current step's shards drawn for verification, and the answers they hold. */
  verify: ShardVerification<ShardResult>;
  /** Verification's counts since this object started. */
  counts: { drawn: number; suspectEvals: number; disagreements: number; liars: number };
  /** The same for the evaluation in progress (created when it starts). */
  evalVerify?: { readonly step: number; readonly checks: ShardVerification<EvalAnswer> };
}

const notFound = () => fail(404, 'unknown run', 'unknown-run');

/**
 * Open (active, unanswered) leases one worker may hold at once. The worker loop and the browser page
 * take one at a time; a second covers a lease request racing its predecessor's answer.
 */
export const MAX_OPEN_LEASES = 2;

/** Frame bytes an answer may have beyond its values (header, lease id, scalars, checksum; see shared/wire). */
const FRAME_OVERHEAD_BYTES = 1024;

/**
 * A train answer's values and statistics: a dense fp32 frame's, or the run's encoding's when larger
 * (top-k near 1 sends 8 bytes a value). Dense frames stay within the bound of a compressed run so
 * that the coordinator, not a bare 413, refuses one, naming the run's codec.
 */
function trainAnswerBytes(spec: RunSpec): number {
  const { gradients } = runEncodings(spec);
  const encoded = gradients.codec.codec === 'fp32' ? 0 : payloadBytes(gradients.codec, gradients.segments) + 4 * gradients.segments.length;
  return Math.max(4 * spec.paramCount, encoded) + 4 * spec.bufferCount;
}

export class TrainingCoordinator extends DurableObject<CoordinatorEnv> {
  private run: ActiveRun | undefined;
  private readonly store: RunStore;
  private readonly leases: LeaseScheduler;
  private readonly admission: Admission;
  private readonly fleet: Fleet;
  private readonly identities: Identities;

  constructor(ctx: DurableObjectState, env: CoordinatorEnv) {
    super(ctx, env);
    this.store = new RunStore(ctx.storage);
    this.leases = new LeaseScheduler(ctx.storage.sql, { get: () => ctx.storage.getAlarm(), set: (at) => ctx.storage.setAlarm(at) });
    this.admission = new Admission(ctx.storage.sql);
    this.fleet = new Fleet(ctx.storage.sql);
    this.identities = new Identities(ctx.storage.sql);
    void ctx.blockConcurrencyWhile(async () => {
      this.store.migrate();
      this.run = await this.load();
    });
  }

  /** The stored run: its full state with the logged steps after it replayed, and its version published. */
  private async load(): Promise<ActiveRun | undefined> {
    const stored = this.store.load((spec) => slotCount(runOptimizer(spec.config)));
    if (!stored) return undefined;
    const { record, position, tensors, stateAt } = stored;
    const { train } = record.spec.config;
    const optimizer = restoreOptimizer(runOptimizer(record.spec.config), { step: stateAt.optimizerStep, slots: [...tensors.slots] }, record.spec.paramCount);
    const model: ModelState = { params: tensors.params, buffers: tensors.buffers, optimizer, mask: decayMask(trainingLayout(train.model).params) };
    const versions = new VersionStore(this.env.DATA, record.runId, runEncodings(record.spec).params);
    for (let step = stateAt.step + 1; step <= position.step; step++) {
      const update = this.store.readUpdate(step);
      applyRunUpdate(model, update, step - 1, record.spec.config);
    }
    if (optimizer.state.step !== position.optimizerStep) {
      throw new Error(`run ${record.runId}: replaying the update log gave optimizer step ${optimizer.state.step}, the run row says ${position.optimizerStep}`);
    }
    this.leases.forgetAfterRestart(position.step);
    // Evaluation answers held for verification were in memory only: their shards are answered again.
    if (position.phase === 'eval') this.leases.reopenAnswered('eval', position.step, { keep: this.store.evalShards(position.step) });
    this.store.forgetStepsAfter(position.step);
    const run = this.activate(record, position, stateAt, model, versions);
    this.ctx.waitUntil(versions.forgetVersions(await this.publish(run)));
    return run;
  }

  private activate(record: RunRecord, position: Position, stateAt: StatePoint, model: ModelState, versions = new VersionStore(this.env.DATA, record.runId, runEncodings(record.spec).params)): ActiveRun {
    const shards = new ShardPlan(record.spec);
    const step = position.step;
    return { record, shards, model, position, committed: position, stateAt, versions, sum: this.emptySum(shards, step), verify: this.trainVerification(shards), counts: { drawn: 0, suspectEvals: 0, disagreements: 0, liars: 0 }, pending: new Map(), roundBase: Date.now(), rounds: new Map(), persisting: Promise.resolve() };
  }

  /** Forgets the current step's answers (applied, or to be taken again). */
  private newStep(run: ActiveRun): void {
    run.sum = this.emptySum(run.shards, run.position.step);
    run.verify = this.trainVerification(run.shards);
    run.pending = new Map();
    run.roundBase = Math.max(Date.now(), run.roundBase + 1);
    run.rounds = new Map();
  }

  private emptySum(shards: ShardPlan, step: number): StepAggregator {
    const { aggregation, trim } = integrityOf(shards.spec.config.cluster);
    return new StepAggregator(step, shards.trainShards, shards.spec.paramCount, shards.spec.bufferCount, { aggregation, trim });
  }

  /** A new draw of the step's shards to verify (secret, so a worker cannot tell a checked lease). */
  private trainVerification(shards: ShardPlan): ShardVerification<ShardResult> {
    const { verifyRate, verifyTolerance } = integrityOf(shards.spec.config.cluster);
    return new ShardVerification(drawVerified(shards.trainShards, verifyRate), gradientsAgree(verifyTolerance, shards.examplesPerLease('train')));
  }

  /** The verification of the evaluation at the current step, drawn when it is first asked for. */
  private evalVerification(run: ActiveRun): ShardVerification<EvalAnswer> {
    const { step } = run.position;
    if (run.evalVerify?.step !== step) {
      const { verifyRate, verifyTolerance } = integrityOf(run.record.spec.config.cluster);
      run.evalVerify = { step, checks: new ShardVerification(drawVerified(run.shards.evalShards, verifyRate), evalsAgree(verifyTolerance)) };
    }
    return run.evalVerify.checks;
  }

  // ---------- run lifecycle ----------

  /** `target`: config.targetDataset's manifest (the API looked it up and checked it against `manifest`). */
  async create(runId: string, config: RunConfig, manifest: DatasetManifest, target?: DatasetManifest): Promise<Outcome<RunStatus>> {
    // First, so that no await separates the existence check from the run's assignment.
    const graphHash = await runGraphHash(config);
    if (this.run) return fail(409, `run ${this.run.record.runId} already exists here`, 'exists');
    let plan: RunPlan;
    try {
      plan = new RunPlan(config.train, manifest.train.count);
    } catch (e) {
      return fail(400, (e as Error).message, 'config');
    }
    const layout = trainingLayout(config.train.model);
    const params = initParameters(layout.params, config.train.seed);
    const buffers = initBuffers(layout.buffers);
    const kept = keptAnswersProblem(config.cluster, config.train.batch / config.cluster.microBatch, params.length, buffers.length);
    if (kept) return fail(400, kept, 'config');
    const resolved: RunConfig = { ...config, train: { ...config.train, schedule: plan.schedule } };
    // The API read the manifest through checkManifest before calling here.
    const paramSegments = flatLayout(layout.params).slices.map((slice) => slice.size);
    if (config.train.model.dann && !target) return fail(400, 'a DANN run needs a target domain: config.targetDataset and its manifest', 'config');
    // The manifests are pinned in the spec: preparing a name again later does not move a run's data.
    const spec: RunSpec = { runId, config: resolved, dataset: manifest, ...(target ? { targetDataset: target } : {}), paramCount: params.length, bufferCount: buffers.length, graphHash, paramSegments };
    const optimizer = createOptimizer(runOptimizer(config), params.length);
    const now = Date.now();
    const record: RunRecord = { runId, spec, createdAt: now, state: 'created', error: null, updatedAt: now };
    const position: Position = { step: 0, phase: 'train', optimizerStep: 0 };
    const stateAt: StatePoint = { step: 0, optimizerStep: 0 };
    this.store.transaction(() => {
      this.store.writeRun(record, position);
      this.store.writeTensors({ params, buffers, slots: optimizer.state.slots }, stateAt);
    });
    this.run = this.activate(record, position, stateAt, { params, buffers, optimizer, mask: decayMask(layout.params) });
    await this.publish(this.run);
    await indexRun(this.env.KV, record);
    await this.startFleet(this.run);
    return ok(this.statusOf(this.run));
  }

  /** Stops the run, committing the parameters of its last applied step: resume continues from them. */
  async cancel(): Promise<Outcome<RunStatus>> {
    const run = this.run;
    if (!run) return notFound();
    if (!FINAL_STATES.includes(run.record.state)) await this.end(run, 'cancelled');
    return ok(this.statusOf(run));
  }

  /** Continues a cancelled run, or one that failed by divergence, from its committed step. */
  async resume(): Promise<Outcome<RunStatus>> {
    const run = this.run;
    if (!run) return notFound();
    const { state, error } = run.record;
    if (state !== 'cancelled' && !(state === 'failed' && error?.startsWith(DIVERGED))) {
      return fail(409, `only a cancelled run, or one that failed by divergence, can be resumed; this one is ${state}`, 'not-cancelled');
    }
    this.newStep(run);
    this.admission.nextStep(run.position.step);
    if (run.published?.version !== run.position.step) await this.publish(run);
    this.setState(run, run.position.step === 0 && run.position.phase === 'train' ? 'created' : 'training');
    await indexRun(this.env.KV, run.record);
    await this.startFleet(run);
    return ok(this.statusOf(run));
  }

  status(): Outcome<RunStatus> {
    return this.run ? ok(this.statusOf(this.run)) : notFound();
  }

  spec(): Outcome<RunSpec> {
    return this.run ? ok(this.run.record.spec) : notFound();
  }

  metrics(sinceStep = -1): Outcome<RunMetrics> {
    if (!this.run) return notFound();
    return ok({ steps: stepMetrics(this.store.sql, sinceStep), evals: evalMetrics(this.store.sql) });
  }

  /**
   * Where parameter version `version` is stored (its tag), while it is the current one. The bytes are
   * in R2; the API reads them from there, never through this object.
   */
  paramsVersion(version: number): Outcome<PublishedVersion> {
    const run = this.run;
    if (!run) return notFound();
    const current = run.published;
    if (!current || version > current.version) return fail(404, `parameter version ${version} does not exist yet; the current version is ${current?.version ?? 'being written'}`, 'future-version');
    if (version < current.version) return fail(410, `parameter version ${version} is gone; the current version is ${current.version}`, 'stale');
    return ok(current);
  }

  /**
   * Resets this object as a deploy does: every call in flight fails with a reset error (the API answers
   * 503 and clients retry), and the next call reloads the run from storage, losing the steps after the
   * last commit (recomputed to the same values).
   */
  reset(): void {
    this.ctx.abort(`reset by the operator`);
  }

  /** The inference model with the current weights and the run's caption vectors baked in. */
  async model(): Promise<Outcome<ArrayBuffer>> {
    return this.run ? exportModel(this.env.KV, this.run.record.spec, this.run.model) : notFound();
  }

  // ---------- the worker protocol ----------

  /** A new worker identity for this run (the API signs its credential). */
  mintWorker(): Outcome<Minted> {
    const run = this.run;
    if (!run) return notFound();
    if (FINAL_STATES.includes(run.record.state)) return fail(409, `run is ${run.record.state}; it takes no more workers`, 'finished');
    return this.identities.mint(maxWorkersOf(run.record.spec.config.cluster), Date.now());
  }

  /** A minted identity's new expiry. */
  renewWorker(worker: string): Outcome<Minted> {
    const run = this.run;
    if (!run) return notFound();
    if (FINAL_STATES.includes(run.record.state)) return fail(409, `run is ${run.record.state}; it takes no more workers`, 'finished');
    return this.identities.renew(worker, Date.now());
  }

  /** Refuses an id this run did not mint (or expired), then an excluded or rate-limited worker. */
  private gate(worker: string): Failure | undefined {
    return this.identities.refusal(worker, Date.now()) ?? this.admission.gate(worker);
  }

  async lease(worker: string, ticket?: ChainTicket): Promise<Outcome<LeaseReply<IssuedLease & LeaseBounds>>> {
    const run = this.run;
    if (!run) return notFound();
    const refused = this.gate(worker);
    if (refused) return refused;
    const chain = this.fleet.check(worker, ticket);
    if (chain.type === 'stop') return ok(chain);
    this.admission.seen(worker);
    const held = this.leases.openOf(worker, Date.now());
    if (held.count >= MAX_OPEN_LEASES) {
      const retryMs = Math.max(100, held.soonest - Date.now());
      return { ...fail(429, `worker ${worker} holds ${held.count} open leases, the most one worker may: answer one first (or retry in ${Math.ceil(retryMs / 1000)} s, when one expires)`, 'too-many-leases'), retryMs };
    }
    const wasCreated = run.record.state === 'created';
    // Long poll: hold the request until a shard frees up (a step commits, a lease expires) or time is up.
    const until = Date.now() + LONG_POLL_MS;
    let reply = this.tryLease(run, worker);
    while (reply.type === 'wait' && Date.now() < until) {
      await this.leases.waitForChange(Math.min(until - Date.now(), reply.retryMs));
      reply = this.tryLease(run, worker);
    }
    if (reply.type === 'lease') await this.leases.armFor(reply.lease.deadline);
    if (wasCreated && run.record.state !== 'created') await indexRun(this.env.KV, run.record);
    return ok(reply);
  }

  /** The bounds of an answer to a lease issued at `issuedAt`: its last possible deadline, and its frame's size (train: every parameter and buffer value). */
  private boundsOf(run: ActiveRun, kind: LeaseKind, issuedAt: number): LeaseBounds {
    const { spec } = run.record;
    return { expiresAt: issuedAt + spec.config.cluster.leaseMs, maxBytes: kind === 'train' ? trainAnswerBytes(spec) + FRAME_OVERHEAD_BYTES : FRAME_OVERHEAD_BYTES };
  }

  /** Extends a lease by the adaptive window, never past leaseMs from its issue. */
  heartbeat(leaseId: string, worker: string): Outcome<{ deadline: number }> {
    const run = this.run;
    if (!run) return notFound();
    const refused = this.gate(worker);
    if (refused) return refused;
    const now = Date.now();
    const lease = this.leases.find(leaseId);
    if (!lease || lease.state !== 'active' || lease.deadline <= now) return fail(409, `lease ${leaseId} is not active (answered, expired or unknown)`, 'unknown-lease');
    if (lease.worker !== worker) return fail(403, `lease ${leaseId} was issued to another worker`, 'not-yours');
    return ok({ deadline: this.leases.extend(lease, run.shards.examplesPerLease(lease.kind), run.record.spec.config.cluster.leaseMs, now) });
  }

  async submitGradient(leaseId: string, body: ArrayBuffer, worker: string): Promise<Outcome<SubmitReply>> {
    const t0 = performance.now();
    // A frame in another encoding than the run's is refused (WireError 'codec'/'segments') before its
    // payload is decoded; every check after this one reads the dense gradient, whatever the encoding.
    const expected = this.run && runEncodings(this.run.record.spec).gradients;
    const admitted = this.admit(leaseId, worker, 'train', () => decodeGradient(new Uint8Array(body), expected));
    if (!('frame' in admitted)) return admitted;
    const { run, frame: s, lease } = admitted;
    const { sum } = run;
    const { aggregators } = run.record.spec.config.cluster;
    if (aggregators) return this.refuse(worker, fail(400, `this run sums shard ${s.shard}'s answers in aggregator ${s.shard % aggregators}: send the lease's aggregator as x-aggregator`, 'aggregator'), leaseId);
    const problem = await this.gradientProblem(run, s, worker, leaseId, gradientFindings(s, run.record.spec));
    if (problem) return problem;
    const t1 = performance.now();
    sum.decodeMs += t1 - t0;
    this.answered(run, lease, worker);
    const result: ShardResult = { shard: s.shard, worker, loss: s.loss, correct: s.correct, grads: s.grads, stats: s.stats, ...(s.domain ? { domain: s.domain } : {}) };
    if (!run.verify.checks(s.shard)) {
      sum.add(result);
      sum.sumMs += performance.now() - t1;
    } else {
      const agreed = await this.settle(run, 'train', s.shard, leaseId, result, run.verify);
      // The step may have been started again (a liar's answers were in it): count into the current sum.
      if (agreed && !run.sum.has(s.shard) && run.sum.step === s.step) run.sum.add(agreed);
    }
    if (run.sum.complete && run.sum.step === run.position.step) await this.applyStep(run);
    return ok({ accepted: true, version: run.position.step });
  }

  /** Whether the run verifies answers (drawn ones, and suspect ones). */
  private verifying(run: ActiveRun): boolean {
    return integrityOf(run.record.spec.config.cluster).verifyRate > 0;
  }

  /**
   * An answer to a shard under verification: held until another worker's agrees (the shard is then
   * leased to one), or the agreed answer once two do, after the workers that answered otherwise are
   * excluded and what they contributed to the open step or evaluation discarded.
   */
  private async settle<T>(run: ActiveRun, kind: LeaseKind, shard: number, leaseId: string, answer: T & { worker: string }, checks: ShardVerification<T>): Promise<T | undefined> {
    const verdict = checks.add(shard, { worker: answer.worker, leaseId, value: answer });
    if (checks.answersTo(shard) === 1 && verdict.type === 'wait' && !checks.suspect(shard)) run.counts.drawn++;
    if (verdict.type === 'wait' && checks.answersTo(shard) > 1) run.counts.disagreements++;
    if (verdict.type === 'wait') {
      this.leases.wake();
      return undefined;
    }
    const { step } = run.position;
    if (verdict.type === 'unresolved') {
      await this.end(run, 'failed', `${kind} shard ${shard} at step ${step} got ${verdict.answers} answers from different workers, no two alike: the workers are not deterministic (set cluster.verifyTolerance for WebGPU workers)`);
      return undefined;
    }
    run.counts.liars += verdict.liars.length;
    for (const liar of verdict.liars) this.excludeLiar(run, kind, shard, liar.worker);
    return verdict.value;
  }

  /**
   * Excludes a worker whose answer two others contradicted; its answers held for verification are
   * dropped, its evaluation parts forgotten, and the open step started again when it counted any of
   * its shards (honest answers recompute to the same values).
   */
  private excludeLiar(run: ActiveRun, kind: LeaseKind, shard: number, worker: string): void {
    const { step } = run.position;
    console.warn(`run ${run.record.runId}: worker ${worker} answered ${kind} shard ${shard} at step ${step} unlike two other workers; excluding it`);
    excludeWorker(this.store.sql, worker, `its answer to ${kind} shard ${shard} at step ${step} differed from two other workers' (verification)`);
    this.leases.refuseAllOf(worker);
    run.verify.dropWorker(worker);
    this.leases.reopenAnswered('train', step, { worker });
    if (run.position.phase === 'eval') {
      this.evalVerification(run).dropWorker(worker);
      this.leases.reopenAnswered('eval', step, { worker });
      // Every answered lease of a shard whose counted part was the liar's is freed: its next answers
      // may come from any worker, those that answered it before included.
      this.store.forgetEvalPartsOf(step, worker);
      this.leases.reopenAnswered('eval', step, { keep: this.store.evalShards(step) });
    } else if (run.sum.countedFrom(worker)) {
      this.newStep(run);
      this.leases.reopenAnswered('train', step, { keep: run.sum.countedShards });
    }
    this.leases.wake();
  }

  /**
   * Whether an answer an aggregator has read counts (`count`); it then stays pending here until its
   * group's partial sum arrives (`submitPartial`). The same rules as `submitGradient`, on the head.
   */
  async admitShard(leaseId: string, worker: string, group: number, check: ShardCheck): Promise<Outcome<ShardAdmission>> {
    const t0 = performance.now();
    const admitted = this.admit(leaseId, worker, 'train', () => {
      if (check.kind === 'unreadable') throw new WireError(check.reason as WireErrorReason, check.message);
      return check.head;
    });
    if (!('frame' in admitted)) return admitted.ok ? ok({ reply: admitted.value, count: false, round: 0 }) : admitted;
    const { run, frame: s, lease } = admitted;
    const { aggregators } = run.record.spec.config.cluster;
    if (s.shard % aggregators !== group) {
      const why = aggregators ? `shard ${s.shard} is summed by aggregator ${s.shard % aggregators}, not ${group}` : 'this run has no aggregators: post gradients without x-aggregator';
      return this.refuse(worker, fail(400, why, 'aggregator'), leaseId);
    }
    // An unreadable answer was refused by admit.
    const problem = await this.gradientProblem(run, s, worker, leaseId, check as Extract<ShardCheck, { kind: 'frame' }>);
    if (problem) return problem;
    const now = Date.now();
    run.pending.set(s.shard, { group, worker, leaseId, at: now });
    this.answered(run, lease, worker);
    run.sum.decodeMs += performance.now() - t0;
    if (groupShards(group, aggregators, run.shards.trainShards).every((shard) => run.pending.has(shard))) await this.leases.armFor(now + REOPEN_AFTER_MS);
    return ok({ reply: { accepted: true, version: run.position.step }, count: true, round: this.roundOf(run, group) });
  }

  /** One aggregator's sum of its group's admitted answers for the current step; the step is applied once every group's is in. */
  async submitPartial(p: GroupPartial): Promise<Outcome<SubmitReply>> {
    const run = this.run;
    if (!run) return notFound();
    if (FINAL_STATES.includes(run.record.state)) return fail(409, `run is ${run.record.state}; nothing more is accepted`, 'finished');
    const stale = fail(409, `aggregator ${p.group}'s sum for step ${p.step} is stale: the run is at step ${run.position.step}, or those shards were leased again`, 'stale');
    if (p.step !== run.sum.step || run.position.phase !== 'train' || p.round !== this.roundOf(run, p.group) || p.shards.length !== p.leases.length) return stale;
    for (const [i, s] of p.shards.entries()) {
      const pending = run.pending.get(s.shard);
      if (!pending || pending.group !== p.group || pending.leaseId !== p.leases[i] || pending.worker !== s.worker) return stale;
    }
    const { sum } = run;
    const t0 = performance.now();
    sum.addPartial(p);
    for (const s of p.shards) run.pending.delete(s.shard);
    sum.sumMs += performance.now() - t0;
    sum.aggregatorMs += p.decodeMs + p.sumMs;
    if (sum.complete) await this.applyStep(run);
    return ok({ accepted: true, version: run.position.step });
  }

  async submitEval(leaseId: string, body: ArrayBuffer, worker: string): Promise<Outcome<SubmitReply>> {
    const admitted = this.admit(leaseId, worker, 'eval', () => decodeEval(new Uint8Array(body)));
    if (!('frame' in admitted)) return admitted;
    const { run, frame: s, lease } = admitted;
    const problem = evalProblem(s, run.shards.evalRange(s.shard).count);
    if (problem) {
      if (problem.reason === 'non-finite') await this.noteNonFinite(run, 'eval', s.shard, worker, leaseId, problem.error);
      return this.refuse(worker, problem, leaseId);
    }
    this.answered(run, lease, worker);
    const answer = { worker, lossSum: s.lossSum, correct: s.correct, count: s.count };
    const checks = this.evalVerification(run);
    const domain = run.shards.evalDomain(s.shard);
    if (this.verifying(run) && !checks.checks(s.shard) && evalSuspect(s.correct, s.count, this.store.evalReference(s.step, run.shards.evalShardsOf(domain), domain === 'target'))) {
      checks.escalate(s.shard);
      run.counts.suspectEvals++;
    }
    const counted = checks.checks(s.shard) ? await this.settle(run, 'eval', s.shard, leaseId, answer, checks) : answer;
    if (!counted || run.position.phase !== 'eval' || FINAL_STATES.includes(run.record.state)) return ok({ accepted: true, version: run.position.step });
    this.store.addEvalPart(s.step, s.shard, counted.lossSum, counted.correct, counted.count, counted.worker);
    // The epoch's evaluation is complete once every shard of both test splits (source, target) is in.
    if (this.store.evalTotals(s.step).parts === run.shards.evalShards) await this.finishEval(run);
    return ok({ accepted: true, version: run.position.step });
  }

  /**
   * Expires due leases (their shards go to other workers), leases again the shards of groups whose
   * partial sum never came, wakes long polls, re-arms for the next deadline.
   */
  async alarm(): Promise<void> {
    const now = Date.now();
    const expiry = this.leases.expireDue(now);
    const run = this.run;
    if (!run) return;
    if (FINAL_STATES.includes(run.record.state)) return this.pruneIdentities(true);
    const pruneAt = this.identities.prune(now, false);
    const reopen = this.reopenLostGroups(run, now);
    const fleetCheck = await this.superviseFleet(run, now);
    const next = Math.min(expiry ?? Infinity, reopen ?? Infinity, fleetCheck ?? Infinity, pruneAt ?? Infinity);
    if (Number.isFinite(next)) await this.leases.armFor(next);
  }

  /** Deletes the identities due for it and sets the alarm for the next (the run's end deletes unused ones as they expire). */
  private async pruneIdentities(runEnded: boolean): Promise<void> {
    const next = this.identities.prune(Date.now(), runEnded);
    if (next !== null) await this.leases.armFor(next);
  }

  /**
   * A group whose every shard was admitted REOPEN_AFTER_MS ago without its partial sum arriving lost
   * it (an aggregator evicted or restarted): its shards are leased again (they recompute to the same
   * values). Returns when to look again, or null.
   */
  private reopenLostGroups(run: ActiveRun, now: number): number | null {
    const { aggregators } = run.record.spec.config.cluster;
    let next: number | null = null;
    for (let group = 0; group < aggregators && run.pending.size; group++) {
      const members = groupShards(group, aggregators, run.shards.trainShards);
      const pending = members.map((shard) => run.pending.get(shard));
      if (pending.some((p) => !p)) continue;
      const readyAt = Math.max(...pending.map((p) => p!.at));
      if (now - readyAt < REOPEN_AFTER_MS) {
        next = Math.min(next ?? Infinity, readyAt + REOPEN_AFTER_MS);
        continue;
      }
      console.warn(`run ${run.record.runId}: aggregator ${group}'s sum for step ${run.position.step} did not arrive within ${REOPEN_AFTER_MS} ms; leasing shards ${members.join(', ')} again`);
      for (const [i, shard] of members.entries()) {
        this.leases.reopen(pending[i]!.leaseId);
        run.pending.delete(shard);
      }
      run.rounds.set(group, Math.max(now, this.roundOf(run, group) + 1));
      this.leases.wake();
    }
    return next;
  }

  // ---------- the fleet ----------

  /**
   * Starts the run's chains where the Worker has its work queue: new ones up to cluster.workers, and on
   * a resume the next generation of every existing one. The alarm then looks after them.
   */
  private async startFleet(run: ActiveRun): Promise<void> {
    if (!this.env.WORK) return;
    const { runId, spec } = run.record;
    const now = Date.now();
    const sends = [...this.fleet.next(runId, this.fleet.all(), now, 0, false), ...this.fleet.grow(runId, spec.config.cluster.workers, now)];
    await this.leases.armFor(now + FLEET_CHECK_MS);
    // A send that fails (the queue over its rate) loses nothing: unclaimed chains are sent again by the alarm.
    await this.send(sends).catch((e: unknown) => console.error(`run ${runId}: sending the fleet's messages failed; the alarm sends them again: ${String(e)}`));
  }

  /** Sends chain messages, each with its chain's credential (the chains are this deployment's own workers: not minted, not counted). */
  private async send(sends: readonly ChainSend[]): Promise<void> {
    if (!this.env.WORK || !sends.length) return;
    if (!this.env.API_TOKEN) throw new Error('API_TOKEN is not set: the fleet cannot sign its messages');
    const key = await signingKey(this.env.API_TOKEN);
    const expiresAt = Date.now() + CREDENTIAL_TTL_MS;
    const signed = await Promise.all(
      sends.map(async (s): Promise<ChainSend<ChainMessage>> => ({ ...s, message: { ...s.message, token: await workerCredential(key, { runId: s.message.runId, workerId: s.message.chain, expiresAt }) } })),
    );
    await sendChains(this.env.WORK, signed);
  }

  /** An invocation starting on a chain: go on, or stop (a duplicate delivery, a superseded generation, a finished run). */
  claimChain(chain: string, ticket: ChainTicket): Outcome<ChainClaim> {
    const run = this.run;
    if (!run) return notFound();
    if (FINAL_STATES.includes(run.record.state)) return ok({ type: 'stop', reason: 'finished', error: `run is ${run.record.state}` });
    return ok(this.fleet.claim(chain, ticket, Date.now()));
  }

  /** The chain's invocation spent its budget: the coordinator sends the chain's next message. False: it was not the chain's. */
  async handOver(chain: string, ticket: ChainTicket): Promise<Outcome<{ handedOver: boolean }>> {
    const run = this.run;
    if (!run) return notFound();
    const { runId } = run.record;
    // Checked and advanced with no await between: a repeated handover finds the chain moved on.
    if (FINAL_STATES.includes(run.record.state) || !this.fleet.holds(chain, ticket)) return ok({ handedOver: false });
    await this.send(this.fleet.next(runId, [chain], Date.now(), 0, false));
    return ok({ handedOver: true });
  }

  /** A chain's message was dead-lettered (every retry failed): its next generation starts after a delay. */
  async chainFailed(chain: string, generation: number): Promise<Outcome<{ restarted: boolean }>> {
    const run = this.run;
    if (!run) return notFound();
    if (FINAL_STATES.includes(run.record.state) || !this.fleet.isCurrent(chain, generation)) return ok({ restarted: false });
    console.warn(`run ${run.record.runId}: chain ${chain} generation ${generation} was dead-lettered; starting it again in ${RESTART_DELAY_S} s`);
    await this.restart(run, [chain]);
    return ok({ restarted: true });
  }

  private async restart(run: ActiveRun, chains: readonly string[]): Promise<void> {
    const { runId } = run.record;
    await this.send(this.fleet.next(runId, chains, Date.now(), RESTART_DELAY_S, true));
  }

  /** Starts again the chains not heard from; returns when to look again (null: no fleet). */
  private async superviseFleet(run: ActiveRun, now: number): Promise<number | null> {
    if (!this.env.WORK || this.fleet.size === 0) return null;
    const silent = this.fleet.silent(now, run.record.spec.config.cluster.leaseMs + SILENT_MARGIN_MS);
    if (silent.length) {
      console.warn(`run ${run.record.runId}: chains ${silent.join(', ')} went silent; starting them again in ${RESTART_DELAY_S} s`);
      await this.restart(run, silent);
    }
    return now + FLEET_CHECK_MS;
  }

  // ---------- internals ----------

  private tryLease(run: ActiveRun, worker: string): LeaseReply<IssuedLease & LeaseBounds> {
    const { record, position, shards } = run;
    if (FINAL_STATES.includes(record.state)) return { type: 'done', state: record.state };
    const published = run.published;
    if (published?.version !== position.step) return { type: 'wait', retryMs: PUBLISH_WAIT_MS };
    const now = Date.now();
    const kind = position.phase;
    const windowMs = this.leases.window.millis(kind, shards.examplesPerLease(kind), record.spec.config.cluster.leaseMs);
    // Eval answers are stored: after a cancel (which forgets every lease) and a resume, the shards
    // answered before are not leased again.
    const counted = kind === 'train' ? run.sum.countedShards : this.store.evalShards(position.step);
    const checks = kind === 'train' ? run.verify : this.evalVerification(run);
    const choice = pickShard(this.leases.leasesOf(kind, position.step), counted, shards.shards(kind), now, windowMs, worker, (shard) => checks.more(shard));
    if ('retryMs' in choice) return { type: 'wait', retryMs: choice.retryMs };
    if (record.state === 'created') this.setState(run, 'training');
    const deadline = now + windowMs;
    const leaseId = this.leases.issue(kind, position.step, choice.shard, worker, now, deadline);
    if (kind === 'train' && run.sum.empty && run.sum.firstLeaseAt === 0) run.sum.firstLeaseAt = now;
    const lease = shards.lease(kind, { leaseId, step: position.step, shard: choice.shard, deadline, paramsTag: published.tag });
    return { type: 'lease', lease: { ...lease, ...this.boundsOf(run, kind, now) } };
  }

  /**
   * Decodes a submission and checks it against its lease and the run: the frame to count, or the
   * answer (a refusal, or 'duplicate' for a shard already counted).
   */
  private admit<F extends FrameHead>(leaseId: string, worker: string, kind: LeaseKind, read: () => F): { run: ActiveRun; frame: F; lease: LeaseRow } | Outcome<SubmitReply> {
    const run = this.run;
    if (!run) return notFound();
    const refused = this.gate(worker);
    if (refused) return refused;
    // First whether the lease can take an answer at all (nothing about the body counts against the
    // worker then), then the body.
    const lease = answerableLease(this.leases.find(leaseId), leaseId, worker, run.record.state);
    if ('ok' in lease) return this.refuse(worker, lease);
    let frame: F;
    try {
      frame = read();
    } catch (e) {
      return this.refuse(worker, wireFailure(e), leaseId);
    }
    const counted = kind === 'train' ? run.sum.step === frame.step && (run.sum.has(frame.shard) || run.pending.has(frame.shard)) : this.store.hasEvalPart(frame.step, frame.shard);
    const verdict = frameVerdict(lease, kind, frame, counted, run.position);
    if (verdict) return verdict.ok ? verdict : this.refuse(worker, verdict, leaseId);
    return { run, frame, lease };
  }

  /** The round of a group's answers in the current step (aggregation.ts GroupRound). */
  private roundOf(run: ActiveRun, group: number): GroupRound {
    return run.rounds.get(group) ?? run.roundBase;
  }

  /** The checks a gradient answer passes before it counts (its lease and frame head already admitted): a refusal, or undefined. */
  private async gradientProblem(run: ActiveRun, s: FrameHead, worker: string, leaseId: string, f: FrameFindings): Promise<Failure | undefined> {
    if (f.shape) return this.refuse(worker, f.shape, leaseId);
    if (f.nonFinite) {
      await this.noteNonFinite(run, 'train', s.shard, worker, leaseId, f.nonFinite);
      return this.refuse(worker, fail(422, f.nonFinite, 'non-finite'), leaseId);
    }
    if (f.range) return this.refuse(worker, f.range, leaseId);
    const absurd = this.admission.norms.check(s.step, s.shard, worker, f.norm);
    if (absurd) return this.refuse(worker, fail(422, absurd, 'norm'), leaseId);
    const replay = this.admission.replays.check(s.step, s.shard, f.digest);
    if (replay) return this.refuse(worker, fail(422, replay, 'replay'), leaseId);
    this.admission.norms.accepted(f.norm);
    this.admission.replays.accepted(s.step, s.shard, f.digest);
    return undefined;
  }

  /** Marks a lease answered and counts it for its worker. */
  private answered(run: ActiveRun, lease: LeaseRow, worker: string): void {
    this.leases.answered(lease, run.shards.examplesPerLease(lease.kind), Date.now());
    this.admission.accepted(worker);
  }

  /**
   * Counts a refusal against the worker. Bad data (400, 422) also frees the lease's shard for another
   * worker at once; a long enough streak of it excludes the worker, and its leases are freed too.
   */
  private refuse(worker: string, failure: Failure, leaseId?: string): Failure {
    const effect = this.admission.refused(worker, failure);
    if (effect.spendLease && leaseId) this.leases.refuse(leaseId, worker);
    if (effect.excluded) this.leases.refuseAllOf(worker);
    if (effect.spendLease) this.leases.wake();
    return failure;
  }

  /**
   * A shard reported non-finite by enough distinct established workers (Admission.reportNonFinite) is
   * divergence: the run fails with the last good parameters, and can be resumed from them.
   */
  private async noteNonFinite(run: ActiveRun, kind: LeaseKind, shard: number, worker: string, leaseId: string, what: string): Promise<void> {
    const { step } = run.position;
    const activeSince = Date.now() - Math.max(ACTIVE_WINDOW_MS, 2 * run.record.spec.config.cluster.leaseMs);
    const { diverged, votes } = this.admission.reportNonFinite(kind, step, shard, worker, leaseId, activeSince);
    if (!diverged) return;
    const where = kind === 'train' ? `step ${step + 1}` : `the evaluation at step ${step}`;
    await this.end(run, 'failed', `${DIVERGED} at ${where} (shard ${shard}: ${what}, from ${votes} worker${votes === 1 ? '' : 's'}); parameters are those of version ${step}, and resume continues from them`);
  }

  /** Ends a run early (cancelled, failed): the last applied step is committed, as full state, and checkpointed. */
  private async end(run: ActiveRun, state: 'cancelled' | 'failed', error: string | null = null): Promise<void> {
    this.store.transaction(() => {
      if (run.committed.step < run.position.step) this.commit(run, true);
      this.setState(run, state, error);
    });
    this.snapshot(run);
    await indexRun(this.env.KV, run.record);
    await this.pruneIdentities(true);
  }

  /**
   * Applies the complete step and commits it (its update-log entry and the run row, one transaction,
   * milliseconds), then hands out leases for the new version as soon as it is in the cache; its R2
   * write follows while the next step is computed, and is done before that step is applied. The answer
   * that completed the step is acknowledged after the commit.
   */
  private async applyStep(run: ActiveRun): Promise<void> {
    await run.persisting;
    const { sum, shards } = run;
    const { train, cluster } = run.record.spec.config;
    let t = performance.now();
    const mean = sum.mean();
    const sumMs = sum.sumMs + performance.now() - t;
    t = performance.now();
    applyRunUpdate(run.model, mean, run.position.step, run.record.spec.config);
    const optimizerMs = performance.now() - t;
    const step = run.position.step + 1;
    // A DiLoCo round trains each of its inner steps on a whole batch.
    const images = train.batch * shards.globalSteps(step - 1).count;
    const epochEnd = shards.endsEpoch(step);
    const now = Date.now();
    run.position = { step, phase: epochEnd ? 'eval' : 'train', optimizerStep: run.model.optimizer.state.step };
    run.record.updatedAt = now;
    t = performance.now();
    this.store.transaction(() => {
      this.store.logUpdate({ step, grads: mean.grads, stats: mean.stats });
      if (epochEnd || step % cluster.commitEvery === 0) this.commit(run);
      this.leases.forgetTrainBefore(step);
      this.store.recordStep({
        step,
        epoch: Math.floor((step - 1) / shards.stepsPerEpoch),
        loss: mean.loss,
        accuracy: mean.correct / images,
        images,
        stepMs: now - sum.firstLeaseAt,
        at: now,
        workers: mean.workers,
        ...(mean.domain ? { domain: mean.domain } : {}),
      });
    });
    const commitMs = performance.now() - t;
    this.newStep(run);
    this.admission.nextStep(step);
    t = performance.now();
    const { version, frame } = run.versions.encode(step, run.model.params, run.model.buffers);
    const encodeMs = performance.now() - t;
    await run.versions.cache(version, frame);
    const cachedMs = performance.now() - t;
    if (FINAL_STATES.includes(run.record.state)) return;
    this.release(run, version);
    if (step % cluster.snapshotEvery === 0) this.snapshot(run);
    const critical: StepPhases = { decodeMs: sum.decodeMs, sumMs, optimizerMs, commitMs, publishMs: cachedMs, ...(sum.aggregatorMs ? { aggregatorMs: sum.aggregatorMs } : {}) };
    // The object's own work on the step; the cache put and the R2 write are I/O (phases.publishMs).
    const busyMs = sum.decodeMs + sumMs + optimizerMs + commitMs + encodeMs;
    run.persisting = this.storeVersion(run, step, version, frame, critical, busyMs);
    this.ctx.waitUntil(run.persisting);
  }

  /**
   * Writes a version to R2 (beside the next step's compute), then records the step's timings. The write
   * starts a moment after the release, once this data center's workers have read the version from the
   * cache: on Cloudflare it is network I/O either way, but locally Miniflare's R2 runs on the
   * coordinator process's thread, and writing while workers read slowed every step by ~15 %.
   */
  private async storeVersion(run: ActiveRun, step: number, version: PublishedVersion, frame: Uint8Array<ArrayBuffer>, critical: StepPhases, busyMs: number): Promise<void> {
    await new Promise((r) => setTimeout(r, R2_WRITE_DELAY_MS));
    // A failed write costs readers outside the cache a 503 for this version, not the run its next step.
    const t0 = performance.now();
    await run.versions.store(version, frame).catch((e: unknown) => console.error(`run ${run.record.runId}: writing version ${version.version} to R2 failed: ${String(e)}`));
    const phases: StepPhases = { ...critical, publishMs: critical.publishMs + performance.now() - t0 };
    this.store.recordCoordinatorMs(step, busyMs, phases);
  }

  /** Writes the applied step's parameters to R2 and hands out leases for them. */
  private async publish(run: ActiveRun): Promise<PublishedVersion> {
    const version = await run.versions.publish(run.position.step, run.model.params, run.model.buffers);
    this.release(run, version);
    return version;
  }

  /** Leases for `version` go out from now on; the version before it is deleted. */
  private release(run: ActiveRun, version: PublishedVersion): void {
    const previous = run.published;
    run.published = version;
    this.leases.wake();
    if (previous && previous.version !== version.version) this.ctx.waitUntil(run.versions.forget(previous));
  }

  /** One domain's test split scored over its counted eval parts. */
  private evalScore(run: ActiveRun, domain: Domain): EvalScore {
    const t = this.store.evalTotals(run.position.step, run.shards.evalShardsOf(domain));
    return { loss: t.lossSum / t.count, accuracy: t.correct / t.count };
  }

  private async finishEval(run: ActiveRun): Promise<void> {
    const { step } = run.position;
    const test = this.evalScore(run, 'source');
    const target = run.record.spec.targetDataset ? this.evalScore(run, 'target') : undefined;
    const epoch = step / run.shards.stepsPerEpoch;
    const now = Date.now();
    run.position = { ...run.position, phase: 'train' };
    run.record.updatedAt = now;
    this.store.transaction(() => {
      this.store.recordEval(epoch, step, test, target, this.store.epochDomain(epoch - 1), now);
      this.leases.forgetEval();
      // An epoch's end is always committed, so the committed position moves on with the phase.
      run.committed = run.position;
      this.store.writeRun(run.record, run.committed);
    });
    const last = epoch >= run.record.spec.config.train.epochs;
    if (last) this.setState(run, 'completed');
    this.snapshot(run);
    if (last) {
      await indexRun(this.env.KV, run.record);
      await this.pruneIdentities(true);
    }
    this.leases.wake();
  }

  /**
   * Records the applied position as durable (inside the caller's transaction). The full state is
   * written when `fullState`, or when the update log has grown to FULL_STATE_EVERY steps; otherwise the
   * log (every step up to this one, already written) covers the steps since the last full state.
   */
  private commit(run: ActiveRun, fullState = false): void {
    if (fullState || run.position.step - run.stateAt.step >= FULL_STATE_EVERY) {
      const { params, buffers, optimizer } = run.model;
      run.stateAt = { step: run.position.step, optimizerStep: optimizer.state.step };
      this.store.writeTensors({ params, buffers, slots: optimizer.state.slots }, run.stateAt);
      this.store.forgetUpdatesThrough(run.stateAt.step);
    }
    run.committed = run.position;
    this.store.writeRun(run.record, run.committed);
  }

  private setState(run: ActiveRun, state: RunState, error: string | null = null): void {
    run.record.state = state;
    run.record.error = error;
    run.record.updatedAt = Date.now();
    this.store.writeRun(run.record, run.committed);
    if (FINAL_STATES.includes(state)) {
      this.leases.forgetAll();
      this.leases.wake();
    }
  }

  /** A checkpoint in the trainer's format to R2, written after the response (not on the step's path). */
  private snapshot(run: ActiveRun): void {
    const bytes = checkpointBytes(run.record.spec, run.shards, run.position, run.model, this.store.epochHistory());
    this.ctx.waitUntil(this.env.DATA.put(snapshotKey(run.record.runId, run.position.step), bytes));
  }

  private statusOf(run: ActiveRun): RunStatus {
    const now = Date.now();
    const status = runStatus(this.store.sql, run.record, run.position, run.shards, workerSummaries(this.store.sql, now - ACTIVE_WINDOW_MS));
    const fleet = this.fleet.status(run.record.spec.config.cluster.workers, now);
    const verification = this.verifying(run) ? { verification: { ...run.counts } } : {};
    return { ...status, ...(fleet ? { fleet } : {}), ...verification };
  }
}
