// The coordinator's pure parts, without Miniflare: the step aggregator (float64 sums, the mean the
// optimizer applies), the shard choice (backups, waits), the admission checks, the shard plan. The
// Durable Object that wires them is tested through the API in test/workers/.
import { describe, expect, it } from 'vitest';
import { answerableLease, evalProblem, frameVerdict, gradientRangeProblem, gradientShapeProblem, LOSS_CAP, nonFiniteIn } from '../../coordinator/admission';
import { LONG_POLL_MS, pickShard, type LeaseRow } from '../../coordinator/lease-scheduler';
import { EARLY_CAP, EARLY_FACTOR, EARLY_FLOOR, NormGuard, l2Norm } from '../../coordinator/norm-guard';
import { REPLAY_STEPS, ReplayGuard, replayDigest } from '../../coordinator/replay-guard';
import type { DatasetManifest } from '../../shared/data/blocks';
import { parseCifarBatch } from '../../shared/data/cifar';
import { buildTrainingGraph } from '../../shared/models/compile';
import { TEXT_DIM } from '../../shared/models/heads';
import { flatLayout, initBuffers, initParameters } from '../../shared/models/params';
import { HEAD_NAMES, PRESET_NAMES } from '../../shared/models/presets';
import { gradientDigest } from '../../shared/wire';
import { GradientEngine } from '../../workers/gradient/gradient-engine';
import { makeBatch } from '../support/cifar-fixture';
import { webOrt } from '../support/ort';
import type { Failure } from '../../coordinator/outcome';
import type { Position } from '../../coordinator/run-store';
import { ShardPlan } from '../../coordinator/shard-plan';
import { StepAggregator, type PartialSum, type ShardResult } from '../../shared/training/step-aggregator';
import { mulberry32 } from '../../shared/data/shuffle';
import { createOptimizer } from '../../shared/optim/optimizer';
import { DEFAULT_CLUSTER_CONFIG, resolveRunConfig, type Lease, type RunSpec } from '../../shared/protocol';
import { SEED_TRAIN_CONFIG } from '../../shared/training/config';
import { applyUpdate } from '../../shared/training/update';
import type { EvalSubmission, GradientSubmission } from '../../shared/wire';

const f32 = (...v: number[]) => Float32Array.from(v);
const shard = (n: number, grads: Float32Array, over: Partial<ShardResult> = {}): ShardResult => ({ shard: n, worker: `w${n}`, loss: 1, correct: 0, grads, stats: new Float32Array(0), ...over });
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [xs.slice()];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

