// Refuses gradients whose L2 norm is absurd next to the run's recent ones (or above an absolute cap),
// unless another worker independently reports the same norm for the same shard: computation is
// deterministic, so two workers agreeing means a genuine spike, not a fault.
import { median } from '../shared/stats';

const RECENT = 64;
const MIN_SAMPLES = 8;
/** Times the median of recent accepted norms that counts as absurd. */
export const NORM_FACTOR = 1000;
/** Absurd regardless of history. */
export const NORM_CAP = 1e6;
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
    const typical = this.typical();
    const limit = typical === undefined ? NORM_CAP : Math.min(NORM_CAP, NORM_FACTOR * typical);
    if (norm <= limit) return undefined;
    const key = `${step}:${shard}`;
    const reports = this.suspects.get(key) ?? [];
    if (reports.some((r) => r.worker !== worker && Math.abs(r.norm - norm) <= AGREE * norm)) return undefined;
    reports.push({ worker, norm });
    this.suspects.set(key, reports);
    const basis = typical === undefined ? `the cap of ${NORM_CAP}` : `${NORM_FACTOR} × the median of recent gradients (${typical.toPrecision(4)})`;
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

  private typical(): number | undefined {
    return this.recent.length < MIN_SAMPLES ? undefined : median(this.recent);
  }
}
