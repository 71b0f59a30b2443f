// Refuses gradients whose L2 norm is absurd next to the run's recent ones (or above an absolute cap),
// unless another worker independently reports the same norm for the same shard: computation is
// deterministic, so two workers agreeing means a genuine spike, not a fault. Until MIN_SAMPLES norms
// are accepted the bound is tighter: EARLY_CAP, and EARLY_FACTOR × the median of the (nonzero) norms
// accepted so far, so that one hostile first answer cannot move the parameters far.
import { median } from '../shared/stats';

const RECENT = 64;
const MIN_SAMPLES = 8;
/** Times the median of recent accepted norms that counts as absurd. */
export const NORM_FACTOR = 1000;
/** Absurd regardless of history. */
export const NORM_CAP = 1e6;
/**
 * Absurd before MIN_SAMPLES norms are accepted. The first-step gradient norms of every preset and head
 * measure at most ~45 (test/unit/coordinator-parts.test.ts measures them): over 200 × below this.
 */
export const EARLY_CAP = 1e4;
/** Times the median of the first accepted (nonzero) norms that counts as absurd before MIN_SAMPLES. */
export const EARLY_FACTOR = 100;
/** The early relative bound never goes below this, so one tiny first answer cannot make honest ones absurd. */
export const EARLY_FLOOR = 100;
/** Relative agreement of two reports of one shard. */
const AGREE = 1e-4;

export function l2Norm(values: Float32Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}

export class NormGuard {
  private readonly recent: number[] = [];
  /** Refused reports per "step:shard" of the current step. */
  private readonly suspects = new Map<string, { worker: string; norm: number }[]>();

  /** A refusal message, or undefined when the gradient may be counted. */
  check(step: number, shard: number, worker: string, norm: number): string | undefined {
    const { limit, basis } = this.limit();
    if (norm <= limit) return undefined;
    const key = `${step}:${shard}`;
    const reports = this.suspects.get(key) ?? [];
    if (reports.some((r) => r.worker !== worker && Math.abs(r.norm - norm) <= AGREE * norm)) return undefined;
    reports.push({ worker, norm });
    this.suspects.set(key, reports);
    return `gradient norm ${norm.toPrecision(4)} is above ${basis}; a second worker reporting the same norm for this shard would be counted`;
  }

  accepted(norm: number): void {
    this.recent.push(norm);
    if (this.recent.length > RECENT) this.recent.shift();
  }

  /** Forgets the refused reports of a finished step. */
  nextStep(): void {
    this.suspects.clear();
  }

  /** The bound a norm is held to now, and how to name it. */
  private limit(): { limit: number; basis: string } {
    if (this.recent.length >= MIN_SAMPLES) {
      const typical = median(this.recent);
      const relative = NORM_FACTOR * typical;
      return relative < NORM_CAP ? { limit: relative, basis: `${NORM_FACTOR} × the median of recent gradients (${typical.toPrecision(4)})` } : { limit: NORM_CAP, basis: `the cap of ${NORM_CAP}` };
    }
    const nonzero = this.recent.filter((n) => n > 0);
    const first = nonzero.length ? Math.max(EARLY_FLOOR, EARLY_FACTOR * median(nonzero)) : Infinity;
    if (first < EARLY_CAP) return { limit: first, basis: `${EARLY_FACTOR} × the median of the first accepted gradients (${median(nonzero).toPrecision(4)})` };
    return { limit: EARLY_CAP, basis: `the cap of ${EARLY_CAP} until ${MIN_SAMPLES} gradients are accepted` };
  }
}
