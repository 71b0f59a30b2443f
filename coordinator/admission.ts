// Whether an answer may be counted: the worker's standing (rate limit, exclusion), the lease it names,
// the frame against that lease and the run's position, the values it carries. The checks return
// decisions; the coordinator acts on them (a refusal spends the lease, an exclusion frees the worker's
// leases, divergence ends the run).
import type { SqlStorage } from '@cloudflare/workers-types/index';
import { trainingLayout } from '../shared/models/compile';
import { VARIANCE_SUFFIX } from '../shared/models/layers';
import { flatLayout } from '../shared/models/params';
import { FINAL_STATES, type LeaseKind, type RunSpec, type RunState, type SubmitReply } from '../shared/protocol';
import type { EvalSubmission, GradientSubmission } from '../shared/wire';
import { WireError } from '../shared/wire';
import type { FrameFindings } from './aggregation';
import type { LeaseRow } from './lease-scheduler';
import { NormGuard, l2Norm } from './norm-guard';
import { fail, ok, type Failure, type Outcome } from './outcome';
import type { Position } from './run-store';
import { RateLimiter } from './rate-limit';
import { ReplayGuard, replayDigest } from './replay-guard';
import { trainExamplesOf } from './shard-plan';
import { activeWorkerCount, exclusionOf, hasAccepted, recordAccepted, recordRejected, touchWorker } from './worker-record';

/**
 * Distinct workers, each with an answer accepted in the run, whose non-finite results for one shard
 * make the run fail as diverged (fewer when fewer workers are active: a lone worker's report suffices).
 */
export const DIVERGENCE_REPORTS = 3;

/** The start of a diverged run's error: such a run can be resumed. */
export const DIVERGED = 'training diverged';

/** A gradient frame's mean loss above this is refused as impossible (a diverging run goes non-finite). */
export const LOSS_CAP = 1e6;
/** |batch statistic| above this is refused (means and variances of activations, which stay near unit scale). */
export const STAT_CAP = 1e8;

/** The fields of a frame that tie it to a lease. */
export type FrameHead = Pick<GradientSubmission, 'leaseId' | 'version' | 'step' | 'shard'>;

/**
 * The lease an answer names, if it can take an answer at all; else the refusal. Checked before the
 * body is read, so nothing in the body counts against the worker.
 */
export function answerableLease(lease: LeaseRow | undefined, leaseId: string, worker: string, runState: RunState): LeaseRow | Failure {
  if (FINAL_STATES.includes(runState)) return fail(409, `run is ${runState}; nothing more is accepted`, 'finished');
  if (!lease) return fail(409, `lease ${leaseId} is unknown (expired and replaced, or from before a restart)`, 'unknown-lease');
  if (lease.worker !== worker) return fail(403, `lease ${leaseId} was issued to another worker`, 'not-yours');
  if (lease.state === 'rejected') return fail(409, `lease ${leaseId} already had an answer refused; take a new lease`, 'unknown-lease');
  return lease;
}

/**
 * A decoded frame against its (answerable) lease and the run: undefined when it may be counted; a
 * duplicate (already counted: `counted`) answers ok without counting.
 */
export function frameVerdict(lease: LeaseRow, kind: LeaseKind, frame: FrameHead, counted: boolean, position: Position): Outcome<SubmitReply> | undefined {
  const { leaseId } = lease;
  if (frame.leaseId !== leaseId) return fail(400, `the frame is for lease ${frame.leaseId}, posted to lease ${leaseId}`, 'mismatch');
  if (lease.kind !== kind) return fail(400, `lease ${leaseId} is a ${lease.kind} lease, not ${kind}`, 'kind');
  if (lease.step !== frame.step || lease.shard !== frame.shard) return fail(400, `submission says step ${frame.step} shard ${frame.shard}; lease ${leaseId} is step ${lease.step} shard ${lease.shard}`, 'mismatch');
  // A lease's parameter version is its step: a frame claiming another was not computed for it.
  if (frame.version !== lease.step) return fail(400, `submission computed at parameter version ${frame.version}; lease ${leaseId} is for version ${lease.step}`, 'version');
  if (lease.state === 'done' || counted) return ok({ accepted: false, reason: 'duplicate', version: position.step });
  if (frame.step !== position.step || position.phase !== kind) {
    return fail(409, `submission for version ${frame.version} (step ${frame.step}, ${kind}); the run is at version ${position.step} (${position.phase})`, 'stale');
  }
  return undefined;
}