describe('StepAggregator', () => {
  it('averages gradients, statistics and loss over the shards, sums correct, and names whose answers counted', () => {
    const agg = new StepAggregator(4, 3, 2, 1);
    agg.add(shard(0, f32(1, 2), { stats: f32(0.5), loss: 1, correct: 3, worker: 'a' }));
    agg.add(shard(2, f32(3, 4), { stats: f32(1.5), loss: 2, correct: 4, worker: '__proto__' }));
    expect(agg.complete).toBe(false);
    expect(() => agg.mean()).toThrow(/2 of 3 shards/);
    agg.add(shard(1, f32(5, 6), { stats: f32(1), loss: 3, correct: 5, worker: 'a' }));
    const mean = agg.mean();
    expect(Array.from(mean.grads)).toEqual([3, 4]);
    expect(Array.from(mean.stats)).toEqual([1]);
    expect(mean.loss).toBe(2);
    expect(mean.correct).toBe(12);
    expect({ ...mean.workers }).toEqual({ a: 2, ['__proto__']: 1 });
    expect(Object.getPrototypeOf(mean.workers)).toBe(null);
  });

  it('gives the same bits whatever order four shards arrive in (float32 sums would not)', () => {
    // Cancelling magnitudes: in float32, (1e8 + 1) − 1e8 loses the 1; the float64 sum keeps it.
    const rng = mulberry32(3);
    const n = 257;
    const grads = [0, 1, 2, 3].map((s) => Float32Array.from({ length: n }, (_, i) => (i === 0 ? [1e8, 1, -1e8, 1][s] : (rng() - 0.5) * 10 ** Math.floor(rng() * 8 - 4))));
    const means = new Set<string>();
    for (const order of permutations([0, 1, 2, 3])) {
      const agg = new StepAggregator(0, 4, n, 0);
      for (const s of order) agg.add(shard(s, grads[s]));
      means.add(bits(agg.mean().grads));
    }
    expect(means.size).toBe(1);
    const agg = new StepAggregator(0, 4, n, 0);
    for (const s of [0, 1, 2, 3]) agg.add(shard(s, grads[s]));
    expect(agg.mean().grads[0]).toBe(0.5);
  });

  it("DANN: averages the shards' domain losses and sums their domain correct counts, added one by one or in partial sums; none without them", () => {
    const direct = new StepAggregator(0, 3, 1, 0);
    direct.add(shard(0, f32(1), { domain: { loss: 0.5, correct: 40 } }));
    direct.add(shard(1, f32(1), { domain: { loss: 0.75, correct: 50 } }));
    direct.add(shard(2, f32(1), { domain: { loss: 1, correct: 60 } }));
    expect(direct.mean().domain).toEqual({ loss: 0.75, correct: 150 });
    const partial = new StepAggregator(0, 3, 1, 0);
    partial.addPartial({ shards: [{ shard: 0, worker: 'a', loss: 1, correct: 0, domain: { loss: 0.5, correct: 40 } }, { shard: 2, worker: 'a', loss: 1, correct: 0, domain: { loss: 1, correct: 60 } }], grads: Float64Array.of(2), stats: new Float64Array(0) });
    partial.add(shard(1, f32(1), { domain: { loss: 0.75, correct: 50 } }));
    expect(partial.mean().domain).toEqual({ loss: 0.75, correct: 150 });
    const plain = new StepAggregator(0, 1, 1, 0);
    plain.add(shard(0, f32(1)));
    expect('domain' in plain.mean()).toBe(false);
    const mixed = new StepAggregator(0, 2, 1, 0);
    mixed.add(shard(0, f32(1), { domain: { loss: 0.5, correct: 40 } }));
    mixed.add(shard(1, f32(1)));
    expect(() => mixed.mean()).toThrow(/1 of 2 shards carried domain figures/);
  });

  it('refuses a shard counted twice, a shard outside the step and a gradient of the wrong length', () => {
    const agg = new StepAggregator(0, 2, 2, 0);
    agg.add(shard(0, f32(1, 1)));
    expect(() => agg.add(shard(0, f32(1, 1)))).toThrow(/already counted/);
    expect(() => agg.add(shard(2, f32(1, 1)))).toThrow(/outside 0..1/);
    expect(() => agg.add(shard(1, f32(1)))).toThrow(/1 gradient/);
    expect([...agg.countedShards]).toEqual([0]);
  });

  it('gives the same bits from aggregators\' float64 partial sums, in any grouping and order, as from every shard added here', () => {
    const rng = mulberry32(5);
    const n = 257;
    const grads = [0, 1, 2, 3, 4, 5].map((s) => Float32Array.from({ length: n }, (_, i) => (i === 0 ? [1e8, 1, -1e8, 1, 3, -3][s] : (rng() - 0.5) * 10 ** Math.floor(rng() * 8 - 4))));
    const partialOf = (shards: number[]): PartialSum => {
      const sum = new Float64Array(n);
      for (const s of shards) for (let i = 0; i < n; i++) sum[i] += grads[s][i];
      return { shards: shards.map((s) => ({ shard: s, worker: `w${s}`, loss: 1, correct: 1 })), grads: sum, stats: new Float64Array(0) };
    };
    const direct = new StepAggregator(0, 6, n, 0);
    for (let s = 0; s < 6; s++) direct.add(shard(s, grads[s]));
    const expected = bits(direct.mean().grads);
    for (const groups of [[[0, 2, 4], [1, 3, 5]], [[5, 1], [0], [3, 4, 2]], [[0, 1, 2, 3, 4, 5]]]) {
      for (const order of permutations(groups.map((_, g) => g))) {
        const agg = new StepAggregator(0, 6, n, 0);
        for (const g of order) agg.addPartial(partialOf(groups[g]));
        expect(bits(agg.mean().grads), JSON.stringify(groups)).toBe(expected);
      }
    }
    const agg = new StepAggregator(0, 6, n, 0);
    agg.addPartial(partialOf([0, 2]));
    expect(() => agg.addPartial(partialOf([2, 4]))).toThrow(/shard 2 is already counted/);
    expect(() => agg.addPartial(partialOf([1, 1]))).toThrow(/shard 1 is already counted/);
    expect(() => agg.addPartial({ ...partialOf([3]), grads: new Float64Array(3) })).toThrow(/3 gradient/);
    expect([...agg.countedShards].sort()).toEqual([0, 2]);
  });

  it('feeds the update both trainers apply: SGD new = old − lr · mean, running statistics blended by bnMomentum', () => {
    const agg = new StepAggregator(0, 2, 3, 2);
    agg.add(shard(0, f32(1, 0, -2), { stats: f32(2, 4) }));
    agg.add(shard(1, f32(3, 2, 0), { stats: f32(4, 8) }));
    const mean = agg.mean();
    const params = f32(1, 1, 1);
    const buffers = f32(0, 1);
    const config = { ...SEED_TRAIN_CONFIG, optimizer: { kind: 'sgd' as const, lr: 0.5, momentum: 0, nesterov: false, weightDecay: 0 }, bnMomentum: 0.25 };
    applyUpdate({ params, buffers, optimizer: createOptimizer(config.optimizer, 3), mask: new Uint8Array(3) }, mean.grads, mean.stats, 0, config);
    expect(Array.from(params)).toEqual([0, 0.5, 1.5]);
    expect(Array.from(buffers)).toEqual([0.75, 0.75 + 0.25 * 6]);
  });
});

