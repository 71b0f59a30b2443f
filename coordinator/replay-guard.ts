// Refuses an answer whose gradient equals one already accepted for a different (step, shard): a stored
// honest frame re-wrapped for another lease, passed off as that shard's work. The same (step, shard)
// answered twice with equal values is legitimate (a backup lease, or a shard leased to two workers to
// compare them) and passes. Memory is bounded: the digests of the last REPLAY_STEPS steps, in memory
// only (a restart forgets them, as it forgets the norm guard's history).
import { gradientDigest } from '../shared/wire';

/** Steps whose accepted answers are remembered. */
export const REPLAY_STEPS = 32;

/**
 * The digest the guard keys on, or undefined for a constant gradient (all zeros, say): a constant
 * carries nothing of its shard, so equal constants from two shards are no sign of a copy (and a
 * copied one is no worse than a forged one, which the other checks judge).
 */
export function replayDigest(grads: Float32Array): string | undefined {
  let constant = true;
  for (let i = 1; i < grads.length && constant; i++) constant = Object.is(grads[i], grads[0]);
  return constant ? undefined : gradientDigest(grads);
}

interface Seen {
  readonly step: number;
  readonly shard: number;
}

export class ReplayGuard {
  private readonly seen = new Map<string, Seen>();

  /** A refusal message when `digest` was accepted for another (step, shard); else undefined. */
  check(step: number, shard: number, digest: string | undefined): string | undefined {
    const first = digest === undefined ? undefined : this.seen.get(digest);
    if (!first || (first.step === step && first.shard === shard)) return undefined;
    return `this gradient equals the one accepted for step ${first.step} shard ${first.shard}: an answer for step ${step} shard ${shard} must be computed for that shard`;
  }

  accepted(step: number, shard: number, digest: string | undefined): void {
    if (digest !== undefined && !this.seen.has(digest)) this.seen.set(digest, { step, shard });
  }

  /** Forgets the answers of steps before `step` − REPLAY_STEPS + 1. */
  nextStep(step: number): void {
    for (const [digest, s] of this.seen) if (s.step <= step - REPLAY_STEPS) this.seen.delete(digest);
  }
}
