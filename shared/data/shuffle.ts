/**
 * Deterministic data order: a seeded PRNG, per-epoch permutations and per-example random sources
 * (training/plan.ts cuts steps and shards from them). Everything is a pure function of its arguments,
 * so the coordinator, any worker and a single-process reference run agree on which examples form
 * each step.
 */

/** mulberry32: a small 32-bit-state PRNG; returns uniform numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle of 0..n−1 driven by mulberry32(seed). */
export function permutation(n: number, seed: number): Uint32Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`permutation: n must be a non-negative integer, got ${n}`);
  const rng = mulberry32(seed);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/**
 * The example order of one epoch; a different, fixed permutation for every (seed, epoch).
 *
 * With `block` > 0 the shuffle is local: the examples are cut into consecutive blocks of `block`, the
 * blocks are put in a random order and each block is shuffled within itself. A batch then reads from one
 * or two blocks, so a worker needs only those blocks in memory (the whole CIFAR-10 train set, 150 MB,
 * does not fit a 128 MB Worker), at the price of a weaker shuffle across blocks.
 */
export function epochOrder(n: number, seed: number, epoch: number, block = 0): Uint32Array {
  // Hash (seed, epoch) into one seed, so neighbouring seeds or epochs give unrelated streams.
  const epochSeed = fmix32(fmix32(seed) ^ Math.imul(epoch + 1, 0x9e3779b9));
  if (!Number.isInteger(block) || block < 0) throw new Error(`epochOrder: block must be an integer >= 0, got ${block}`);
  if (block === 0 || block >= n) return permutation(n, epochSeed);
  const blockCount = Math.ceil(n / block);
  const order = new Uint32Array(n);
  let at = 0;
  for (const b of permutation(blockCount, epochSeed)) {
    const first = b * block;
    const size = Math.min(block, n - first);
    for (const i of permutation(size, fmix32(epochSeed ^ Math.imul(b + 1, 0x85ebca6b)))) order[at++] = first + i;
  }
  return order;
}

/**
 * The random source of the example at `position` of an epoch's order (its augmentation draws). Keyed by
 * position rather than drawn in sequence, so a batch cut into shards augments exactly as it would whole.
 */
export function exampleRng(seed: number, epoch: number, position: number): () => number {
  return mulberry32(fmix32(fmix32(seed ^ 0x2545f491) ^ Math.imul(epoch + 1, 0x9e3779b9) ^ Math.imul(position + 1, 0xc2b2ae35)));
}

/** MurmurHash3's 32-bit finaliser: a bijective mix of all input bits. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