const lease = (over: Partial<LeaseRow>): LeaseRow => ({ leaseId: 'l', kind: 'train', step: 0, shard: 0, worker: 'w', state: 'active', issuedAt: 0, deadline: 10_000, ...over });

describe('pickShard', () => {
  const none = new Set<number>();

  it('takes the first shard that is neither counted, answered nor leased within its window', () => {
    expect(pickShard([], none, 3, 100, 1000)).toEqual({ shard: 0 });
    expect(pickShard([lease({ shard: 0 })], new Set([1]), 3, 100, 1000)).toEqual({ shard: 2 });
    expect(pickShard([lease({ shard: 0, state: 'done', deadline: 0 })], none, 2, 100, 1000)).toEqual({ shard: 1 });
  });

  it('frees the shard of an expired, refused or lapsed lease', () => {
    for (const l of [lease({ deadline: 100 }), lease({ state: 'rejected' }), lease({ state: 'expired' })]) expect(pickShard([l], none, 1, 100, 1000)).toEqual({ shard: 0 });
  });

  it('gives one backup lease for a lease kept alive past its window, and no second one', () => {
    const heartbeating = lease({ issuedAt: 0, deadline: 50_000 });
    expect(pickShard([heartbeating], none, 1, 500, 1000)).toEqual({ retryMs: 500 });
    expect(pickShard([heartbeating], none, 1, 1500, 1000)).toEqual({ shard: 0 });
    expect(pickShard([heartbeating, lease({ leaseId: 'backup', issuedAt: 1500, deadline: 2500 })], none, 1, 1600, 1000)).toEqual({ retryMs: 900 });
  });

  it('answers wait until the soonest window ends, at least 10 ms and at most the long poll', () => {
    expect(pickShard([lease({ deadline: 105 })], none, 1, 100, 1000)).toEqual({ retryMs: 10 });
    expect(pickShard([lease({ deadline: 60_000 })], none, 1, 100, 30_000)).toEqual({ retryMs: LONG_POLL_MS });
  });
});

const failureOf = (x: unknown) => x as Failure;

