// Verification's pure parts (coordinator/verification.ts), the robust means (shared/training/robust-mean.ts),
// a step combined by them (StepAggregator), and lease picking for shards that want several answers.
import { describe, expect, it } from 'vitest';
import { pickShard, type LeaseRow } from '../../coordinator/lease-scheduler';
import { drawVerified, evalsAgree, evalSuspect, gradientsAgree, keptAnswersProblem, MAX_ANSWERS, relativeDistance, ShardVerification } from '../../coordinator/verification';
import { DEFAULT_CLUSTER_CONFIG } from '../../shared/protocol';
import { robustMean, trimCount } from '../../shared/training/robust-mean';
import { StepAggregator, type ShardResult } from '../../shared/training/step-aggregator';

const answer = (worker: string, g: number[], o: Partial<ShardResult> = {}): ShardResult => ({ shard: 0, worker, loss: 2.3, correct: 3, grads: Float32Array.from(g), stats: new Float32Array(0), ...o });
const held = (a: ShardResult) => ({ worker: a.worker, leaseId: `lease-${a.worker}`, value: a });

describe('ShardVerification', () => {
  const exact = gradientsAgree(0, 32);

  it('counts nothing until a second worker agrees; the agreed answer counts and nobody is a liar', () => {
    const v = new ShardVerification(new Set([0]), exact);
    expect(v.checks(0)).toBe(true);
    expect(v.checks(1)).toBe(false);
    expect(v.more(0)).toBe(2);
    expect(v.more(1)).toBeUndefined();
    expect(v.add(0, held(answer('a', [1, 2])))).toEqual({ type: 'wait' });
    expect(v.more(0)).toBe(1);
    const verdict = v.add(0, held(answer('b', [1, 2])));
    expect(verdict).toMatchObject({ type: 'agreed', liars: [] });
    expect(v.heldCount).toBe(0);
  });

  it('a disagreement asks a third worker, whose answer names the liar (first or second)', () => {
    for (const liarFirst of [true, false]) {
      const v = new ShardVerification(new Set([0]), exact);
      const [first, second] = liarFirst ? [answer('c', [9, 9]), answer('a', [1, 2])] : [answer('a', [1, 2]), answer('c', [9, 9])];
      v.add(0, held(first));
      expect(v.add(0, held(second))).toEqual({ type: 'wait' });
      expect(v.more(0)).toBe(1);
      const verdict = v.add(0, held(answer('b', [1, 2])));
      expect(verdict.type).toBe('agreed');
      if (verdict.type !== 'agreed') return;
      expect(verdict.value.worker).toBe('a');
      expect(verdict.liars.map((l) => l.worker)).toEqual(['c']);
    }
  });

  it(`${MAX_ANSWERS} answers no two alike are unresolved`, () => {
    const v = new ShardVerification(new Set([0]), exact);
    const verdicts = Array.from({ length: MAX_ANSWERS }, (_, i) => v.add(0, held(answer(`w${i}`, [i]))));
    expect(verdicts.slice(0, -1).every((x) => x.type === 'wait')).toBe(true);
    expect(verdicts.at(-1)).toEqual({ type: 'unresolved', answers: MAX_ANSWERS });
  });

  it('a worker dropped loses its held answers (their leases returned) and its shard wants answers again', () => {
    const v = new ShardVerification(new Set([0, 1]), exact);
    v.add(0, held(answer('c', [1])));
    v.add(1, held(answer('a', [1])));
    expect(v.dropWorker('c')).toEqual(['lease-c']);
    expect(v.more(0)).toBe(2);
    expect(v.more(1)).toBe(1);
  });

  it('bit for bit at tolerance 0 (loss, correct, gradient, statistics); within the tolerance otherwise', () => {
    const a = answer('a', [1, 2, 3]);
    expect(exact(a, answer('b', [1, 2, 3]))).toBe(true);
    expect(exact(a, answer('b', [1, 2, 3 + 2 ** -22]))).toBe(false);
    expect(exact(a, answer('b', [1, 2, 3], { loss: 2.3000001 }))).toBe(false);
    expect(exact(a, answer('b', [1, 2, 3], { correct: 4 }))).toBe(false);
    expect(exact(a, answer('b', [1, 2, 3], { stats: Float32Array.of(1) }))).toBe(false);
    expect(exact(answer('a', [-0]), answer('b', [0]))).toBe(false);
    const loose = gradientsAgree(1e-3, 32);
    expect(loose(a, answer('b', [1, 2, 3.001]))).toBe(true);
    expect(loose(a, answer('b', [1, 2, 3.1]))).toBe(false);
    expect(relativeDistance(Float32Array.of(3, 4), Float32Array.of(3, 4))).toBe(0);
    expect(relativeDistance(Float32Array.of(0, 0), Float32Array.of(0, 0))).toBe(0);
    const evals = evalsAgree(0);
    expect(evals({ worker: 'a', lossSum: 10, correct: 5, count: 50 }, { worker: 'b', lossSum: 10, correct: 5, count: 50 })).toBe(true);
    expect(evals({ worker: 'a', lossSum: 10, correct: 5, count: 50 }, { worker: 'b', lossSum: 1, correct: 50, count: 50 })).toBe(false);
  });

  it('draws about the rate, from a source that differs per draw', () => {
    expect(drawVerified(100, 0).size).toBe(0);
    expect(drawVerified(100, 1).size).toBe(100);
    const n = Array.from({ length: 20 }, () => drawVerified(1000, 0.2).size);
    for (const k of n) expect(k).toBeGreaterThan(140), expect(k).toBeLessThan(260);
    expect(new Set(Array.from({ length: 5 }, () => [...drawVerified(64, 0.5)].join())).size).toBeGreaterThan(1);
  });

  it('refuses a config whose kept answers would not fit the coordinator', () => {
    const c = { ...DEFAULT_CLUSTER_CONFIG, verifyRate: 0.05 };
    expect(keptAnswersProblem(c, 4, 658_753, 0)).toBeUndefined();
    expect(keptAnswersProblem(c, 32, 658_753, 0)).toMatch(/verifyRate 0.05 keeps up to 32 answers .* over its 48 MiB budget/);
    expect(keptAnswersProblem(DEFAULT_CLUSTER_CONFIG, 32, 658_753, 0)).toBeUndefined();
  });
});

