// Leases: which shard a worker gets next (with backups for stragglers), lease deadlines and their
// expiry by the object's one alarm, and the long-polling lease requests waiting for a shard to free up.
// The choice of shard is a pure function (`pickShard`); the rest keeps the `leases` table.
import type { SqlStorage } from '@cloudflare/workers-types/index';
import type { LeaseKind } from '../shared/protocol';
import { LeaseWindow } from './lease-window';

export type LeaseState = 'active' | 'done' | 'rejected' | 'expired';

export interface LeaseRow {
  readonly leaseId: string;
  readonly kind: LeaseKind;
  readonly step: number;
  readonly shard: number;
  readonly worker: string;
  readonly state: LeaseState;
  readonly issuedAt: number;
  readonly deadline: number;
}

/** How long a lease request waits for a shard to free up before answering "wait". */
export const LONG_POLL_MS = 2000;

export type ShardChoice = { readonly shard: number } | { readonly retryMs: number };

/**
 * The first shard of `shards` that `worker` may take: not counted, still wanting an answer (one
 * answered lease is enough, unless `more` says how many answers a shard under verification still
 * wants), not covered by leases still within their window, and never one the worker holds or
 * answered (a verified shard's answers must come from different workers). A lease kept alive past the window by heartbeats gets one backup lease for
 * another worker (whichever answers first counts), so a straggler that heartbeats but never answers
 * costs one window. With none free: when to ask again.
 */
export function pickShard(
  leases: readonly LeaseRow[],
  counted: ReadonlySet<number>,
  shards: number,
  now: number,
  windowMs: number,
  worker?: string,
  more: (shard: number) => number | undefined = () => undefined,
): ShardChoice {
  const byShard = new Map<number, LeaseRow[]>();
  for (const l of leases) byShard.set(l.shard, [...(byShard.get(l.shard) ?? []), l]);
  let soonest = Infinity;
  for (let shard = 0; shard < shards; shard++) {
    if (counted.has(shard)) continue;
    const of = byShard.get(shard) ?? [];
    const open = of.filter((l) => l.state === 'active' && l.deadline > now);
    if (worker !== undefined && of.some((l) => l.worker === worker && (l.state === 'done' || open.includes(l)))) continue;
    const wanted = more(shard) ?? (of.some((l) => l.state === 'done') ? 0 : 1);
    if (wanted <= 0) continue;
    const inWindow = open.filter((l) => Math.min(l.deadline, l.issuedAt + windowMs) > now).length;
    if (inWindow < wanted && open.length <= wanted) return { shard };
    for (const l of open) {
      const backupAt = Math.min(l.deadline, l.issuedAt + windowMs);
      soonest = Math.min(soonest, backupAt > now ? backupAt : l.deadline);
    }
  }
  return { retryMs: Math.max(10, Math.min(LONG_POLL_MS, Number.isFinite(soonest) ? soonest - now : LONG_POLL_MS)) };
}

/** The object's alarm, as the scheduler uses it. */
export interface AlarmClock {
  get(): Promise<number | null>;
  set(at: number): Promise<void>;
}

interface Row extends Record<string, string | number> {
  lease_id: string;
  kind: LeaseKind;
  step: number;
  shard: number;
  worker: string;
  state: LeaseState;
  issued_at: number;
  deadline: number;
}

const toLease = (r: Row): LeaseRow => ({ leaseId: r.lease_id, kind: r.kind, step: r.step, shard: r.shard, worker: r.worker, state: r.state, issuedAt: r.issued_at, deadline: r.deadline });

export class LeaseScheduler {
  /** Recent answer times: the adaptive lease window. */
  readonly window = new LeaseWindow();
  private readonly waiters = new Set<() => void>();
  /** When the alarm is due (null: none); undefined until read from storage. */
  private alarmAt: number | null | undefined;

  constructor(
    private readonly sql: SqlStorage,
    private readonly alarm: AlarmClock,
  ) {}

  find(leaseId: string): LeaseRow | undefined {
    const row = this.sql.exec<Row>('SELECT * FROM leases WHERE lease_id = ?', leaseId).toArray()[0];
    return row && toLease(row);
  }

  /** The leases of one step's (or evaluation's) work. */
  leasesOf(kind: LeaseKind, step: number): LeaseRow[] {
    return this.sql.exec<Row>('SELECT * FROM leases WHERE kind = ? AND step = ?', kind, step).toArray().map(toLease);
  }

  /** How many leases `worker` holds open (active, within their deadline), and when the soonest of them ends. */
  openOf(worker: string, now: number): { count: number; soonest: number } {
    const r = this.sql.exec<{ n: number; soonest: number | null }>("SELECT COUNT(*) AS n, MIN(deadline) AS soonest FROM leases WHERE worker = ? AND state = 'active' AND deadline > ?", worker, now).one();
    return { count: r.n, soonest: r.soonest ?? now };
  }