describe('admission checks', () => {
  const position: Position = { step: 3, phase: 'train', optimizerStep: 3 };
  const issued = lease({ leaseId: 'l1', step: 3, shard: 1, worker: 'w' });
  const head = { leaseId: 'l1', version: 3, step: 3, shard: 1 };

  it('refuses answers to finished runs, unknown, refused and other workers\' leases before reading the body', () => {
    expect(answerableLease(issued, 'l1', 'w', 'training')).toBe(issued);
    expect(failureOf(answerableLease(issued, 'l1', 'w', 'cancelled'))).toMatchObject({ status: 409, reason: 'finished' });
    expect(failureOf(answerableLease(undefined, 'l1', 'w', 'training'))).toMatchObject({ status: 409, reason: 'unknown-lease' });
    expect(failureOf(answerableLease(issued, 'l1', 'other', 'training'))).toMatchObject({ status: 403, reason: 'not-yours' });
    expect(failureOf(answerableLease({ ...issued, state: 'rejected' }, 'l1', 'w', 'training'))).toMatchObject({ status: 409, reason: 'unknown-lease' });
  });

  it('counts a frame that matches its lease and the run, answers a counted one as a duplicate, and names each mismatch', () => {
    expect(frameVerdict(issued, 'train', head, false, position)).toBeUndefined();
    expect(frameVerdict(issued, 'train', head, true, position)).toEqual({ ok: true, value: { accepted: false, reason: 'duplicate', version: 3 } });
    expect(frameVerdict({ ...issued, state: 'done' }, 'train', head, false, position)).toMatchObject({ ok: true });
    const cases: [Partial<typeof head>, string, number][] = [
      [{ leaseId: 'l2' }, 'mismatch', 400],
      [{ shard: 0 }, 'mismatch', 400],
      [{ version: 2 }, 'version', 400],
    ];
    for (const [over, reason, status] of cases) expect(frameVerdict(issued, 'train', { ...head, ...over }, false, position)).toMatchObject({ ok: false, status, reason });
    expect(frameVerdict(issued, 'eval', head, false, position)).toMatchObject({ status: 400, reason: 'kind' });
    expect(frameVerdict(issued, 'train', head, false, { ...position, step: 4 })).toMatchObject({ status: 409, reason: 'stale' });
    expect(frameVerdict(issued, 'train', head, false, { ...position, phase: 'eval' })).toMatchObject({ status: 409, reason: 'stale' });
  });

  const spec = { paramCount: 3, bufferCount: 1, config: { cluster: { ...DEFAULT_CLUSTER_CONFIG, microBatch: 32 } } } as RunSpec;
  const frame = (over: Partial<GradientSubmission> = {}): GradientSubmission => ({ ...head, count: 32, loss: 1, correct: 0, grads: f32(1, 2, 3), stats: f32(0), ...over });

  it('checks a gradient frame\'s sizes and finds what is not finite (one pass when the norm is finite)', () => {
    expect(gradientShapeProblem(frame(), spec)).toBeUndefined();
    expect(gradientShapeProblem(frame({ grads: f32(1) }), spec)).toMatchObject({ status: 400, reason: 'length' });
    expect(gradientShapeProblem(frame({ stats: f32() }), spec)).toMatchObject({ status: 400, reason: 'length' });
    expect(gradientShapeProblem(frame({ count: 31 }), spec)).toMatchObject({ status: 400, reason: 'count' });
    const check = (f: GradientSubmission) => nonFiniteIn(f, l2Norm(f.grads));
    expect(check(frame())).toBeUndefined();
    expect(check(frame({ loss: NaN }))).toBe('loss is NaN');
    expect(check(frame({ grads: f32(1, Infinity, 0) }))).toBe('gradient value 1 is Infinity');
    expect(check(frame({ stats: f32(NaN) }))).toBe('statistics value 0 is NaN');
  });

  it("wants domain figures in a DANN run's frames and none in another's, their loss within LOSS_CAP", () => {
    const specOf = (dann: boolean) => ({ ...spec, bufferCount: 0, config: { ...spec.config, train: { ...SEED_TRAIN_CONFIG, model: { ...SEED_TRAIN_CONFIG.model, dann } } } }) as RunSpec;
    const domain = { loss: 0.69, correct: 33 };
    expect(gradientRangeProblem(frame({ stats: f32(), domain }), specOf(true))).toBeUndefined();
    expect(gradientRangeProblem(frame({ stats: f32() }), specOf(false))).toBeUndefined();
    expect(gradientRangeProblem(frame({ stats: f32() }), specOf(true))).toMatchObject({ status: 400, reason: 'domain' });
    expect(gradientRangeProblem(frame({ stats: f32(), domain }), specOf(false))).toMatchObject({ status: 400, reason: 'domain' });
    expect(gradientRangeProblem(frame({ stats: f32(), domain: { loss: LOSS_CAP * 2, correct: 0 } }), specOf(true))).toMatchObject({ status: 422, reason: 'range' });
  });

  it('checks an eval answer against its shard: count, finite loss, possible values', () => {
    const answer = (over: Partial<EvalSubmission>): EvalSubmission => ({ ...head, count: 50, lossSum: 10, correct: 20, ...over });
    expect(evalProblem(answer({}), 50)).toBeUndefined();
    expect(evalProblem(answer({ count: 49 }), 50)).toMatchObject({ status: 400, reason: 'count' });
    expect(evalProblem(answer({ lossSum: Infinity }), 50)).toMatchObject({ status: 422, reason: 'non-finite' });
    expect(evalProblem(answer({ correct: 51, count: 50 }), 50)).toMatchObject({ status: 422, reason: 'range' });
    expect(evalProblem(answer({ lossSum: -1 }), 50)).toMatchObject({ status: 422, reason: 'range' });
  });
});

