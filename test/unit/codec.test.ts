// The wire codecs of a flat vector (shared/wire/codec.ts) against references built here from the
// formats' definitions: binary16 from its bit patterns, int8's per-block scale, top-k by a full sort.
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../shared/data/shuffle';
import { INT8_BLOCK, decodeValues, encodeValues, fromHalf, payloadBytes, roundTrip, toHalf, topKOf, type CodecSpec } from '../../shared/wire/codec';
import { WireError, type WireErrorReason } from '../../shared/wire/frame';

const FP16: CodecSpec = { codec: 'fp16' };
const INT8: CodecSpec = { codec: 'int8' };
const topk = (fraction: number): CodecSpec => ({ codec: 'topk', topK: fraction });

/** Values spread over many magnitudes, both signs: u · 10^e, u in [-1, 1), e in [-6, 2]. */
function randomValues(n: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (rng() * 2 - 1) * 10 ** Math.floor(rng() * 9 - 6));
}

function wireError(fn: () => unknown): WireError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WireError);
    return e as WireError;
  }
  throw new Error('expected a WireError, nothing was thrown');
}
const refusedFor = (fn: () => unknown, reason: WireErrorReason) => expect(wireError(fn).reason).toBe(reason);

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

// ---------- fp16 ----------

/** Binary16 from its fields, written from the standard (not from the codec's table). */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return exp === 0 ? sign * mant * 2 ** -24 : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Every non-negative finite half's value, ascending with its bit pattern, then +Inf (0x7c00). */
const POSITIVE_HALVES = Array.from({ length: 0x7c01 }, (_, h) => halfValue(h));

/** Round to nearest binary16, ties to the even pattern; overflow past the midpoint 65520 is ±Inf. */
function referenceHalf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  // Largest h with value <= a (binary search; the values ascend with h).
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (POSITIVE_HALVES[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = POSITIVE_HALVES[lo];
  const above = POSITIVE_HALVES[lo + 1];
  const h = a - below < above - a ? lo : a - below > above - a ? lo + 1 : lo & 1 ? lo + 1 : lo;
  return sign | h;
}

describe('fp16', () => {
  it('maps every finite half back to itself, and a half\'s value to the same pattern (±0 and subnormals included)', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      expect(fromHalf(h)).toBe(Math.fround(halfValue(h)));
      expect(toHalf(halfValue(h))).toBe(h);
    }
  });

  it('rounds ties to the even pattern, at the known bit patterns', () => {
    const cases: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], // halfway between 1 (even) and 1 + 2^-10: down
      [1 + 3 * 2 ** -11, 0x3c02], // halfway between 1 + 2^-10 (odd) and 1 + 2^-9: up
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway: up
      [1 + 2 ** -11 - 2 ** -20, 0x3c00], // just below: down
      [2 - 2 ** -11, 0x4000], // halfway from 0x3bff... (odd) to 2: carries into the exponent
      [-(1 + 3 * 2 ** -11), 0xbc02],
      [2 ** -25, 0x0000], // half the smallest subnormal: to 0 (even)
      [3 * 2 ** -25, 0x0002], // halfway between subnormals 1 (odd) and 2: up
      [2 ** -25 + 2 ** -40, 0x0001],
      [2 ** -14 - 2 ** -25, 0x0400], // halfway between the largest subnormal (odd) and the smallest normal
      [65504, 0x7bff], // the largest finite half
      [65519, 0x7bff],
      [65520, 0x7c00], // halfway to 2^16 from 0x7bff (odd): overflows to Inf
    ];
    for (const [x, h] of cases) expect([x, toHalf(x)]).toEqual([x, h]);
  });

  it('agrees with the reference on random float32 bit patterns from below the subnormals to past overflow, and on every tie', () => {
    const rng = mulberry32(7);
    const bits = new Uint32Array(1);
    const asFloat = new Float32Array(bits.buffer);
    for (let i = 0; i < 20_000; i++) {
      const exponent = 127 - 27 + Math.floor(rng() * 46); // 2^-27 … 2^18
      bits[0] = (rng() < 0.5 ? 0x80000000 : 0) | (exponent << 23) | Math.floor(rng() * 0x800000);
      expect(toHalf(asFloat[0])).toBe(referenceHalf(asFloat[0]));
    }
    // Every midpoint between neighbouring positive halves (exact in float32: 12 significant bits).
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (POSITIVE_HALVES[h] + POSITIVE_HALVES[h + 1]) / 2;
      expect(Math.fround(mid)).toBe(mid);
      expect(toHalf(mid)).toBe(h & 1 ? h + 1 : h);
    }
  });

  it('keeps the relative error of normal values within 2^-11 (half a unit in the last place)', () => {
    const rng = mulberry32(3);
    let worst = 0;
    for (let i = 0; i < 50_000; i++) {
      const x = Math.fround((rng() < 0.5 ? -1 : 1) * 2 ** (-14 + rng() * 29.99)); // [2^-14, 65504]
      const y = fromHalf(toHalf(x));
      worst = Math.max(worst, Math.abs(y - x) / Math.abs(x));
    }
    expect(worst).toBeLessThanOrEqual(2 ** -11);
    expect(worst).toBeGreaterThan(2 ** -12); // the bound is nearly reached: truncation would exceed it
  });

  it('sends overflow to ±Inf, keeps ±Inf and NaN, flushes below half the smallest subnormal to a signed zero', () => {
    expect(toHalf(1e6)).toBe(0x7c00);
    expect(toHalf(-1e6)).toBe(0xfc00);
    expect(toHalf(Infinity)).toBe(0x7c00);
    expect(toHalf(-Infinity)).toBe(0xfc00);
    const nan = toHalf(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(fromHalf(nan)).toBeNaN();
    expect(toHalf(1e-9)).toBe(0);
    expect(toHalf(-1e-9)).toBe(0x8000);
    expect(Object.is(fromHalf(0x8000), -0)).toBe(true);
    const x = Float32Array.of(1e6, -Infinity, NaN, 1e-9, 6e-8, 0.1);
    expect(Array.from(roundTrip(x, FP16, [6]))).toEqual([Infinity, -Infinity, NaN, 0, Math.fround(2 ** -24), fromHalf(toHalf(0.1))]);
  });
});

