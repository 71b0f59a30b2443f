// Hierarchical aggregation (coordinator/aggregator.ts) through the real Worker bundle in Miniflare:
// answers go to the run's aggregator Durable Objects (shard s → aggregator s % G), which forward one
// float64 partial per step; the run ends with the very parameters of a run without aggregators.
// Answers to the wrong aggregator, or past the aggregators, are refused; duplicates count once; and a
// group whose aggregator lost its sum (evicted while idle) is leased again and the step completes.
import { describe, expect, it } from 'vitest';
import type { LocalCoordinator } from '../../cli/cluster/local';
import type { Lease, RunRequest, RunSpec } from '../../shared/protocol';
import { ApiClient } from '../../workers/gradient/client';
import { gradientFrame, leaseOrFail, refusal, statusAndReason, namedWorkers } from '../support/hand-worker';
import { useFixtureCoordinator } from '../support/fixture-dataset';

const DATASET = 'fixture';
/** Four shards of 16 per step; plain SGD, so every update is exact to check. */
const RUN: RunRequest = { dataset: DATASET, trainLimit: 256, batch: 64, evalBatch: 50, epochs: 1, optimizer: { kind: 'sgd', lr: 0.5, momentum: 0 }, cluster: { microBatch: 16, leaseMs: 60_000 } };

let coordinator: LocalCoordinator;
let api: ApiClient;

useFixtureCoordinator((local) => ({ coordinator, api } = local));

const worker = namedWorkers(() => new ApiClient(coordinator.url, { token: coordinator.token }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
/** Shard s of step k: a gradient of its own, so a shard summed twice or lost changes the result. */
const gradientOf = (k: number, s: number) => (i: number) => Math.sin(i * 0.01 + s * 1.7 + k) * 0.01;

async function leaseAll(runId: string, count: number): Promise<Lease[]> {
  const leases: Lease[] = [];
  for (let s = 0; s < count; s++) leases.push(await leaseOrFail(worker(`agg-w${s}`), runId));
  return leases;
}

const answer = (l: Lease, spec: RunSpec) => worker(`agg-w${l.shard}`).submitGradient(l, gradientFrame(l, spec, gradientOf(l.step, l.shard)));

async function trainSteps(runId: string, steps: number): Promise<RunSpec> {
  const spec = await api.spec(runId);
  for (let k = 0; k < steps; k++) {
    const leases = await leaseAll(runId, 4);
    for (const l of leases) await answer(l, spec);
  }
  return spec;
}

describe('hierarchical aggregation (Miniflare: real DOs)', () => {
  it('sums shards in aggregators (shard s → s mod G) and ends with the parameters of a run without them, bit for bit', async () => {
    const grouped = (await api.createRun({ ...RUN, cluster: { ...RUN.cluster, aggregators: 2 } })).runId;
    const direct = (await api.createRun(RUN)).runId;
    const first = await leaseAll(grouped, 4);
    expect(first.map((l) => [l.shard, l.aggregator])).toEqual([[0, 0], [1, 1], [2, 0], [3, 1]]);
    const spec = await api.spec(grouped);
    for (const l of first) await answer(l, spec);
    await trainSteps(grouped, 2);
    await trainSteps(direct, 3);
    const [a, b] = await Promise.all([api.params(grouped, 3), api.params(direct, 3)]);
    expect(bits(a.params)).toBe(bits(b.params));
    const steps = (await api.metrics(grouped)).steps;
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(steps.every((s) => Object.keys(s.workers ?? {}).length === 4)).toBe(true);
    await Promise.all([api.cancel(grouped), api.cancel(direct)]);
  });

  it('refuses an answer sent to another aggregator, past the aggregators or straight to the coordinator; a duplicate counts once', async () => {
    const { runId } = await api.createRun({ ...RUN, cluster: { ...RUN.cluster, aggregators: 2 } });
    const spec = await api.spec(runId);
    const [l0, l1, l2, l3] = await leaseAll(runId, 4);
    // Each refusal spends its lease (shard 0 is leased again at once); a different worker each time,
    // since three bad answers in a row exclude a worker.
    const misrouted = async (id: string, route: Partial<Lease>) => {
      const l = id === 'agg-w0' ? l0 : await leaseOrFail(worker(id), runId);
      expect(l.shard).toBe(0);
      return statusAndReason(await refusal(worker(id).submitGradient({ ...l, ...route }, gradientFrame(l, spec, gradientOf(0, 0)))));
    };
    expect(await misrouted('agg-w0', { aggregator: 1 })).toEqual({ status: 400, reason: 'aggregator' });
    expect(await misrouted('agg-x1', { aggregator: 7 })).toEqual({ status: 400, reason: 'aggregator' });
    expect(await misrouted('agg-x2', { aggregator: undefined })).toEqual({ status: 400, reason: 'aggregator' });
    const last0 = await leaseOrFail(worker('agg-w0'), runId);
    expect(await answer(last0, spec)).toEqual({ accepted: true, version: 0 });
    expect(await answer(last0, spec)).toEqual({ accepted: false, reason: 'duplicate', version: 0 });
    for (const l of [l1, l2]) expect(await answer(l, spec)).toEqual({ accepted: true, version: 0 });
    expect(await answer(l3, spec)).toEqual({ accepted: true, version: 1 });
    expect((await api.metrics(runId)).steps).toHaveLength(1);
    await api.cancel(runId);
  });

  it('leases a group again when its aggregator lost the sum (evicted while idle), and the step completes with the right update', async () => {
    const lost = (await api.createRun({ ...RUN, cluster: { ...RUN.cluster, aggregators: 2 } })).runId;
    const spec = await api.spec(lost);
    const [l0, l1, l2, l3] = await leaseAll(lost, 4);
    expect(await answer(l0, spec)).toEqual({ accepted: true, version: 0 });
    // Aggregator 0 holds shard 0's answer in memory. Nothing reaches it for longer than workerd keeps
    // an idle object (~10 s) while the coordinator stays busy answering status requests: it is evicted.
    const until = Date.now() + 12_000;
    while (Date.now() < until) {
      await api.status(lost);
      await sleep(500);
    }
    for (const l of [l1, l2, l3]) expect(await answer(l, spec)).toEqual({ accepted: true, version: 0 });
    // Group 1 is summed; group 0's new aggregator has shard 2 only, and shard 0 is gone with the old one.
    // After REOPEN_AFTER_MS the coordinator leases shards 0 and 2 again.
    const again = [await leaseOrFail(worker('agg-w0'), lost, 15_000), await leaseOrFail(worker('agg-w2'), lost, 15_000)];
    expect(again.map((l) => l.shard).sort()).toEqual([0, 2]);
    const replies = [];
    for (const l of again) replies.push(await worker(`agg-w${l.shard}`).submitGradient(l, gradientFrame(l, spec, gradientOf(0, l.shard))));
    expect(replies.at(-1)).toEqual({ accepted: true, version: 1 });
    // The same step trained with no faults and no aggregators.
    const direct = (await api.createRun(RUN)).runId;
    await trainSteps(direct, 1);
    const [a, b] = await Promise.all([api.params(lost, 1), api.params(direct, 1)]);
    expect(bits(a.params)).toBe(bits(b.params));
    await Promise.all([api.cancel(lost), api.cancel(direct)]);
  }, 60_000);
});