describe('ShardPlan', () => {
  const manifest = { train: { count: 256 }, test: { count: 120 } };
  const spec = {
    runId: 'r1',
    paramCount: 1,
    bufferCount: 0,
    dataset: manifest,
    config: { train: { ...SEED_TRAIN_CONFIG, batch: 96, evalBatch: 50, epochs: 2, schedule: { ...SEED_TRAIN_CONFIG.schedule, totalSteps: 4 } }, cluster: { ...DEFAULT_CLUSTER_CONFIG, microBatch: 32 }, dataset: 'fixture' },
  } as unknown as RunSpec;
  const plan = new ShardPlan(spec);

  it('splits a step into batch / microBatch shards and an evaluation into evalBatch shards with a short last one', () => {
    expect([plan.trainShards, plan.evalShards]).toEqual([3, 3]);
    expect([0, 1, 2].map((s) => plan.evalRange(s))).toEqual([{ domain: 'source', first: 0, count: 50 }, { domain: 'source', first: 50, count: 50 }, { domain: 'source', first: 100, count: 20 }]);
    expect([plan.examplesPerLease('train'), plan.examplesPerLease('eval')]).toEqual([32, 50]);
  });

  it('leases shard k of a step as examples [32k, 32k + 32) of the step\'s batch, and eval shards as test indices', () => {
    const whole = plan.plan.examples(1);
    const parts = [0, 1, 2].map((k) => plan.lease('train', { leaseId: 'x', step: 1, shard: k, deadline: 9, paramsTag: '0badf00d' }));
    expect(parts.flatMap((p) => p.indices)).toEqual(Array.from(whole.indices));
    expect(parts.map((p) => p.firstPosition)).toEqual([96, 128, 160]);
    expect(parts[2]).toMatchObject({ runId: 'r1', kind: 'train', step: 1, version: 1, shard: 2, split: 'train', epoch: 0, deadline: 9, paramsTag: '0badf00d' });
    const evalLease = plan.lease('eval', { leaseId: 'y', step: 2, shard: 2, deadline: 9, paramsTag: '0badf00d' });
    expect(evalLease).toMatchObject({ split: 'test', epoch: 0, firstPosition: 100 });
    expect(evalLease.indices).toEqual(Array.from({ length: 20 }, (_, i) => 100 + i));
  });

  it('counts epochs done, an evaluation still due counting its epoch as not done', () => {
    expect(plan.plan.stepsPerEpoch).toBe(2);
    expect([plan.epochsDone(2, 'eval'), plan.epochsDone(2, 'train'), plan.epochsDone(3, 'train')]).toEqual([0, 1, 1]);
    expect([plan.endsEpoch(2), plan.endsEpoch(3)]).toEqual([true, false]);
  });
});