// ---------- int8 ----------

/** The f32 scales at the head of an int8 payload. */
function int8Scales(payload: Uint8Array, segments: readonly number[]): Float32Array {
  const count = sum(segments.map((s) => Math.ceil(s / INT8_BLOCK)));
  return new Float32Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + 4 * count));
}

/** Each block's [start, end) within its segment, in flat order. */
function blocksOf(segments: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (const size of segments) {
    for (let b = start; b < start + size; b += INT8_BLOCK) out.push([b, Math.min(b + INT8_BLOCK, start + size)]);
    start += size;
  }
  return out;
}

describe('int8', () => {
  const segments = [864, 32, 300, 1, 129, 200];
  const n = sum(segments);

  it('stores one scale per block of each segment, absmax / 127, and decodes within half a scale of every value', () => {
    const x = randomValues(n, 11);
    const payload = encodeValues(x, INT8, segments);
    const scales = int8Scales(payload, segments);
    const blocks = blocksOf(segments);
    expect(scales.length).toBe(blocks.length);
    const y = decodeValues(payload, n, INT8, segments);
    let worstOverScale = 0;
    blocks.forEach(([b, e], k) => {
      let absmax = 0;
      for (let i = b; i < e; i++) absmax = Math.max(absmax, Math.abs(x[i]));
      expect(scales[k]).toBe(Math.fround(absmax / 127));
      for (let i = b; i < e; i++) {
        const err = Math.abs(y[i] - x[i]);
        // scale/2 from rounding to the integer grid; plus storing q·scale as float32 (2^-24 of it) and
        // the f32 scale sitting up to 2^-24 below absmax/127 (the clamp at 127): 2^-23 |x| covers both.
        expect(err).toBeLessThanOrEqual(scales[k] / 2 + Math.abs(x[i]) * 2 ** -23);
        if (scales[k] > 0) worstOverScale = Math.max(worstOverScale, err / scales[k]);
      }
    });
    expect(worstOverScale).toBeGreaterThan(0.45); // the bound is tight: truncating would reach 1
  });

  it('restarts blocks at each segment: one tensor\'s large value changes nothing in another', () => {
    const small = randomValues(200, 12).map((v) => v * 1e-3);
    const other = randomValues(300, 13);
    const withSpike = other.slice();
    withSpike[5] = 1e4;
    const both = (second: Float32Array) => {
      const x = new Float32Array(500);
      x.set(small);
      x.set(second, 200);
      return roundTrip(x, INT8, [200, 300]);
    };
    const alone = roundTrip(small, INT8, [200]);
    // The second segment's first block is [200, 328), not the flat [256, 384).
    expect(both(other).subarray(0, 200)).toEqual(alone);
    expect(both(withSpike).subarray(0, 200)).toEqual(alone);
    expect(both(other).subarray(200)).toEqual(roundTrip(other, INT8, [300]));
    // Within the spiked tensor, only the spike's block coarsens.
    expect(both(withSpike).subarray(200 + 128)).toEqual(roundTrip(other, INT8, [300]).subarray(128));
  });

  it('keeps zeros exactly zero: inside a block, and a whole zero block (scale 0, no NaN)', () => {
    const x = new Float32Array(3 * INT8_BLOCK);
    x[1] = 0.5;
    x[2] = -0.25;
    x[2 * INT8_BLOCK + 7] = 3;
    const payload = encodeValues(x, INT8, [x.length]);
    expect(Array.from(int8Scales(payload, [x.length]))).toEqual([Math.fround(0.5 / 127), 0, Math.fround(3 / 127)]);
    const y = decodeValues(payload, x.length, INT8, [x.length]);
    for (let i = 0; i < x.length; i++) if (x[i] === 0) expect(y[i]).toBe(0);
    expect(y[1]).toBeCloseTo(0.5, 6);
    expect(y[2 * INT8_BLOCK + 7]).toBeCloseTo(3, 5);
  });
});

// ---------- top-k ----------

