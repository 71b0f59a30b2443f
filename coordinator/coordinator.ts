// The TrainingCoordinator Durable Object: parameter server and scheduler of one run.
//
// State lives in SQLite (coordinator/schema.ts). The in-memory copy is rebuilt from it on start; the
// only thing kept in memory alone is the running sum of the current step's gradients: if the object
// restarts mid-step, that step's shards are simply leased again (the data order is deterministic, so
// the recomputed gradients are the same) and nothing is applied twice. A step is committed to SQLite,
// in one transaction, before the submission that completed it is answered.
import { DurableObject } from 'cloudflare:workers';
import type { DurableObjectState } from '@cloudflare/workers-types/index';
import type { DatasetManifest } from '../shared/data/blocks';
import { trainingLayout } from '../shared/models/compile';
import { TEXT_DIM } from '../shared/models/heads';
import { decayMask, initBuffers, initParameters } from '../shared/models/params';
import { createOptimizer, restoreOptimizer, slotCount, type Optimizer } from '../shared/optim/optimizer';
import { learningRate } from '../shared/optim/schedule';
import { FINAL_STATES, type IssuedLease, type LeaseKind, type LeaseReply, type RunConfig, type RunMetrics, type RunSpec, type RunState, type RunStatus, type RunSummary, type SubmitReply } from '../shared/protocol';
import { runIndexKey, snapshotKey } from '../shared/storage-keys';
import { CAPTIONS_PREFIX, captionsForModel } from '../shared/text/caption-store';
import { encodeCheckpoint } from '../shared/training/checkpoint';
import { inferenceModelBytes } from '../shared/training/export';
import { RunPlan } from '../shared/training/plan';
import { updateRunningStats } from '../shared/training/trainer';
import { WireError, decodeEval, decodeGradient, encodeParams } from '../shared/wire';
import type { Env } from '../workers/env';
import { LeaseWindow } from './lease-window';
import { NormGuard, l2Norm } from './norm-guard';
import { fail, ok, type Failure, type Outcome } from './outcome';
import { RateLimiter } from './rate-limit';
import { migrate, readTensor, writeTensor } from './schema';
import { stepMetrics, evalMetrics, runStatus } from './status';
import { exclusionOf, recordAccepted, recordRejected, touchWorker, workerSummaries } from './worker-record';

interface RunRow extends Record<string, string | number | null> {
  run_id: string;
  spec: string;
  state: RunState;
  error: string | null;
  step: number;
  phase: LeaseKind;
  optimizer_step: number;
  created_at: number;
  updated_at: number;
}

/**
 * The current step's submissions, summed as they arrive. In float64: the sum of a step's shards is
 * then the same whatever order they arrive in (to far below float32 resolution), so a run with
 * re-issued, late or re-ordered answers ends with the same parameters as one without.
 */
interface StepSum {
  readonly step: number;
  readonly grads: Float64Array;
  readonly stats: Float64Array;
  readonly shards: Set<number>;
  /** Which worker's answer was counted for each shard (shard → worker id). */
  readonly counted: Map<number, string>;
  loss: number;
  correct: number;
  firstLeaseAt: number;
  /** Time spent decoding and summing this step's submissions. */
  aggregateMs: number;
}

/** A run loaded into memory. */
interface Loaded {
  readonly row: RunRow;
  readonly spec: RunSpec;
  readonly plan: RunPlan;
  readonly params: Float32Array;
  readonly buffers: Float32Array;
  readonly optimizer: Optimizer;
  readonly mask: Uint8Array;
  readonly trainShards: number;
  readonly evalShards: number;
  sum: StepSum;
  /** The step whose parameters and optimizer state are in storage (≤ row.step with commitEvery > 1). */
  committedStep: number;
  paramsFrame?: { version: number; bytes: Uint8Array<ArrayBuffer> };
}

/** How long a lease request waits for a shard to free up before answering "wait". */
const LONG_POLL_MS = 2000;
/** Workers seen within this window count as active. */
const ACTIVE_WINDOW_MS = 15_000;
/** Non-finite results for one shard that make a run fail as diverged. */
const DIVERGENCE_REPORTS = 3;

/** A lease row as the submission checks read it. */
interface LeaseRow extends Record<string, string | number> {
  kind: string;
  step: number;
  shard: number;
  worker: string;
  state: string;
  issued_at: number;
}

