// The worker identities of a run: ids this coordinator mints (POST /v1/runs/:id/workers), at most
// cluster.maxWorkers alive at once, each expiring unless renewed. The `workers` table is authoritative:
// a call under an id it did not mint (or one expired) is refused, so renaming costs a mint, and mints
// are bounded and rate limited. The fleet's chains (fleet.ts) are the deployment's own workers: known
// by their `chains` row, never counted against the bound.
import type { SqlStorage } from '@cloudflare/workers-types/index';
import { fail, ok, type Failure, type Outcome } from './outcome';
import { RateLimiter } from './rate-limit';

/** How long a credential lives; the client renews it before then. */
export const CREDENTIAL_TTL_MS = 6 * 3_600_000;
/** Identities expired this long are deleted whatever their record (a finished run deletes those with no accepted answers at once). */
export const PRUNE_AFTER_MS = 24 * 3_600_000;
/** Mints per run: a burst of MINT_BURST, then MINT_PER_S a second. */
const MINT_BURST = 32;
const MINT_PER_S = 1;

export interface Minted {
  readonly workerId: string;
  readonly expiresAt: number;
}

function newWorkerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `w-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export class Identities {
  private readonly mints = new RateLimiter(MINT_BURST, MINT_PER_S);

  constructor(private readonly sql: SqlStorage) {}

  /** A new identity, unless `maxWorkers` are alive (excluded ones included) or minting is over its rate. */
  mint(maxWorkers: number, now: number): Outcome<Minted> {
    const waitMs = this.mints.take('mint', now);
    if (waitMs > 0) return { ...fail(429, `this run is minting worker identities too fast; retry in ${waitMs} ms`, 'rate-limited'), retryMs: waitMs };
    const alive = this.sql.exec<{ n: number; soonest: number | null }>('SELECT COUNT(*) AS n, MIN(expires_at) AS soonest FROM workers WHERE expires_at > ?', now).one();
    if (alive.n >= maxWorkers) {
      const retryMs = Math.max(1000, (alive.soonest ?? now) - now);
      return { ...fail(429, `this run has ${alive.n} worker identities alive, its limit (cluster.maxWorkers ${maxWorkers}); the next expires in ${Math.ceil(retryMs / 1000)} s`, 'too-many-workers'), retryMs };
    }
    const minted = { workerId: newWorkerId(), expiresAt: now + CREDENTIAL_TTL_MS };
    this.sql.exec('INSERT INTO workers (worker, last_seen, expires_at) VALUES (?, ?, ?)', minted.workerId, now, minted.expiresAt);
    return ok(minted);
  }

  /** The same id, alive for another CREDENTIAL_TTL_MS; refused for an excluded, expired or unknown one. */
  renew(workerId: string, now: number): Outcome<Minted> {
    const row = this.sql.exec<{ expires_at: number | null; excluded_reason: string | null }>('SELECT expires_at, excluded_reason FROM workers WHERE worker = ?', workerId).toArray()[0];
    if (!row || row.expires_at === null) return fail(409, `${workerId} is not a minted worker identity (a chain's credential comes with its queue message)`, 'not-renewable');
    if (row.excluded_reason !== null) return fail(403, `worker ${workerId} is excluded from this run: ${row.excluded_reason}`, 'excluded');
    if (row.expires_at <= now) return fail(409, `worker ${workerId} expired; mint a new identity`, 'expired');
    const expiresAt = now + CREDENTIAL_TTL_MS;
    this.sql.exec('UPDATE workers SET expires_at = ? WHERE worker = ?', expiresAt, workerId);
    return ok({ workerId, expiresAt });
  }

  /** Why calls under `worker` are refused: an id this coordinator did not mint, or one expired. */
  refusal(worker: string, now: number): Failure | undefined {
    const known = this.sql.exec<{ n: number }>(
      'SELECT (SELECT COUNT(*) FROM workers WHERE worker = ? AND expires_at > ?) + (SELECT COUNT(*) FROM chains WHERE chain = ?) AS n',
      worker,
      now,
      worker,
    ).one().n;
    return known ? undefined : fail(403, `worker ${worker} is not an identity this run minted, or it expired: mint one with POST /v1/runs/:id/workers`, 'unknown-worker');
  }

  /**
   * Deletes identities expired PRUNE_AFTER_MS ago, and once the run has ended every expired one with
   * no accepted answer (those with answers stay in the run's record until long expired). Returns when
   * the next identity becomes prunable, or null.
   */
  prune(now: number, runEnded: boolean): number | null {
    this.sql.exec('DELETE FROM workers WHERE expires_at <= ? AND (expires_at <= ? OR (? AND accepted = 0))', now, now - PRUNE_AFTER_MS, runEnded ? 1 : 0);
    const next = this.sql.exec<{ at: number | null }>(
      'SELECT MIN(CASE WHEN ? AND accepted = 0 THEN expires_at ELSE expires_at + ? END) AS at FROM workers WHERE expires_at IS NOT NULL',
      runEnded ? 1 : 0,
      PRUNE_AFTER_MS,
    ).one().at;
    return next;
  }
}