describe('top-k', () => {
  it('keeps k = max(1, ceil(f · size)) entries of each tensor', () => {
    expect(topKOf(1000, 0.01)).toBe(10);
    expect(topKOf(1001, 0.01)).toBe(11);
    expect(topKOf(50, 0.01)).toBe(1);
    expect(topKOf(1, 0.01)).toBe(1);
    expect(topKOf(10, 1)).toBe(10);
    expect(topKOf(864, 0.01)).toBe(9);
  });

  it('keeps exactly the k largest magnitudes of each segment with their exact values, zeros elsewhere', () => {
    const segments = [864, 32, 18432, 64, 1, 1000];
    const n = sum(segments);
    const x = randomValues(n, 21);
    for (const fraction of [0.01, 0.1, 0.5]) {
      const y = roundTrip(x, topk(fraction), segments);
      let start = 0;
      for (const size of segments) {
        const k = topKOf(size, fraction);
        const order = Array.from({ length: size }, (_, i) => start + i).sort((a, b) => Math.abs(x[b]) - Math.abs(x[a]) || a - b);
        const kept = new Set(order.slice(0, k));
        for (let i = start; i < start + size; i++) expect(y[i]).toBe(kept.has(i) ? x[i] : 0);
        start += size;
      }
    }
  });

  it('writes (index, value) pairs with indices ascending, and breaks ties in magnitude by the lower index', () => {
    const x = Float32Array.of(1, -1, 1, -1, 1, /* segment 2 */ 0, 0.5, -2, 0.5, 0);
    const payload = encodeValues(x, topk(0.4), [5, 5]);
    const view = new DataView(payload.buffer);
    const pairs = Array.from({ length: payload.byteLength / 8 }, (_, j) => [view.getUint32(8 * j, true), view.getFloat32(8 * j + 4, true)]);
    expect(pairs).toEqual([[0, 1], [1, -1], [6, 0.5], [7, -2]]);
  });
});

// ---------- sizes and refusals ----------

describe('payloads', () => {
  const specs: CodecSpec[] = [{ codec: 'fp32' }, FP16, INT8, topk(0.01), topk(0.3)];

  it('are payloadBytes long, a multiple of 4, for odd and even segment sizes', () => {
    for (const segments of [[1], [3], [2, 5], [127, 128, 129], [864, 32, 18432, 64]]) {
      const n = sum(segments);
      const x = randomValues(n, n);
      for (const spec of specs) {
        const payload = encodeValues(x, spec, segments);
        expect(payload.byteLength).toBe(payloadBytes(spec, segments));
        expect(payload.byteLength % 4).toBe(0);
        expect(decodeValues(payload, n, spec, segments)).toEqual(roundTrip(x, spec, segments));
      }
    }
    const blocks = Math.ceil(300 / 128) + 1;
    expect(payloadBytes(INT8, [300, 5])).toBe(4 * blocks + 308);
    expect(payloadBytes(FP16, [3])).toBe(8);
    expect(payloadBytes(topk(0.01), [1000, 5])).toBe(8 * (10 + 1));
  });

  it('of the wrong length are refused', () => {
    const x = randomValues(300, 1);
    for (const spec of specs) {
      const payload = encodeValues(x, spec, [300]);
      refusedFor(() => decodeValues(payload.subarray(0, payload.length - 4), 300, spec, [300]), 'length');
      const longer = new Uint8Array(payload.length + 4);
      longer.set(payload);
      refusedFor(() => decodeValues(longer, 300, spec, [300]), 'length');
    }
  });

  it('with a negative, NaN or infinite int8 scale are refused', () => {
    const x = randomValues(300, 2);
    for (const bad of [-1e-3, NaN, Infinity]) {
      const payload = encodeValues(x, INT8, [300]);
      new DataView(payload.buffer).setFloat32(4, bad, true); // the second block's scale
      refusedFor(() => decodeValues(payload, 300, INT8, [300]), 'format');
    }
  });

  it('with a top-k index outside its segment, repeated or descending are refused', () => {
    const x = randomValues(200, 3);
    const segments = [100, 100];
    const spec = topk(0.02); // two pairs per segment: bytes 0–15 segment 1, 16–31 segment 2
    const tampered = (at: number, index: number) => {
      const payload = encodeValues(x, spec, segments);
      new DataView(payload.buffer).setUint32(at, index, true);
      return payload;
    };
    const indexAt = (at: number) => new DataView(encodeValues(x, spec, segments).buffer).getUint32(at, true);
    refusedFor(() => decodeValues(tampered(8, 150), 200, spec, segments), 'format'); // in the next segment
    refusedFor(() => decodeValues(tampered(16, 99), 200, spec, segments), 'format'); // in the previous one
    refusedFor(() => decodeValues(tampered(24, 200), 200, spec, segments), 'format'); // past the vector
    refusedFor(() => decodeValues(tampered(8, indexAt(0)), 200, spec, segments), 'format'); // repeated
    refusedFor(() => decodeValues(tampered(0, indexAt(8) + 1 < 100 ? indexAt(8) + 1 : 99), 200, spec, segments), 'format'); // descending
    expect(() => decodeValues(encodeValues(x, spec, segments), 200, spec, segments)).not.toThrow();
  });
});