export class TrainingCoordinator extends DurableObject<Env> {
  private run: Loaded | undefined;
  private waiters = new Set<() => void>();
  /** Leases that answered non-finite, per "kind:step:shard" of the current step or evaluation. */
  private nonFinite = new Map<string, Set<string>>();
  /** When the alarm is due (null: none); undefined until read from storage. */
  private alarmAt: number | null | undefined;
  private readonly leaseWindow = new LeaseWindow();
  private readonly limiter = new RateLimiter();
  private readonly norms = new NormGuard();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql);
      this.run = this.load();
    });
  }

  private get sql() {
    return this.ctx.storage.sql;
  }

  private load(): Loaded | undefined {
    const row = this.sql.exec<RunRow>('SELECT * FROM run WHERE id = 1').toArray()[0];
    if (!row) return undefined;
    const spec = JSON.parse(row.spec) as RunSpec;
    const { train } = spec.config;
    const layout = trainingLayout(train.model);
    const optimizer = restoreOptimizer(
      train.optimizer,
      { step: row.optimizer_step, slots: Array.from({ length: slotCount(train.optimizer) }, (_, i) => readTensor(this.sql, `optimizer.${i}`, spec.paramCount)) },
      spec.paramCount,
    );
    // A restart (a process restart, or the runtime evicting an idle object while workers compute)
    // loses the partial sum of the step in progress and any steps after the last commit: their counted
    // shards are leased again and recompute to the same values. Leases of the committed step still out
    // stay valid: their answers are not counted yet and are still welcome.
    this.sql.exec("DELETE FROM leases WHERE kind = 'train' AND (step > ? OR (step = ? AND state <> 'active'))", row.step, row.step);
    this.sql.exec('DELETE FROM step_metrics WHERE step > ?', row.step);
    return this.loaded(row, spec, readTensor(this.sql, 'params', spec.paramCount), readTensor(this.sql, 'buffers', spec.bufferCount), optimizer, decayMask(layout.params));
  }

  private loaded(row: RunRow, spec: RunSpec, params: Float32Array, buffers: Float32Array, optimizer: Optimizer, mask: Uint8Array): Loaded {
    const { train, cluster } = spec.config;
    return {
      row,
      spec,
      plan: new RunPlan(train, spec.dataset.train.count),
      params,
      buffers,
      optimizer,
      mask,
      trainShards: train.batch / cluster.microBatch,
      evalShards: Math.ceil(spec.dataset.test.count / train.evalBatch),
      sum: emptySum(row.step, spec),
      committedStep: row.step,
    };
  }

  // ---------- run lifecycle ----------

  async create(runId: string, config: RunConfig, manifest: DatasetManifest): Promise<Outcome<RunStatus>> {
    if (this.run) return fail(409, `run ${this.run.row.run_id} already exists here`, 'exists');
    // The API read the manifest through checkManifest before calling here.
    const dataset = manifest;
    const layout = trainingLayout(config.train.model);
    let plan: RunPlan;
    try {
      plan = new RunPlan(config.train, dataset.train.count);
    } catch (e) {
      return fail(400, (e as Error).message, 'config');
    }
    const resolved: RunConfig = { ...config, train: { ...config.train, schedule: plan.schedule } };
    const params = initParameters(layout.params, config.train.seed);
    const buffers = initBuffers(layout.buffers);
    const spec: RunSpec = { runId, config: resolved, dataset, paramCount: params.length, bufferCount: buffers.length };
    const optimizer = createOptimizer(config.train.optimizer, params.length);
    const now = Date.now();
    const row: RunRow = { run_id: runId, spec: JSON.stringify(spec), state: 'created', error: null, step: 0, phase: 'train', optimizer_step: 0, created_at: now, updated_at: now };
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        'INSERT INTO run (id, run_id, spec, state, error, step, phase, optimizer_step, created_at, updated_at) VALUES (1, ?, ?, ?, NULL, 0, ?, 0, ?, ?)',
        runId, row.spec, row.state, row.phase, now, now,
      );
      this.writeState(params, buffers, optimizer);
    });
    this.run = this.loaded(row, spec, params, buffers, optimizer, decayMask(layout.params));
    await this.indexRun();
    return ok(this.statusOf(this.run));
  }

  /** Stops the run, committing the parameters of its last applied step: resume continues from them. */
  async cancel(): Promise<Outcome<RunStatus>> {
    const run = this.run;
    if (!run) return notFound();
    if (!FINAL_STATES.includes(run.row.state)) await this.end(run, 'cancelled');
    return ok(this.statusOf(run));
  }

  /** Continues a cancelled run from its committed step. */
  async resume(): Promise<Outcome<RunStatus>> {
    const run = this.run;
    if (!run) return notFound();
    if (run.row.state !== 'cancelled') return fail(409, `only a cancelled run can be resumed; this one is ${run.row.state}`, 'not-cancelled');
    run.sum = emptySum(run.row.step, run.spec);
    this.setState(run, run.row.step === 0 && run.row.phase === 'train' ? 'created' : 'training');
    await this.indexRun();
    return ok(this.statusOf(run));
  }

  status(): Outcome<RunStatus> {
    return this.run ? ok(this.statusOf(this.run)) : notFound();
  }

  spec(): Outcome<RunSpec> {
    return this.run ? ok(this.run.spec) : notFound();
  }

  metrics(sinceStep = -1): Outcome<RunMetrics> {
    if (!this.run) return notFound();
    return ok({ steps: stepMetrics(this.sql, sinceStep), evals: evalMetrics(this.sql) });
  }

  /** Parameters of `version`; only the current version is held (workers cache it). */
  params(version: number): Outcome<ArrayBuffer> {
    const run = this.run;
    if (!run) return notFound();
    if (version > run.row.step) return fail(404, `parameter version ${version} does not exist yet; the current version is ${run.row.step}`, 'future-version');
    if (version < run.row.step) return fail(410, `parameter version ${version} is gone; the current version is ${run.row.step}`, 'stale');
    if (run.paramsFrame?.version !== version) run.paramsFrame = { version, bytes: encodeParams({ version, params: run.params, buffers: run.buffers }) };
    return ok(run.paramsFrame.bytes.buffer);
  }

  /** The inference model with the current weights and the run's caption vectors baked in. */
  async model(): Promise<Outcome<ArrayBuffer>> {
    const run = this.run;
    if (!run) return notFound();
    const { train, captions: hash } = run.spec.config;
    let captions: Float32Array | undefined;
    if (hash) {
      const stored = await this.env.KV.get(`${CAPTIONS_PREFIX}${hash}`, 'arrayBuffer');
      if (!stored) return fail(409, `caption set ${hash} is no longer in KV; the model cannot be exported without it`, 'captions');
      captions = captionsForModel(new Uint8Array(stored), train.model, TEXT_DIM, hash);
    }
    return ok(inferenceModelBytes(train.model, train.normalization, run.params, run.buffers, captions).slice().buffer);
  }

  // ---------- the worker protocol ----------

  async lease(worker: string): Promise<Outcome<LeaseReply<IssuedLease>>> {
    const run = this.run;
    if (!run) return notFound();
    const refused = this.gate(worker);
    if (refused) return refused;
    touchWorker(this.sql, worker);
    const wasCreated = run.row.state === 'created';
    // Long poll: hold the request until a shard frees up (a step commits, a lease expires) or time is up.
    const until = Date.now() + LONG_POLL_MS;
    let reply = this.tryLease(run, worker);
    while (reply.type === 'wait' && Date.now() < until) {
      const waitMs = Math.min(until - Date.now(), reply.retryMs);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, waitMs);
        this.waiters.add(wake);
      });
      reply = this.tryLease(run, worker);
    }
    if (reply.type === 'lease') await this.armAlarm(reply.lease.deadline);
    if (wasCreated && run.row.state !== 'created') await this.indexRun();
    return ok(reply);
  }

  /** Extends a lease by the adaptive window, never past leaseMs from its issue. */
  heartbeat(leaseId: string, worker: string): Outcome<{ deadline: number }> {
    const run = this.run;
    if (!run) return notFound();
    const refused = this.gate(worker);
    if (refused) return refused;
    const now = Date.now();
    const lease = this.sql.exec<{ kind: LeaseKind; deadline: number; state: string; issued_at: number; worker: string }>('SELECT kind, deadline, state, issued_at, worker FROM leases WHERE lease_id = ?', leaseId).toArray()[0];
    if (!lease || lease.state !== 'active' || lease.deadline <= now) return fail(409, `lease ${leaseId} is not active (answered, expired or unknown)`, 'unknown-lease');
    if (lease.worker !== worker) return fail(403, `lease ${leaseId} was issued to another worker`, 'not-yours');
    const { leaseMs } = run.spec.config.cluster;
    const window = this.leaseWindow.millis(lease.kind, this.leaseExamples(run, lease.kind), leaseMs);
    const deadline = Math.max(lease.deadline, Math.min(now + window, lease.issued_at + leaseMs));
    this.sql.exec('UPDATE leases SET deadline = ? WHERE lease_id = ?', deadline, leaseId);
    return ok({ deadline });
  }

  async submitGradient(leaseId: string, body: ArrayBuffer, worker: string): Promise<Outcome<SubmitReply>> {
    const t0 = performance.now();
    const admitted = this.admit(leaseId, body, worker, 'train', decodeGradient);
    if (!('frame' in admitted)) return admitted;
    const { run, frame: s, lease } = admitted;
    const { spec } = run;
    const reject = (f: Failure) => this.reject(worker, f, leaseId);
    if (s.grads.length !== spec.paramCount) return reject(fail(400, `gradient has ${s.grads.length} values; the model has ${spec.paramCount} parameters`, 'length'));
    if (s.stats.length !== spec.bufferCount) return reject(fail(400, `statistics have ${s.stats.length} values; the model has ${spec.bufferCount} buffer values`, 'length'));
    if (s.count !== spec.config.cluster.microBatch) return reject(fail(400, `shard of ${s.count} examples; leases are ${spec.config.cluster.microBatch}`, 'count'));
    // One pass over the gradient in the common case: a finite norm means finite values; only a
    // non-finite norm is searched for the value to name (a norm that overflowed is left to the norm check).
    const norm = l2Norm(s.grads);
    const nonFinite = !Number.isFinite(s.loss)
      ? `loss is ${s.loss}`
      : (Number.isFinite(norm) ? undefined : firstNonFinite(s.grads, 'gradient')) ?? firstNonFinite(s.stats, 'statistics');
    if (nonFinite) {
      await this.noteNonFinite(run, 'train', s.shard, s.leaseId, nonFinite);
      return reject(fail(422, nonFinite, 'non-finite'));
    }
    const absurd = this.norms.check(s.step, s.shard, worker, norm);
    if (absurd) return reject(fail(422, absurd, 'norm'));
    this.norms.accepted(norm);

    const sum = run.sum;
    for (let i = 0; i < sum.grads.length; i++) sum.grads[i] += s.grads[i];
    for (let i = 0; i < sum.stats.length; i++) sum.stats[i] += s.stats[i];
    sum.loss += s.loss;
    sum.correct += s.correct;
    sum.shards.add(s.shard);
    sum.counted.set(s.shard, worker);
    sum.aggregateMs += performance.now() - t0;
    this.answered(s.leaseId, lease, worker);
    if (sum.shards.size === run.trainShards) await this.applyStep(run);
    return ok({ accepted: true, version: run.row.step });
  }

  async submitEval(leaseId: string, body: ArrayBuffer, worker: string): Promise<Outcome<SubmitReply>> {
    const admitted = this.admit(leaseId, body, worker, 'eval', decodeEval);
    if (!('frame' in admitted)) return admitted;
    const { run, frame: s, lease } = admitted;
    const expected = this.evalRange(run, s.shard);
    if (s.count !== expected.count) return this.reject(worker, fail(400, `eval shard of ${s.count} examples; shard ${s.shard} has ${expected.count}`, 'count'), leaseId);
    if (!Number.isFinite(s.lossSum)) {
      await this.noteNonFinite(run, 'eval', s.shard, s.leaseId, `loss is ${s.lossSum}`);
      return this.reject(worker, fail(422, `loss is ${s.lossSum}`, 'non-finite'), leaseId);
    }
    if (s.correct > s.count || s.lossSum < 0) return this.reject(worker, fail(422, `eval answer of ${s.correct} correct of ${s.count} with loss sum ${s.lossSum} is impossible`, 'range'), leaseId);
    this.sql.exec('INSERT INTO eval_parts (step, shard, loss_sum, correct, count) VALUES (?, ?, ?, ?, ?)', s.step, s.shard, s.lossSum, s.correct, s.count);
    this.answered(s.leaseId, lease, worker);
    const done = this.sql.exec<{ n: number; loss: number; correct: number; count: number }>(
      'SELECT COUNT(*) AS n, SUM(loss_sum) AS loss, SUM(correct) AS correct, SUM(count) AS count FROM eval_parts WHERE step = ?',
      s.step,
    ).one();
    if (done.n === run.evalShards) await this.finishEval(run, done.loss / done.count, done.correct / done.count);
    return ok({ accepted: true, version: run.row.step });
  }

  /** Wakes long-polling lease requests and re-arms itself for the next lease deadline. */
  async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = Date.now();
    this.sql.exec("UPDATE leases SET state = 'expired' WHERE state = 'active' AND deadline <= ?", now);
    this.wake();
    const next = this.sql.exec<{ d: number | null }>("SELECT MIN(deadline) AS d FROM leases WHERE state = 'active'").one().d;
    if (next !== null && this.run && !FINAL_STATES.includes(this.run.row.state)) await this.armAlarm(next);
  }

  // ---------- internals ----------

  private tryLease(run: Loaded, worker: string): LeaseReply<IssuedLease> {
    const { row } = run;
    if (FINAL_STATES.includes(row.state)) return { type: 'done', state: row.state };
    const now = Date.now();
    const kind = row.phase;
    const shards = kind === 'train' ? run.trainShards : run.evalShards;
    // A shard is busy while answered, or while a lease on it is within the adaptive window. A lease
    // kept alive past the window by heartbeats gets one backup lease for another worker (whichever
    // answers first counts), so a straggler that heartbeats but never answers costs one window.
    const { leaseMs } = run.spec.config.cluster;
    const windowMs = this.leaseWindow.millis(kind, this.leaseExamples(run, kind), leaseMs);
    const busy = new Set<number>(kind === 'train' ? run.sum.shards : []);
    const open = new Map<number, number>();
    let soonest = Infinity;
    for (const l of this.sql.exec<{ shard: number; deadline: number; state: string; issued_at: number }>('SELECT shard, deadline, state, issued_at FROM leases WHERE kind = ? AND step = ?', kind, row.step)) {
      if (l.state === 'done') busy.add(l.shard);
      if (l.state !== 'active' || l.deadline <= now) continue;
      open.set(l.shard, (open.get(l.shard) ?? 0) + 1);
      const backupAt = Math.min(l.deadline, l.issued_at + windowMs);
      if (backupAt > now) busy.add(l.shard);
      soonest = Math.min(soonest, backupAt > now ? backupAt : l.deadline);
    }
    for (const [s, n] of open) if (n >= 2) busy.add(s);
    let shard = 0;
    while (shard < shards && busy.has(shard)) shard++;
    if (shard === shards) return { type: 'wait', retryMs: Math.max(10, Math.min(LONG_POLL_MS, soonest - now)) };

    if (row.state === 'created') this.setState(run, 'training');
    const { cluster } = run.spec.config;
    const leaseId = crypto.randomUUID();
    const deadline = now + windowMs;
    this.sql.exec("INSERT INTO leases (lease_id, kind, step, shard, worker, issued_at, deadline, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'active')", leaseId, kind, row.step, shard, worker, now, deadline);
    const base = { leaseId, runId: row.run_id, kind, step: row.step, shard, version: row.step, deadline };
    if (kind === 'train') {
      if (run.sum.shards.size === 0 && run.sum.firstLeaseAt === 0) run.sum.firstLeaseAt = now;
      const ex = run.plan.examples(row.step, shard * cluster.microBatch, cluster.microBatch);
      const lease: IssuedLease = {
        ...base,
        epoch: ex.epoch,
        split: 'train',
        indices: [...ex.indices],
        firstPosition: ex.firstPosition,
        ...(ex.dann ? { dann: { indices: [...ex.dann.indices], lambda: ex.dann.lambda } } : {}),
      };
      return { type: 'lease', lease };
    }
    const { first, count } = this.evalRange(run, shard);
    const epoch = row.step / run.plan.stepsPerEpoch - 1;
    return { type: 'lease', lease: { ...base, epoch, split: 'test', indices: Array.from({ length: count }, (_, i) => first + i), firstPosition: first } };
  }

  /**
   * Decodes a submission and checks it against its lease and the run: the frame to count, or the
   * answer (a refusal, or 'duplicate' for a shard already counted).
   */
  private admit<F extends { leaseId: string; version: number; step: number; shard: number }>(
    leaseId: string,
    body: ArrayBuffer,
    worker: string,
    kind: LeaseKind,
    decode: (bytes: Uint8Array) => F,
  ): { run: Loaded; frame: F; lease: LeaseRow } | Outcome<SubmitReply> {
    const run = this.run;
    if (!run) return notFound();
    const refused = this.gate(worker);
    if (refused) return refused;
    // First whether the lease can take an answer at all (nothing about the body counts against the
    // worker then), then the body.
    if (FINAL_STATES.includes(run.row.state)) return this.reject(worker, fail(409, `run is ${run.row.state}; nothing more is accepted`, 'finished'));
    const lease = this.sql.exec<LeaseRow>('SELECT kind, step, shard, worker, state, issued_at FROM leases WHERE lease_id = ?', leaseId).toArray()[0];
    if (!lease) return this.reject(worker, fail(409, `lease ${leaseId} is unknown (expired and replaced, or from before a restart)`, 'unknown-lease'));
    if (lease.worker !== worker) return fail(403, `lease ${leaseId} was issued to another worker`, 'not-yours');
    if (lease.state === 'rejected') return this.reject(worker, fail(409, `lease ${leaseId} already had an answer refused; take a new lease`, 'unknown-lease'));
    let frame: F;
    try {
      frame = decode(new Uint8Array(body));
    } catch (e) {
      return this.reject(worker, wireFailure(e), leaseId);
    }
    if (frame.leaseId !== leaseId) return this.reject(worker, fail(400, `the frame is for lease ${frame.leaseId}, posted to lease ${leaseId}`, 'mismatch'), leaseId);
    const check = this.checkFrame(run, leaseId, lease, kind, frame.version, frame.step, frame.shard);
    if (check) return check.ok ? check : this.reject(worker, check, leaseId);
    return { run, frame, lease };
  }

  /** Refuses an excluded or rate-limited worker before anything else is read. */
  private gate(worker: string): Failure | undefined {
    const waitMs = this.limiter.take(worker);
    if (waitMs > 0) return { ...fail(429, `worker ${worker} is over the request rate limit; retry in ${waitMs} ms`, 'rate-limited'), retryMs: waitMs };
    const excluded = exclusionOf(this.sql, worker);
    return excluded ? fail(403, `worker ${worker} is excluded from this run: ${excluded}`, 'excluded') : undefined;
  }

  /** Marks a lease answered, and its answer time as a sample for the adaptive deadline. */
  private answered(leaseId: string, lease: LeaseRow, worker: string): void {
    this.sql.exec("UPDATE leases SET state = 'done' WHERE lease_id = ?", leaseId);
    const kind = lease.kind as LeaseKind;
    this.leaseWindow.record(kind, Date.now() - lease.issued_at, this.leaseExamples(this.run!, kind));
    recordAccepted(this.sql, worker);
  }

  /** Examples in a lease of `kind` (the last eval shard may have fewer; the window errs long). */
  private leaseExamples(run: Loaded, kind: LeaseKind): number {
    return kind === 'train' ? run.spec.config.cluster.microBatch : run.spec.config.train.evalBatch;
  }

  private evalRange(run: Loaded, shard: number): { first: number; count: number } {
    const size = run.spec.config.train.evalBatch;
    const first = shard * size;
    return { first, count: Math.max(0, Math.min(size, run.spec.dataset.test.count - first)) };
  }

  /** A frame against its (answerable) lease: undefined when it may be counted; a duplicate answers ok without counting. */
  private checkFrame(run: Loaded, leaseId: string, lease: LeaseRow, kind: LeaseKind, version: number, step: number, shard: number): Outcome<SubmitReply> | undefined {
    const current = run.row.step;
    if (lease.kind !== kind) return fail(400, `lease ${leaseId} is a ${lease.kind} lease, not ${kind}`, 'kind');
    if (lease.step !== step || lease.shard !== shard) return fail(400, `submission says step ${step} shard ${shard}; lease ${leaseId} is step ${lease.step} shard ${lease.shard}`, 'mismatch');
    // A lease's parameter version is its step: a frame claiming another was not computed for it.
    if (version !== lease.step) return fail(400, `submission computed at parameter version ${version}; lease ${leaseId} is for version ${lease.step}`, 'version');
    const counted =
      lease.state === 'done' ||
      (kind === 'train'
        ? run.sum.step === step && run.sum.shards.has(shard)
        : this.sql.exec('SELECT 1 FROM eval_parts WHERE step = ? AND shard = ?', step, shard).toArray().length > 0);
    if (counted) return ok({ accepted: false, reason: 'duplicate', version: current });
    if (step !== current || run.row.phase !== kind) return fail(409, `submission for version ${version} (step ${step}, ${kind}); the run is at version ${current} (${run.row.phase})`, 'stale');
    return undefined;
  }

  /**
   * A shard whose loss or gradient keeps coming back non-finite from several leases is divergence,
   * not a faulty worker (the data order is deterministic): the run fails with the last good parameters.
   * A lease repeating its answer counts once.
   */
  private async noteNonFinite(run: Loaded, kind: LeaseKind, shard: number, leaseId: string, what: string): Promise<void> {
    const key = `${kind}:${run.row.step}:${shard}`;
    const leases = this.nonFinite.get(key) ?? new Set<string>();
    leases.add(leaseId);
    this.nonFinite.set(key, leases);
    if (leases.size < DIVERGENCE_REPORTS) return;
    const where = kind === 'train' ? `step ${run.row.step + 1}` : `the evaluation at step ${run.row.step}`;
    await this.end(run, 'failed', `training diverged at ${where} (shard ${shard}: ${what}, from ${leases.size} leases); parameters are those of version ${run.row.step}`);
  }

  /** Ends a run early (cancelled, failed): the last applied step is committed and checkpointed first. */
  private async end(run: Loaded, state: 'cancelled' | 'failed', error: string | null = null): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      if (run.committedStep < run.row.step) this.commit(run);
      this.setState(run, state, error);
    });
    this.snapshot(run);
    await this.indexRun();
  }

  /**
   * Counts a refusal against the worker. Bad data (400, 422) also frees the lease's shard for another
   * worker at once and extends the worker's streak; a long enough streak excludes it, and its leases
   * are freed too.
   */
  private reject(worker: string, failure: Failure, leaseId?: string): Failure {
    if (failure.status === 403) return failure;
    const bad = failure.status === 400 || failure.status === 422;
    if (bad && leaseId) this.sql.exec("UPDATE leases SET state = 'rejected' WHERE lease_id = ? AND worker = ? AND state IN ('active', 'expired')", leaseId, worker);
    if (recordRejected(this.sql, worker, bad, failure.error)) this.sql.exec("UPDATE leases SET state = 'rejected' WHERE worker = ? AND state IN ('active', 'expired')", worker);
    if (bad) this.wake();
    return failure;
  }

  private async applyStep(run: Loaded): Promise<void> {
    const t0 = performance.now();
    const { row, sum, spec } = run;
    const { train } = spec.config;
    const scale = 1 / run.trainShards;
    const grads = Float32Array.from(sum.grads, (g) => g * scale);
    const stats = Float32Array.from(sum.stats, (g) => g * scale);
    run.optimizer.step(run.params, grads, learningRate(train.optimizer.lr, train.schedule, row.step), run.mask);
    if (stats.length) updateRunningStats(run.buffers, stats, train.bnMomentum);
    const step = row.step + 1;
    const epochEnd = step % run.plan.stepsPerEpoch === 0;
    const now = Date.now();
    row.step = step;
    row.phase = epochEnd ? 'eval' : 'train';
    row.optimizer_step = run.optimizer.state.step;
    row.updated_at = now;
    this.ctx.storage.transactionSync(() => {
      if (epochEnd || step % spec.config.cluster.commitEvery === 0) this.commit(run);
      this.sql.exec('DELETE FROM leases WHERE kind = ? AND step < ?', 'train', step - 1);
      this.sql.exec(
        'INSERT OR REPLACE INTO step_metrics (step, epoch, loss, accuracy, images, step_ms, coordinator_ms, at, workers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        step, Math.floor((step - 1) / run.plan.stepsPerEpoch), sum.loss * scale, sum.correct / train.batch, train.batch,
        now - sum.firstLeaseAt, 0, now, JSON.stringify(shardsPerWorker(sum.counted)),
      );
    });
    this.sql.exec('UPDATE step_metrics SET coordinator_ms = ? WHERE step = ?', sum.aggregateMs + performance.now() - t0, step);
    run.sum = emptySum(step, spec);
    this.nonFinite.clear();
    this.norms.nextStep();
    if (step % spec.config.cluster.snapshotEvery === 0) this.snapshot(run);
    this.wake();
  }

  private async finishEval(run: Loaded, loss: number, accuracy: number): Promise<void> {
    const { row, plan } = run;
    const epoch = row.step / plan.stepsPerEpoch;
    const now = Date.now();
    const last = epoch >= run.spec.config.train.epochs;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec('INSERT OR REPLACE INTO eval_metrics (epoch, step, loss, accuracy, at) VALUES (?, ?, ?, ?, ?)', epoch, row.step, loss, accuracy, now);
      this.sql.exec('DELETE FROM leases WHERE kind = ?', 'eval');
      this.sql.exec("UPDATE run SET phase = 'train', updated_at = ? WHERE id = 1", now);
    });
    row.phase = 'train';
    if (last) this.setState(run, 'completed');
    this.snapshot(run);
    if (last) await this.indexRun();
    this.wake();
  }

  /** Writes the in-memory step, parameters and optimizer state (inside the caller's transaction). */
  private commit(run: Loaded): void {
    const { row } = run;
    this.writeState(run.params, run.buffers, run.optimizer);
    this.sql.exec('UPDATE run SET step = ?, phase = ?, optimizer_step = ?, updated_at = ? WHERE id = 1', row.step, row.phase, row.optimizer_step, row.updated_at);
    run.committedStep = row.step;
  }

  private writeState(params: Float32Array, buffers: Float32Array, optimizer: Optimizer): void {
    writeTensor(this.sql, 'params', params);
    writeTensor(this.sql, 'buffers', buffers);
    optimizer.state.slots.forEach((slot, i) => writeTensor(this.sql, `optimizer.${i}`, slot));
  }

  private setState(run: Loaded, state: RunState, error: string | null = null): void {
    const now = Date.now();
    this.sql.exec('UPDATE run SET state = ?, error = ?, updated_at = ? WHERE id = 1', state, error, now);
    run.row.state = state;
    run.row.error = error;
    run.row.updated_at = now;
    if (FINAL_STATES.includes(state)) {
      this.sql.exec('DELETE FROM leases');
      this.wake();
    }
  }

  /** A checkpoint in the trainer's format to R2, written after the response (not on the step's path). */
  private snapshot(run: Loaded): void {
    const { row, spec, plan } = run;
    const history = evalMetrics(this.sql).map((e) => {
      const t = this.sql.exec<{ loss: number; acc: number }>('SELECT AVG(loss) AS loss, AVG(accuracy) AS acc FROM step_metrics WHERE epoch = ?', e.epoch - 1).one();
      return { epoch: e.epoch, trainLoss: t.loss, trainAccuracy: t.acc, testLoss: e.loss, testAccuracy: e.accuracy, seconds: 0, trainImagesPerSecond: 0 };
    });
    const bytes = encodeCheckpoint({
      config: spec.config.train,
      epoch: Math.floor(row.step / plan.stepsPerEpoch) - (row.phase === 'eval' ? 1 : 0),
      step: row.step,
      params: run.params.slice(),
      buffers: run.buffers.slice(),
      optimizer: { step: run.optimizer.state.step, slots: run.optimizer.state.slots.map((s) => s.slice()) },
      history,
    });
    this.ctx.waitUntil(this.env.DATA.put(snapshotKey(row.run_id, row.step), bytes));
  }

  private statusOf(run: Loaded): RunStatus {
    return runStatus(this.sql, run.spec, run.row, run.plan, workerSummaries(this.sql, Date.now() - ACTIVE_WINDOW_MS));
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Sets the alarm when none is due before `deadline`; the due time is kept here, not read per lease. */
  private async armAlarm(deadline: number): Promise<void> {
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    if (this.alarmAt === null || this.alarmAt > deadline) {
      await this.ctx.storage.setAlarm(deadline);
      this.alarmAt = deadline;
    }
  }

  private async indexRun(): Promise<void> {
    const run = this.run;
    if (!run) return;
    const { model } = run.spec.config.train;
    const summary: RunSummary = { runId: run.row.run_id, state: run.row.state, createdAt: run.row.created_at, preset: model.preset, head: model.head };
    await this.env.KV.put(runIndexKey(run.row.run_id), JSON.stringify(summary), { metadata: summary });
  }
}

function emptySum(step: number, spec: RunSpec): StepSum {
  return { step, grads: new Float64Array(spec.paramCount), stats: new Float64Array(spec.bufferCount), shards: new Set(), counted: new Map(), loss: 0, correct: 0, firstLeaseAt: 0, aggregateMs: 0 };
}

/** How many of a step's shards each worker's answers were counted for: `{workerId: shards}`. */
function shardsPerWorker(counted: ReadonlyMap<number, string>): Record<string, number> {
  // No prototype: a worker may call itself '__proto__'.
  const out: Record<string, number> = Object.create(null);
  for (const worker of counted.values()) out[worker] = (out[worker] ?? 0) + 1;
  return out;
}

function firstNonFinite(values: Float32Array, what: string): string | undefined {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return `${what} value ${i} is ${values[i]}`;
  return undefined;
}

const notFound = () => fail(404, 'unknown run', 'unknown-run');

function wireFailure(e: unknown) {
  if (e instanceof WireError) return fail(400, e.message, e.reason);
  return fail(400, `undecodable submission: ${e instanceof Error ? e.message : String(e)}`, 'format');
}
