// How long a lease may go unanswered before its shard is given to another worker: adapted to the
// recent answer times of the run (median + k·MAD, at least twice the median), never more than the
// run's leaseMs (the hard limit) nor less than a floor that absorbs scheduling noise.
import type { LeaseKind } from '../shared/protocol';
import { median } from '../shared/stats';

/** Answers remembered per lease kind. */
const WINDOW = 32;
/** Answers needed before the deadline adapts; until then a lease gets the full leaseMs. */
const MIN_SAMPLES = 5;
const K_MAD = 8;
export const MIN_LEASE_MS = 1000;

export class LeaseWindow {
  private readonly answers: Record<LeaseKind, number[]> = { train: [], eval: [] };

  /** Records how long an accepted answer took from its lease's issue. */
  record(kind: LeaseKind, ms: number): void {
    const a = this.answers[kind];
    a.push(ms);
    if (a.length > WINDOW) a.shift();
  }

  /** Milliseconds a new lease of `kind` may stay unanswered. */
  millis(kind: LeaseKind, leaseMs: number): number {
    const a = this.answers[kind];
    if (a.length < MIN_SAMPLES) return leaseMs;
    const med = median(a);
    const mad = median(a.map((x) => Math.abs(x - med)));
    return Math.round(Math.min(leaseMs, Math.max(MIN_LEASE_MS, 2 * med, med + K_MAD * mad)));
  }
}