describe('NormGuard before MIN_SAMPLES accepted norms', () => {
  it('caps at EARLY_CAP, then at EARLY_FACTOR × the median of the nonzero accepted norms (never below EARLY_FLOOR)', () => {
    const g = new NormGuard();
    expect(g.check(0, 0, 'a', 9e5)).toMatch(/cap of 10000/);
    expect(g.check(0, 0, 'b', EARLY_CAP)).toBeUndefined();
    g.accepted(0);
    expect(g.check(0, 1, 'a', EARLY_CAP)).toBeUndefined(); // zeros set no relative bound
    g.accepted(20);
    expect(g.check(0, 1, 'a', 20 * EARLY_FACTOR)).toBeUndefined();
    expect(g.check(0, 1, 'a', 20 * EARLY_FACTOR + 1)).toMatch(/100 × the median of the first accepted gradients \(20\.00\)/);
    const tiny = new NormGuard();
    tiny.accepted(1e-30);
    expect(tiny.check(0, 1, 'a', EARLY_FLOOR)).toBeUndefined();
    expect(tiny.check(0, 1, 'a', EARLY_FLOOR * 1.01)).toMatch(/norm/);
  });

  // The early cap must pass every honest first step: measured here through the real training graph
  // (onnxruntime-web), for every preset and head, over a few seeds and batches.
  it('EARLY_CAP is at least 100 × the first-step gradient norm of every preset and head', async () => {
    const ort = await webOrt();
    const captions = Float32Array.from({ length: 10 * 4 * TEXT_DIM }, (_, i) => Math.sin(i * 0.37));
    let largest = 0;
    for (const preset of PRESET_NAMES) {
      for (const head of HEAD_NAMES) {
        const config = resolveRunConfig({ model: { preset, head }, batch: 32, cluster: { microBatch: 32 } });
        const graph = buildTrainingGraph(config.train.model, 32);
        const spec = { runId: 'norms', config, dataset: {} as DatasetManifest, paramCount: flatLayout(graph.params).size, bufferCount: flatLayout(graph.buffers).size } satisfies RunSpec;
        const engine = await GradientEngine.create(ort, spec, head === 'linear' ? undefined : captions);
        try {
          for (const seed of [0, 1, 2]) {
            const lease = { kind: 'train', indices: Array.from({ length: 32 }, (_, i) => i), epoch: 0, firstPosition: 0 } as unknown as Lease;
            const data = { examples: parseCifarBatch(makeBatch(seed * 100, 32), 'norms'), captions: head === 'concat' ? captions.subarray(0, 32 * TEXT_DIM) : undefined };
            const r = await engine.train(lease, initParameters(graph.params, seed), initBuffers(graph.buffers), data);
            largest = Math.max(largest, l2Norm(r.grads));
          }
        } finally {
          await engine.release();
        }
      }
    }
    expect(largest).toBeGreaterThan(0);
    expect(EARLY_CAP / largest).toBeGreaterThanOrEqual(100);
  }, 120_000);
});

describe('ReplayGuard', () => {
  const values = (seed: number) => Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i + seed));

  it('refuses a digest accepted for another (step, shard), passes the same (step, shard), and forgets old steps', () => {
    const g = new ReplayGuard();
    const d = replayDigest(values(1));
    g.accepted(0, 0, d);
    expect(g.check(0, 0, d)).toBeUndefined();
    expect(g.check(0, 1, d)).toMatch(/equals the one accepted for step 0 shard 0/);
    expect(g.check(1, 0, d)).toMatch(/step 0 shard 0/);
    expect(g.check(0, 1, replayDigest(values(2)))).toBeUndefined();
    g.nextStep(REPLAY_STEPS - 1);
    expect(g.check(REPLAY_STEPS - 1, 1, d)).toMatch(/step 0 shard 0/);
    g.nextStep(REPLAY_STEPS);
    expect(g.check(REPLAY_STEPS, 1, d)).toBeUndefined();
  });

  it('takes constant gradients as no evidence (no digest); digests tell one changed value apart', () => {
    expect(replayDigest(new Float32Array(100))).toBeUndefined();
    expect(replayDigest(new Float32Array(100).fill(1))).toBeUndefined();
    const a = values(3);
    const b = a.slice();
    b[517] = Math.fround(b[517] + 1e-6);
    expect(gradientDigest(a)).toMatch(/^[0-9a-f]{16}$/);
    expect(gradientDigest(a)).toBe(gradientDigest(a.slice()));
    expect(gradientDigest(b)).not.toBe(gradientDigest(a));
    expect(gradientDigest(new Float32Array([0, 1]))).not.toBe(gradientDigest(new Float32Array([1, 0])));
  });
});
