// Error feedback (shared/training/error-feedback.ts): what a worker sends over T steps plus what it
// still holds equals the sum of its true gradients, whatever the codec dropped along the way.
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../shared/data/shuffle';
import { ErrorFeedback } from '../../shared/training/error-feedback';
import { roundTrip, type CodecSpec } from '../../shared/wire/codec';

const SEGMENTS = [864, 32, 2000, 64, 1];
const SIZE = SEGMENTS.reduce((a, b) => a + b, 0);
const STEPS = 50;

/** Gradient-like steps: per tensor a scale of its own, values ~ U(-1, 1) times it. */
function gradients(seed: number): Float32Array[] {
  const rng = mulberry32(seed);
  return Array.from({ length: STEPS }, () => {
    const g = new Float32Array(SIZE);
    let start = 0;
    for (const size of SEGMENTS) {
      const scale = 10 ** (rng() * 4 - 3);
      for (let i = start; i < start + size; i++) g[i] = (rng() * 2 - 1) * scale;
      start += size;
    }
    return g;
  });
}

describe('error feedback', () => {
  for (const spec of [{ codec: 'int8' }, { codec: 'topk', topK: 0.01 }] as CodecSpec[]) {
    it(`telescopes with ${spec.codec}: Σ sent + residual = Σ gradients, to float32 rounding`, () => {
      const steps = gradients(spec.codec.length);
      const ef = new ErrorFeedback(SIZE);
      // Sums in float64, so the test adds no rounding of its own.
      const sentSum = new Float64Array(SIZE);
      const trueSum = new Float64Array(SIZE);
      const naiveSum = new Float64Array(SIZE);
      // Each step rounds twice in float32: corrected = g + r and r' = corrected − sent, each off by at
      // most 2^-24 of its result; so step t may miss the identity by 2^-24 (|corrected_t| + |r_t|),
      // and the sum of that over the steps bounds the total, element by element.
      const tolerance = new Float64Array(SIZE);
      for (const g of steps) {
        const before = ef.residual.slice();
        const { sent } = ef.encode(g, spec, SEGMENTS);
        for (let i = 0; i < SIZE; i++) {
          sentSum[i] += sent[i];
          trueSum[i] += g[i];
          tolerance[i] += 2 ** -24 * (Math.abs(g[i] + before[i]) + Math.abs(ef.residual[i]));
        }
        const plain = roundTrip(g, spec, SEGMENTS);
        for (let i = 0; i < SIZE; i++) naiveSum[i] += plain[i];
      }
      let naiveMisses = 0;
      for (let i = 0; i < SIZE; i++) {
        const miss = Math.abs(sentSum[i] + ef.residual[i] - trueSum[i]);
        if (miss > tolerance[i]) throw new Error(`element ${i}: Σ sent + residual misses Σ g by ${miss}, tolerance ${tolerance[i]}`);
        if (Math.abs(naiveSum[i] - trueSum[i]) > 100 * tolerance[i]) naiveMisses++;
      }
      // Without the residual the sums part by far more: the identity above is not a float coincidence.
      expect(naiveMisses).toBeGreaterThan(SIZE / 2);
      expect(ef.residual.some((r) => r !== 0)).toBe(true);
    });
  }

  it('without feedback sends each gradient\'s plain encoding and keeps the residual zero', () => {
    for (const spec of [{ codec: 'int8' }, { codec: 'topk', topK: 0.01 }] as CodecSpec[]) {
      const ef = new ErrorFeedback(SIZE);
      for (const g of gradients(5).slice(0, 5)) {
        const { sent } = ef.encode(g, spec, SEGMENTS, false);
        expect(sent).toEqual(roundTrip(g, spec, SEGMENTS));
        expect(ef.residual.every((r) => r === 0)).toBe(true);
      }
    }
  });

  it('refuses a vector of another size than its residual', () => {
    expect(() => new ErrorFeedback(SIZE).encode(new Float32Array(SIZE - 1), { codec: 'int8' }, [SIZE - 1])).toThrow(RangeError);
  });
});