  /** Records a new active lease; returns its id. */
  issue(kind: LeaseKind, step: number, shard: number, worker: string, now: number, deadline: number): string {
    const leaseId = crypto.randomUUID();
    this.sql.exec("INSERT INTO leases (lease_id, kind, step, shard, worker, issued_at, deadline, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'active')", leaseId, kind, step, shard, worker, now, deadline);
    return leaseId;
  }

  /** A heartbeat's new deadline: the adaptive window from now, never past issue + leaseMs nor before the current one. */
  extend(lease: LeaseRow, examples: number, leaseMs: number, now: number): number {
    const window = this.window.millis(lease.kind, examples, leaseMs);
    const deadline = Math.max(lease.deadline, Math.min(now + window, lease.issuedAt + leaseMs));
    this.sql.exec('UPDATE leases SET deadline = ? WHERE lease_id = ?', deadline, lease.leaseId);
    return deadline;
  }

  /** Marks a lease answered; its answer time becomes a sample of the adaptive window. */
  answered(lease: LeaseRow, examples: number, now: number): void {
    this.sql.exec("UPDATE leases SET state = 'done' WHERE lease_id = ?", lease.leaseId);
    this.window.record(lease.kind, now - lease.issuedAt, examples);
  }

  /** Spends a lease whose answer was refused (its shard is free for another worker at once). */
  refuse(leaseId: string, worker: string): void {
    this.sql.exec("UPDATE leases SET state = 'rejected' WHERE lease_id = ? AND worker = ? AND state IN ('active', 'expired')", leaseId, worker);
  }

  /** Frees the shard of an answered lease whose answer was lost (its aggregator's sum never came). */
  reopen(leaseId: string): void {
    this.sql.exec("UPDATE leases SET state = 'rejected' WHERE lease_id = ? AND state = 'done'", leaseId);
  }

  /** Spends every open lease of an excluded worker. */
  refuseAllOf(worker: string): void {
    this.sql.exec("UPDATE leases SET state = 'rejected' WHERE worker = ? AND state IN ('active', 'expired')", worker);
  }

  /**
   * Frees the shards of answered leases whose answers were discarded: a worker's (a liar's), or every
   * one of the step's but those of `keep` (the shards still counted), so their workers may answer again.
   */
  reopenAnswered(kind: LeaseKind, step: number, which: { worker: string } | { keep: ReadonlySet<number> }): void {
    if ('worker' in which) {
      this.sql.exec("UPDATE leases SET state = 'rejected' WHERE kind = ? AND step = ? AND worker = ? AND state = 'done'", kind, step, which.worker);
      return;
    }
    for (const l of this.leasesOf(kind, step)) {
      if (l.state === 'done' && !which.keep.has(l.shard)) this.sql.exec("UPDATE leases SET state = 'rejected' WHERE lease_id = ?", l.leaseId);
    }
  }

  /** Leases of steps before `step` − 1 are no longer needed to recognise late duplicates. */
  forgetTrainBefore(step: number): void {
    this.sql.exec("DELETE FROM leases WHERE kind = 'train' AND step < ?", step - 1);
  }

  forgetEval(): void {
    this.sql.exec("DELETE FROM leases WHERE kind = 'eval'");
  }

  forgetAll(): void {
    this.sql.exec('DELETE FROM leases');
  }

  /**
   * After a restart (a process restart, or the runtime evicting an idle object while workers
   * compute): the partial sum of the step in progress is lost, and any steps after the last commit.
   * Their counted shards are leased again and recompute to the same values. Leases of the committed
   * step still out stay valid: their answers are not counted yet and are still welcome.
   */
  forgetAfterRestart(committedStep: number): void {
    this.sql.exec("DELETE FROM leases WHERE kind = 'train' AND (step > ? OR (step = ? AND state <> 'active'))", committedStep, committedStep);
  }

  /** Holds a lease request until a shard may have freed up (`wake`) or `ms` pass. */
  waitForChange(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.waiters.add(wake);
    });
  }

  /** Wakes every waiting lease request. */
  wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Sets the alarm when none is due before `deadline`; the due time is kept here, not read per lease. */
  async armFor(deadline: number): Promise<void> {
    if (this.alarmAt === undefined) this.alarmAt = await this.alarm.get();
    if (this.alarmAt === null || this.alarmAt > deadline) {
      await this.alarm.set(deadline);
      this.alarmAt = deadline;
    }
  }

  /** The alarm fired: expires due leases, wakes the waiting requests, returns the next deadline (null: none). */
  expireDue(now: number): number | null {
    this.alarmAt = null;
    this.sql.exec("UPDATE leases SET state = 'expired' WHERE state = 'active' AND deadline <= ?", now);
    this.wake();
    return this.sql.exec<{ d: number | null }>("SELECT MIN(deadline) AS d FROM leases WHERE state = 'active'").one().d;
  }
}