export function wireFailure(e: unknown): Failure {
  if (e instanceof WireError) return fail(400, e.message, e.reason);
  return fail(400, `undecodable submission: ${e instanceof Error ? e.message : String(e)}`, 'format');
}

/** A gradient frame's sizes against the run. */
export function gradientShapeProblem(s: GradientSubmission, spec: RunSpec): Failure | undefined {
  if (s.grads.length !== spec.paramCount) return fail(400, `gradient has ${s.grads.length} values; the model has ${spec.paramCount} parameters`, 'length');
  if (s.stats.length !== spec.bufferCount) return fail(400, `statistics have ${s.stats.length} values; the model has ${spec.bufferCount} buffer values`, 'length');
  const expected = trainExamplesOf(spec, s.step);
  if (s.count !== expected) return fail(400, `shard of ${s.count} examples; leases of step ${s.step} are ${expected}`, 'count');
  return undefined;
}

/**
 * What is not finite in a gradient frame, or undefined. `norm` is the gradient's L2 norm: a finite
 * norm means finite values, so the values are searched only when it is not (one pass in the common
 * case; a norm that overflowed is left to the norm check).
 */
export function nonFiniteIn(s: GradientSubmission, norm: number): string | undefined {
  if (!Number.isFinite(s.loss)) return `loss is ${s.loss}`;
  return (Number.isFinite(norm) ? undefined : firstNonFinite(s.grads, 'gradient')) ?? firstNonFinite(s.stats, 'statistics');
}

/** Which entries of a run's flat buffers are variances, by run spec (both are fixed for a run). */
const variances = new WeakMap<RunSpec, Uint8Array>();

function varianceMask(spec: RunSpec): Uint8Array {
  let mask = variances.get(spec);
  if (!mask) {
    mask = new Uint8Array(spec.bufferCount);
    for (const s of flatLayout(trainingLayout(spec.config.train.model).buffers).slices) if (s.name.endsWith(VARIANCE_SUFFIX)) mask.fill(1, s.offset, s.offset + s.size);
    variances.set(spec, mask);
  }
  return mask;
}

/**
 * A finite gradient frame's loss, correct count and batch statistics against what is possible: a
 * `correct` within the shard, a loss in [0, LOSS_CAP], statistics within ±STAT_CAP and variances not
 * negative; domain figures (the wire checked their range against the shard) exactly when the run is
 * DANN, their loss within LOSS_CAP too. Expects the shape already checked. A non-finite answer, a
 * divergence report, is judged before this and carries no domain figures.
 */
export function gradientRangeProblem(s: Pick<GradientSubmission, 'count' | 'loss' | 'correct' | 'stats' | 'domain'>, spec: RunSpec): Failure | undefined {
  if (!Number.isInteger(s.correct) || s.correct < 0 || s.correct > s.count) return fail(422, `${s.correct} correct predictions in a shard of ${s.count} is impossible`, 'range');
  if (!(s.loss >= 0 && s.loss <= LOSS_CAP)) return fail(422, `loss ${s.loss} is outside [0, ${LOSS_CAP}]`, 'range');
  const dann = spec.config.train.model.dann;
  if (dann && !s.domain) return fail(400, "a DANN run's gradient frame carries the domain classifier's loss and correct count; this one has none", 'domain');
  if (!dann && s.domain) return fail(400, 'the frame carries domain figures; this run trains no domain classifier (not DANN)', 'domain');
  if (s.domain && s.domain.loss > LOSS_CAP) return fail(422, `domain loss ${s.domain.loss} is outside [0, ${LOSS_CAP}]`, 'range');
  const mask = varianceMask(spec);
  for (let i = 0; i < s.stats.length; i++) {
    const v = s.stats[i];
    if (Math.abs(v) > STAT_CAP) return fail(422, `statistics value ${i} is ${v}; batch statistics are within ±${STAT_CAP}`, 'range');
    if (v < 0 && mask[i]) return fail(422, `statistics value ${i} is a variance and is ${v}`, 'range');
  }
  return undefined;
}

/**
 * Every check on a gradient frame's bytes, done where the bytes are (the coordinator, or the run's
 * aggregator, which sends these findings with the frame's head): the coordinator judges them in one
 * place (gradientProblem).
 */
export function gradientFindings(s: GradientSubmission, spec: RunSpec): FrameFindings {
  const norm = l2Norm(s.grads);
  const shape = gradientShapeProblem(s, spec);
  const nonFinite = shape ? undefined : nonFiniteIn(s, norm);
  const range = shape || nonFinite ? undefined : gradientRangeProblem(s, spec);
  return { norm, digest: replayDigest(s.grads), ...(shape ? { shape } : {}), ...(nonFinite ? { nonFinite } : {}), ...(range ? { range } : {}) };
}

