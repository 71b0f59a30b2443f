// What the coordinator knows of each worker of its run: when it was last seen, its accepted and
// refused submissions, its current run of bad ones, and whether that run got it excluded.
import type { SqlStorage } from '@cloudflare/workers-types/index';
import { clip } from '../shared/schema/clip';
import type { WorkerSummary } from '../shared/protocol';

/** Consecutive bad submissions (undecodable, mismatched, non-finite, absurd) that exclude a worker. */
export const EXCLUDE_AFTER = 3;

/** The most characters of a refusal quoted in a stored exclusion reason. */
export const REASON_CHARS = 500;

export function touchWorker(sql: SqlStorage, worker: string): void {
  sql.exec('INSERT INTO workers (worker, last_seen) VALUES (?, ?) ON CONFLICT (worker) DO UPDATE SET last_seen = excluded.last_seen', worker, Date.now());
}

export function recordAccepted(sql: SqlStorage, worker: string): void {
  touchWorker(sql, worker);
  sql.exec('UPDATE workers SET accepted = accepted + 1, bad_streak = 0 WHERE worker = ?', worker);
}

/** Counts a refusal; `bad` ones extend the worker's streak. True when this refusal excluded it. */
export function recordRejected(sql: SqlStorage, worker: string, bad: boolean, why: string): boolean {
  touchWorker(sql, worker);
  sql.exec('UPDATE workers SET rejected = rejected + 1, bad_streak = bad_streak + ? WHERE worker = ?', bad ? 1 : 0, worker);
  const w = sql.exec<{ bad_streak: number; excluded_at: number | null }>('SELECT bad_streak, excluded_at FROM workers WHERE worker = ?', worker).one();
  if (w.excluded_at !== null || w.bad_streak < EXCLUDE_AFTER) return false;
  sql.exec('UPDATE workers SET excluded_at = ?, excluded_reason = ? WHERE worker = ?', Date.now(), `${EXCLUDE_AFTER} bad submissions in a row; the last: ${clip(why, REASON_CHARS)}`, worker);
  return true;
}

/** Excludes a worker for good (verification found it lying); a worker already excluded keeps its first reason. */
export function excludeWorker(sql: SqlStorage, worker: string, why: string): void {
  touchWorker(sql, worker);
  sql.exec('UPDATE workers SET excluded_at = ?, excluded_reason = ? WHERE worker = ? AND excluded_at IS NULL', Date.now(), why, worker);
}

/** Why a worker is excluded, or undefined when it is not. */
export function exclusionOf(sql: SqlStorage, worker: string): string | undefined {
  return sql.exec<{ excluded_reason: string | null }>('SELECT excluded_reason FROM workers WHERE worker = ? AND excluded_at IS NOT NULL', worker).toArray()[0]?.excluded_reason ?? undefined;
}

export function workerSummaries(sql: SqlStorage, activeSince: number): WorkerSummary[] {
  return sql
    .exec<{ worker: string; last_seen: number; accepted: number; rejected: number; excluded_reason: string | null; excluded_at: number | null }>(
      'SELECT worker, last_seen, accepted, rejected, excluded_reason, excluded_at FROM workers ORDER BY worker',
    )
    .toArray()
    .map((w) => ({
      worker: w.worker,
      lastSeen: w.last_seen,
      accepted: w.accepted,
      rejected: w.rejected,
      active: w.last_seen > activeSince && w.excluded_reason === null,
      ...(w.excluded_reason ? { excluded: w.excluded_reason, excludedAt: w.excluded_at ?? undefined } : {}),
    }));
}

/** Whether the worker has had an answer accepted in this run. */
export function hasAccepted(sql: SqlStorage, worker: string): boolean {
  return (sql.exec<{ accepted: number }>('SELECT accepted FROM workers WHERE worker = ?', worker).toArray()[0]?.accepted ?? 0) > 0;
}

/** Workers not excluded that were seen after `since`. */
export function activeWorkerCount(sql: SqlStorage, since: number): number {
  return sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM workers WHERE excluded_at IS NULL AND last_seen > ?', since).one().n;
}