describe('suspect evaluation answers', () => {
  it('an evaluation part 6 binomial standard deviations from the reference is suspect', () => {
    // 500 images at 40 %: σ ≈ 2.2 points, so the bound is ≈ 13 points.
    expect(evalSuspect(500, 500, 0.4)).toBe(true);
    expect(evalSuspect(270, 500, 0.4)).toBe(true);
    expect(evalSuspect(240, 500, 0.4)).toBe(false);
    expect(evalSuspect(150, 500, 0.4)).toBe(false);
    expect(evalSuspect(500, 500, undefined)).toBe(false);
  });
});

describe('robustMean', () => {
  const rows = [Float32Array.of(1, 10), Float32Array.of(2, 20), Float32Array.of(3, 30), Float32Array.of(1000, -1e6)];

  it('median and trimmed mean per coordinate; one wild row of four moves neither outside the others', () => {
    expect([...robustMean(rows, 'median', 0)]).toEqual([2.5, 15]);
    expect(trimCount(4, 0.25)).toBe(1);
    expect([...robustMean(rows, 'trimmed-mean', 0.25)]).toEqual([2.5, 15]);
    expect([...robustMean(rows.slice(0, 3), 'median', 0)]).toEqual([2, 20]);
    // trim 0: the plain mean.
    expect([...robustMean(rows.slice(0, 3), 'trimmed-mean', 0)]).toEqual([2, 20]);
    expect(trimCount(2, 0.49)).toBe(0);
  });

  it('a step combined by median ignores one wild shard of three; the mean does not', () => {
    const step = (aggregation: 'mean' | 'median') => {
      const s = new StepAggregator(0, 3, 2, 0, { aggregation, trim: 0.25 });
      s.add(answer('a', [1, 1], { shard: 0 }));
      s.add(answer('b', [1, 1], { shard: 1 }));
      s.add(answer('c', [1e5, -1e5], { shard: 2 }));
      return [...s.mean().grads];
    };
    expect(step('median')).toEqual([1, 1]);
    expect(step('mean')[0]).toBeGreaterThan(30_000);
  });
});

describe('pickShard with verification', () => {
  const lease = (o: Partial<LeaseRow>): LeaseRow => ({ leaseId: 'l', kind: 'train', step: 0, shard: 0, worker: 'a', state: 'active', issuedAt: 0, deadline: 1000, ...o });

  it('a verified shard goes to a second worker while the first holds it, never to the same worker twice', () => {
    const more = (s: number) => (s === 0 ? 2 : undefined);
    expect(pickShard([lease({})], new Set(), 2, 100, 1000, 'b', more)).toEqual({ shard: 0 });
    expect(pickShard([lease({})], new Set(), 2, 100, 1000, 'a', more)).toEqual({ shard: 1 });
    // Answered by a: a never gets it again; with one more answer wanted, b does.
    expect(pickShard([lease({ state: 'done' })], new Set(), 1, 100, 1000, 'a', () => 1)).toMatchObject({ retryMs: expect.any(Number) });
    expect(pickShard([lease({ state: 'done' })], new Set(), 1, 100, 1000, 'b', () => 1)).toEqual({ shard: 0 });
    // Two leases out for the two answers: nobody else.
    expect(pickShard([lease({}), lease({ leaseId: 'm', worker: 'b' })], new Set(), 1, 100, 1000, 'c', () => 2)).toMatchObject({ retryMs: expect.any(Number) });
  });
});
