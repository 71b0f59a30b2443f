// The current step's accepted gradients, summed as they arrive, and their mean once every shard is in.
// Pure: unit-tested without Miniflare (test/unit/step-aggregator.test.ts).
//
// Sums are float64: a step's result is then the same whatever order its shards arrive in (to far
// below float32 resolution), so a run with re-issued, late or re-ordered answers ends with the same
// parameters as one without.

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
}

/** A step's mean over its shards: what the optimizer applies. */
export interface StepMean {
  readonly grads: Float32Array;
  readonly stats: Float32Array;
  /** Mean of the shards' mean losses (shards are equal-sized). */
  readonly loss: number;
  readonly correct: number;
  /** Which worker's answer was counted for each shard: worker id → shards. */
  readonly workers: Readonly<Record<string, number>>;
}

export class StepAggregator {
  private readonly grads: Float64Array;
  private readonly stats: Float64Array;
  /** shard → the worker whose answer was counted. */
  private readonly counted = new Map<number, string>();
  private loss = 0;
  private correct = 0;
  /** When the step's first lease went out (0: none yet), for the step's wall time. */
  firstLeaseAt = 0;
  /** Milliseconds spent decoding and checking this step's answers (the coordinator's timing). */
  decodeMs = 0;
  /** Milliseconds spent adding them. */
  sumMs = 0;

  constructor(
    readonly step: number,
    readonly shards: number,
    paramCount: number,
    bufferCount: number,
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

  get complete(): boolean {
    return this.counted.size === this.shards;
  }

  get empty(): boolean {
    return this.counted.size === 0;
  }

  add(r: ShardResult): void {
    if (!Number.isInteger(r.shard) || r.shard < 0 || r.shard >= this.shards) throw new RangeError(`step ${this.step}: shard ${r.shard} is outside 0..${this.shards - 1}`);
    if (this.counted.has(r.shard)) throw new Error(`step ${this.step}: shard ${r.shard} is already counted`);
    if (r.grads.length !== this.grads.length || r.stats.length !== this.stats.length) {
      throw new RangeError(`step ${this.step}: shard of ${r.grads.length} gradient / ${r.stats.length} statistics values; the run has ${this.grads.length} / ${this.stats.length}`);
    }
    for (let i = 0; i < this.grads.length; i++) this.grads[i] += r.grads[i];
    for (let i = 0; i < this.stats.length; i++) this.stats[i] += r.stats[i];
    this.loss += r.loss;
    this.correct += r.correct;
    this.counted.set(r.shard, r.worker);
  }

  /** The mean over every shard; the step must be complete. */
  mean(): StepMean {
    if (!this.complete) throw new Error(`step ${this.step}: ${this.counted.size} of ${this.shards} shards counted`);
    const scale = 1 / this.shards;
    // No prototype: a worker may call itself '__proto__'.
    const workers: Record<string, number> = Object.create(null);
    for (const worker of this.counted.values()) workers[worker] = (workers[worker] ?? 0) + 1;
    return {
      grads: scaled(this.grads, scale),
      stats: scaled(this.stats, scale),
      loss: this.loss * scale,
      correct: this.correct,
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
