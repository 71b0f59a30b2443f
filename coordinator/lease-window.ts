// How long a lease may go unanswered before its shard is given to another worker: adapted to the
// run's recent answer times (median + k·MAD, at least twice the median), never more than the run's
// leaseMs (the hard limit) nor less than a floor that absorbs scheduling noise.
//
// Answer times are kept per example, per lease kind, and scaled by the lease's examples: a kind with
// too few answers yet (evaluation happens once an epoch) borrows the other kind's — a training
// example costs more than an evaluation one, so the borrowed window errs long.
import type { LeaseKind } from '../shared/protocol';
import { median } from '../shared/stats';

/** Answers remembered per lease kind. */
const WINDOW = 32;
/** Answers needed before the deadline adapts; until then a lease gets the full leaseMs. */
const MIN_SAMPLES = 5;
const K_MAD = 8;
export const MIN_LEASE_MS = 1000;

export class LeaseWindow {
  private readonly perExample: Record<LeaseKind, number[]> = { train: [], eval: [] };

  /** Records how long an accepted answer for `examples` examples took from its lease's issue. */
  record(kind: LeaseKind, ms: number, examples: number): void {
    const a = this.perExample[kind];
    a.push(ms / Math.max(1, examples));
    if (a.length > WINDOW) a.shift();
  }

  /** Milliseconds a new lease of `kind` over `examples` examples may stay unanswered. */
  millis(kind: LeaseKind, examples: number, leaseMs: number): number {
    const own = this.perExample[kind];
    const a = own.length >= MIN_SAMPLES ? own : this.perExample[kind === 'train' ? 'eval' : 'train'];
    if (a.length < MIN_SAMPLES) return leaseMs;
    const med = median(a);
    const mad = median(a.map((x) => Math.abs(x - med)));
    const ms = examples * Math.max(2 * med, med + K_MAD * mad);
    return Math.round(Math.min(leaseMs, Math.max(MIN_LEASE_MS, ms)));
  }
}
