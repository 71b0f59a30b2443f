// The current step's accepted gradients, summed as they arrive, and their mean once every shard is in.
// Pure: unit-tested without Miniflare (test/unit/step-aggregator.test.ts).
//
// With a robust aggregation (robust-mean.ts) each shard's gradient is kept as well, and the step's
// gradient is their coordinate-wise median or trimmed mean instead of the mean of the sum.
//
// Sums are float64: a step's result is then the same whatever order its shards arrive in (to far
// below float32 resolution), so a run with re-issued, late or re-ordered answers ends with the same
// parameters as one without.

import { robustMean, type Aggregation } from './robust-mean';
import type { DomainResult } from './step';

/** What one accepted shard contributes. */
export interface ShardResult {
  readonly shard: number;
  readonly worker: string;
  /** Mean loss over the shard's examples. */
  readonly loss: number;
  readonly correct: number;
  /** d(mean loss)/d(params) over the shard, flat. */
  readonly grads: Float32Array;
  /** Batch-norm batch statistics over the shard, flat (empty without batch norm). */
  readonly stats: Float32Array;
  /** DANN: the domain classifier's mean loss and correct count over the shard's source and target images. */
  readonly domain?: DomainResult;
}

/** Several shards summed elsewhere (an aggregator), in float64: what they add to the step at once. */
export interface PartialSum {
  readonly shards: readonly Pick<ShardResult, 'shard' | 'worker' | 'loss' | 'correct' | 'domain'>[];
  readonly grads: Float64Array;
  readonly stats: Float64Array;
}

/** A step's mean over its shards: what the optimizer applies. */
export interface StepMean {
  readonly grads: Float32Array;
  readonly stats: Float32Array;
  /** Mean of the shards' mean losses (shards are equal-sized). */
  readonly loss: number;
  readonly correct: number;
  /** DANN: mean of the shards' mean domain losses, and their domain correct counts summed. */
  readonly domain?: DomainResult;
  /** Which worker's answer was counted for each shard: worker id → shards. */
  readonly workers: Readonly<Record<string, number>>;
}

/** How a step combines its shards' gradients (ClusterConfig.aggregation and trim). */
export interface Combine {
  readonly aggregation: Aggregation;
  readonly trim: number;
}

export class StepAggregator {
  private readonly grads: Float64Array;
  /** Each counted shard's gradient and statistics, kept for a robust aggregation only. */
  private readonly rows: { grads: Float32Array; stats: Float32Array }[] = [];
  private readonly stats: Float64Array;
  /** shard → the worker whose answer was counted. */
  private readonly counted = new Map<number, string>();
  private loss = 0;
  private correct = 0;
  /** DANN: the counted shards' domain losses and correct counts, and how many shards carried them. */
  private readonly domain = { loss: 0, correct: 0, shards: 0 };
  /** When the step's first lease went out (0: none yet), for the step's wall time. */
  firstLeaseAt = 0;
  /** Milliseconds spent decoding and checking this step's answers (the coordinator's timing). */
  decodeMs = 0;
  /** Milliseconds spent adding them. */
  sumMs = 0;
  /** Milliseconds aggregators spent decoding and summing this step's answers (beside the coordinator). */
  aggregatorMs = 0;

  constructor(
    readonly step: number,
    readonly shards: number,
    paramCount: number,
    bufferCount: number,
    private readonly combine: Combine = { aggregation: 'mean', trim: 0 },
  ) {
    this.grads = new Float64Array(paramCount);
    this.stats = new Float64Array(bufferCount);
  }

  /** Shards counted so far. */
  get countedShards(): ReadonlySet<number> {
    return new Set(this.counted.keys());
  }

  has(shard: number): boolean {
    return this.counted.has(shard);
  }

  /** Whether any counted shard is `worker`'s answer. */
  countedFrom(worker: string): boolean {
    for (const w of this.counted.values()) if (w === worker) return true;
    return false;
  }

  get complete(): boolean {
    return this.counted.size === this.shards;
  }

  get empty(): boolean {
    return this.counted.size === 0;
  }

  add(r: ShardResult): void {
    this.addSums([r], r.grads, r.stats);
    if (this.combine.aggregation !== 'mean') this.rows.push({ grads: r.grads, stats: r.stats });
  }

  /** Adds shards already summed together (their float64 sums): the same result as adding each. */
  addPartial(p: PartialSum): void {
    if (this.combine.aggregation !== 'mean') throw new Error(`step ${this.step}: a partial sum cannot be combined by '${this.combine.aggregation}'`);
    this.addSums(p.shards, p.grads, p.stats);
  }

  private addSums(shards: PartialSum['shards'], grads: Float32Array | Float64Array, stats: Float32Array | Float64Array): void {
    const seen = new Set<number>();
    for (const { shard } of shards) {
      if (!Number.isInteger(shard) || shard < 0 || shard >= this.shards) throw new RangeError(`step ${this.step}: shard ${shard} is outside 0..${this.shards - 1}`);
      if (this.counted.has(shard) || seen.has(shard)) throw new Error(`step ${this.step}: shard ${shard} is already counted`);
      seen.add(shard);
    }
    if (grads.length !== this.grads.length || stats.length !== this.stats.length) {
      throw new RangeError(`step ${this.step}: ${grads.length} gradient / ${stats.length} statistics values; the run has ${this.grads.length} / ${this.stats.length}`);
    }
    for (let i = 0; i < this.grads.length; i++) this.grads[i] += grads[i];
    for (let i = 0; i < this.stats.length; i++) this.stats[i] += stats[i];
    for (const s of shards) {
      this.loss += s.loss;
      this.correct += s.correct;
      if (s.domain) {
        this.domain.loss += s.domain.loss;
        this.domain.correct += s.domain.correct;
        this.domain.shards++;
      }
      this.counted.set(s.shard, s.worker);
    }
  }

  /** The mean over every shard; the step must be complete. */
  mean(): StepMean {
    if (!this.complete) throw new Error(`step ${this.step}: ${this.counted.size} of ${this.shards} shards counted`);
    const scale = 1 / this.shards;
    // No prototype: a worker may call itself '__proto__'.
    const workers: Record<string, number> = Object.create(null);
    for (const worker of this.counted.values()) workers[worker] = (workers[worker] ?? 0) + 1;
    // The coordinator admits domain figures from every shard of a DANN run and from none of another's.
    if (this.domain.shards && this.domain.shards !== this.shards) throw new Error(`step ${this.step}: ${this.domain.shards} of ${this.shards} shards carried domain figures`);
    const { aggregation, trim } = this.combine;
    const robust = aggregation !== 'mean';
    return {
      grads: robust ? robustMean(this.rows.map((r) => r.grads), aggregation, trim) : scaled(this.grads, scale),
      stats: robust && this.stats.length ? robustMean(this.rows.map((r) => r.stats), aggregation, trim) : scaled(this.stats, scale),
      loss: this.loss * scale,
      correct: this.correct,
      ...(this.domain.shards ? { domain: { loss: this.domain.loss * scale, correct: this.domain.correct } } : {}),
      workers,
    };
  }
}

/** `sums` × `scale`, rounded to float32 (a plain loop: `Float32Array.from` with a map function is ~80× slower). */
function scaled(sums: Float64Array, scale: number): Float32Array {
  const out = new Float32Array(sums.length);
  for (let i = 0; i < sums.length; i++) out[i] = sums[i] * scale;
  return out;
}
