// Token buckets per worker for the lease/heartbeat/submit endpoints: a burst of CAPACITY requests,
// then REFILL_PER_S a second (other capacities and rates per limiter). One bucket map per run (per coordinator), in memory: a restart forgives.
const CAPACITY = 120;
const REFILL_PER_S = 60;
/** Buckets kept; the least recently used go first. */
const MAX_KEYS = 4096;

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly capacity = CAPACITY,
    private readonly refillPerS = REFILL_PER_S,
  ) {}

  /** 0 when the request may proceed, else milliseconds until it may. */
  take(key: string, now = Date.now()): number {
    const b = this.buckets.get(key) ?? { tokens: this.capacity, at: now };
    this.buckets.delete(key);
    b.tokens = Math.min(this.capacity, b.tokens + ((now - b.at) * this.refillPerS) / 1000);
    b.at = now;
    this.buckets.set(key, b);
    if (this.buckets.size > MAX_KEYS) this.buckets.delete(this.buckets.keys().next().value!);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / this.refillPerS);
  }
}