/** An eval frame's count and values against its shard. */
export function evalProblem(s: EvalSubmission, expectedCount: number): Failure | undefined {
  if (s.count !== expectedCount) return fail(400, `eval shard of ${s.count} examples; shard ${s.shard} has ${expectedCount}`, 'count');
  if (!Number.isFinite(s.lossSum)) return fail(422, `loss is ${s.lossSum}`, 'non-finite');
  if (s.correct > s.count || s.lossSum < 0) return fail(422, `eval answer of ${s.correct} correct of ${s.count} with loss sum ${s.lossSum} is impossible`, 'range');
  return undefined;
}

function firstNonFinite(values: Float32Array, what: string): string | undefined {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return `${what} value ${i} is ${values[i]}`;
  return undefined;
}

/** What a refusal costs: the lease it answered, and (on a long enough streak) the worker's place in the run. */
export interface RefusalEffect {
  /** Bad data (400, 422): the lease is spent and its shard free for another worker at once. */
  readonly spendLease: boolean;
  /** This refusal excluded the worker: its other leases are spent too. */
  readonly excluded: boolean;
}

/** The guards with memory: rate limits, the norm and replay guards, divergence reports, and each worker's record (SQL). */
export class Admission {
  private readonly limiter = new RateLimiter();
  readonly norms = new NormGuard();
  readonly replays = new ReplayGuard();
  /** Non-finite reports per "kind:step:shard" of the current step or evaluation: the established workers and the leases. */
  private readonly nonFinite = new Map<string, { voters: Set<string>; leases: Set<string> }>();

  constructor(private readonly sql: SqlStorage) {}

  /** Refuses an excluded or rate-limited worker before anything else is read. */
  gate(worker: string): Failure | undefined {
    const waitMs = this.limiter.take(worker);
    if (waitMs > 0) return { ...fail(429, `worker ${worker} is over the request rate limit; retry in ${waitMs} ms`, 'rate-limited'), retryMs: waitMs };
    const excluded = exclusionOf(this.sql, worker);
    return excluded ? fail(403, `worker ${worker} is excluded from this run: ${excluded}`, 'excluded') : undefined;
  }

  seen(worker: string): void {
    touchWorker(this.sql, worker);
  }

  accepted(worker: string): void {
    recordAccepted(this.sql, worker);
  }

  /** Counts a refusal against the worker (a 403 is not the worker's doing and counts nothing). */
  refused(worker: string, failure: Failure): RefusalEffect {
    if (failure.status === 403) return { spendLease: false, excluded: false };
    const bad = failure.status === 400 || failure.status === 422;
    return { spendLease: bad, excluded: recordRejected(this.sql, worker, bad, failure.error) };
  }

  /**
   * Records a non-finite result for a shard; `diverged` when it makes the run fail. A shard that keeps
   * coming back non-finite from several workers is divergence, not a faulty worker (the data order is
   * deterministic). Only a worker with an answer accepted in this run votes, and once however many
   * leases it reports on (`votes`): leases are cheap and identities can be made up, so a newcomer's
   * reports, or one worker's repeated ones, could otherwise end a run. Divergence takes
   * DIVERGENCE_REPORTS votes, or as many as there are workers not excluded seen since `activeSince`
   * when fewer (a lone worker's), and in any case DIVERGENCE_REPORTS reports from distinct leases.
   */
  reportNonFinite(kind: LeaseKind, step: number, shard: number, worker: string, leaseId: string, activeSince: number): { diverged: boolean; votes: number } {
    const key = `${kind}:${step}:${shard}`;
    const reports = this.nonFinite.get(key) ?? { voters: new Set<string>(), leases: new Set<string>() };
    if (hasAccepted(this.sql, worker)) reports.voters.add(worker);
    reports.leases.add(leaseId);
    this.nonFinite.set(key, reports);
    const needed = Math.max(1, Math.min(DIVERGENCE_REPORTS, activeWorkerCount(this.sql, activeSince)));
    const votes = reports.voters.size;
    return { diverged: votes >= needed && reports.leases.size >= DIVERGENCE_REPORTS, votes };
  }

  /** Step `step` is next (one was applied, or the run resumed): the suspect reports of the last are over. */
  nextStep(step: number): void {
    this.nonFinite.clear();
    this.norms.nextStep();
    this.replays.nextStep(step);
  }
}
