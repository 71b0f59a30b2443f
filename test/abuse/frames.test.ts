// The abuse suite, frames: hostile answers posted by hand on real leases through the real API and
// coordinator (Miniflare: SQLite Durable Objects, KV, R2), each test one finding and the answer the
// run now gives. Plain SGD (lr 0.5) makes every applied update exact to check.
import { describe, expect, it } from 'vitest';
import type { LocalCoordinator } from '../../cli/cluster/local';
import type { Lease, RunRequest, RunSpec } from '../../shared/protocol';
import { decodeGradient, encodeGradient } from '../../shared/wire';
import { ApiClient } from '../../workers/gradient/client';
import { GradientEngine } from '../../workers/gradient/gradient-engine';
import { gradientFrame, leaseOrFail, mismatches, namedWorkers, refusal, statusAndReason } from '../support/hand-worker';
import { useFixtureCoordinator } from '../support/fixture-dataset';
import { webOrt } from '../support/ort';

/** 4 steps of 2 shards of 32 per epoch. */
const RUN: RunRequest = { dataset: 'fixture', trainLimit: 256, batch: 64, evalBatch: 50, epochs: 1, optimizer: { kind: 'sgd', lr: 0.5, momentum: 0 }, cluster: { microBatch: 32, leaseMs: 60_000 } };

let coordinator: LocalCoordinator;
let api: ApiClient;

useFixtureCoordinator((local) => ({ coordinator, api } = local));

const worker = namedWorkers(() => new ApiClient(coordinator.url, { token: coordinator.token }));
/** The id the coordinator minted for the test's worker `name` on run `runId`. */
const idOf = async (name: string, runId: string) => (await worker(name).identity(runId)).workerId;
const refused = async (p: Promise<unknown>) => statusAndReason(await refusal(p));

async function createRun(overrides: RunRequest = {}): Promise<{ runId: string; spec: RunSpec }> {
  const created = await api.createRun({ ...RUN, ...overrides, cluster: { ...RUN.cluster, ...overrides.cluster } });
  return { runId: created.runId, spec: await api.spec(created.runId) };
}

const paramsAt = async (runId: string, version: number) => (await api.params(runId, version)).params.slice();

/** A gradient of its own for (step, shard), small and not constant. */
const gradientOf = (step: number, shard: number) => (i: number) => Math.sin(i * 0.01 + shard * 1.7 + step) * 0.01;

/** A NaN in gradient value 7. */
const nanFrame = (l: Lease, spec: RunSpec) => gradientFrame(l, spec, (i) => (i === 7 ? Number.NaN : 1.0));

/** `client` leases the next shard, expecting (step, shard). */
async function leaseFor(client: ApiClient, runId: string, step: number, shard: number): Promise<Lease> {
  const l = await leaseOrFail(client, runId);
  expect([l.step, l.shard]).toEqual([step, shard]);
  return l;
}

/** `client` answers the next shard's lease with a gradient of its own; expects it accepted. */
async function answer(client: ApiClient, runId: string, spec: RunSpec, value: number | ((i: number) => number) = 1.0): Promise<Lease> {
  const l = await leaseOrFail(client, runId);
  expect((await client.submitGradient(l, gradientFrame(l, spec, value))).accepted).toBe(true);
  return l;
}

describe('abuse: hostile gradient frames (Miniflare: real coordinator, real API)', () => {
  it('NaN answers from one worker on three leases of a shard, or from fresh identities, do not end the run: it keeps training', async () => {
    const { runId, spec } = await createRun();
    const v0 = await paramsAt(runId, 0);
    const honest = worker('dv-honest');
    const attacker = worker('dv-attacker');
    // The attacker even has an answer accepted (shard 1): its reports still count once.
    const held = await leaseFor(honest, runId, 0, 0);
    await answer(attacker, runId, spec, 3.0);
    // Shard 0 is leased to the attacker again and again: each refusal frees it at once.
    expect(await refused(honest.submitGradient(held, gradientFrame(held, spec, 1.0, { count: 31 })))).toEqual({ status: 400, reason: 'count' });
    for (let k = 0; k < 3; k++) {
      const l = await leaseFor(attacker, runId, 0, 0);
      expect(await refused(attacker.submitGradient(l, nanFrame(l, spec)))).toEqual({ status: 422, reason: 'non-finite' });
    }
    const attackerId = await idOf('dv-attacker', runId);
    expect((await api.status(runId)).workers.find((w) => w.worker === attackerId)?.excluded).toMatch(/3 bad submissions in a row/);
    for (const id of ['dv-fresh-1', 'dv-fresh-2', 'dv-fresh-3']) {
      const l = await leaseFor(worker(id), runId, 0, 0);
      expect(await refused(worker(id).submitGradient(l, nanFrame(l, spec)))).toEqual({ status: 422, reason: 'non-finite' });
    }
    const status = await api.status(runId);
    expect(status).toMatchObject({ state: 'training', step: 0 });
    expect(status.error).toBeUndefined();
    // The honest worker completes the step.
    const l = await leaseFor(honest, runId, 0, 0);
    expect(await honest.submitGradient(l, gradientFrame(l, spec, 1.0))).toEqual({ accepted: true, version: 1 });
    expect(mismatches(await paramsAt(runId, 1), (i) => v0[i] - 0.5 * 2.0)).toEqual([]);
  });

  it('genuine divergence (three established workers report a shard non-finite) fails the run, and resume continues it from the last good parameters', async () => {
    const { runId, spec } = await createRun();
    const [w1, w2, w3] = ['gd-w1', 'gd-w2', 'gd-w3'].map(worker);
    // Steps 0 and 1: each of the three has an answer accepted.
    await answer(w1, runId, spec, 1.0);
    await answer(w2, runId, spec, 1.0);
    await answer(w3, runId, spec, 0.5);
    await answer(w1, runId, spec, 0.5);
    const v2 = await paramsAt(runId, 2);
    for (const [k, w] of [w1, w2, w3].entries()) {
      expect((await api.status(runId)).state).toBe('training');
      const l = await leaseFor(w, runId, 2, 0);
      expect(await refused(w.submitGradient(l, nanFrame(l, spec)))).toEqual({ status: 422, reason: 'non-finite' });
      if (k < 2) expect((await api.status(runId)).state).toBe('training');
    }
    const failed = await api.status(runId);
    expect(failed).toMatchObject({ state: 'failed', step: 2, version: 2 });
    expect(failed.error).toMatch(/diverged at step 3 \(shard 0: gradient value 7 is NaN, from 3 workers\)/);

    const resumed = await api.resume(runId);
    expect(resumed).toMatchObject({ state: 'training', step: 2, version: 2 });
    expect(resumed.error).toBeUndefined();
    expect(mismatches(await paramsAt(runId, 2), (i) => v2[i])).toEqual([]);
    await answer(w1, runId, spec, 1.0);
    await answer(w2, runId, spec, 3.0);
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 3, version: 3 });
    expect(mismatches(await paramsAt(runId, 3), (i) => v2[i] - 0.5 * 2.0)).toEqual([]);
  });

  it("a frame whose lease id is 1.9 MB is refused with a small 400 'lease-id'; three exclude the worker and the run's status stays small", async () => {
    const { runId, spec } = await createRun();
    const bad = worker('big-id');
    const huge = 'x'.repeat(1_900_000);
    for (let k = 0; k < 3; k++) {
      const l = await leaseFor(bad, runId, 0, 0);
      const e = await refusal(bad.submitGradient(l, gradientFrame(l, spec, 1.0, { leaseId: huge, gradLength: 1 })));
      expect(statusAndReason(e)).toEqual({ status: 400, reason: 'lease-id' });
      expect(JSON.stringify(e.body).length).toBeLessThan(400);
    }
    const res = await fetch(`${coordinator.url}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${coordinator.token}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.length).toBeLessThan(10_000);
    const badId = await idOf('big-id', runId);
    const summary = (JSON.parse(text) as { workers: { worker: string; excluded?: string }[] }).workers.find((w) => w.worker === badId);
    expect(summary?.excluded).toMatch(/3 bad submissions in a row.*lease id/);
    expect(await refused(bad.lease(runId))).toEqual({ status: 403, reason: 'excluded' });
  });

  it("a hostile first answer (norm 9e5, under the absolute cap) is refused 422 'norm' before the run has a history, and moves nothing", async () => {
    const { runId, spec } = await createRun();
    const v0 = await paramsAt(runId, 0);
    const attacker = worker('early-attacker');
    const l = await leaseFor(attacker, runId, 0, 0);
    const value = 9e5 / Math.sqrt(spec.paramCount);
    const e = await refusal(attacker.submitGradient(l, gradientFrame(l, spec, value)));
    expect(statusAndReason(e)).toEqual({ status: 422, reason: 'norm' });
    expect(e.body.error).toMatch(/cap of 10000/);
    // After one honest answer the bound is relative to it: 100 × its norm.
    const honest = worker('early-honest');
    await answer(honest, runId, spec, 1.0);
    const l2 = await leaseFor(attacker, runId, 0, 1);
    expect(await refused(attacker.submitGradient(l2, gradientFrame(l2, spec, 1.0 * 150)))).toEqual({ status: 422, reason: 'norm' });
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 0, version: 0 });
    expect(mismatches(await paramsAt(runId, 0), (i) => v0[i])).toEqual([]);
    await answer(honest, runId, spec, 3.0);
    expect(mismatches(await paramsAt(runId, 1), (i) => v0[i] - 0.5 * 2.0)).toEqual([]);
  });

  /** A model with batch norm: its frames carry batch statistics, means and variances. */
  const BN = { model: { preset: 'bn-cnn', head: 'linear' } };

  // Each with a worker of its own: three bad answers in a row would exclude one worker.
  const impossible: [string, (l: Lease, spec: RunSpec) => Uint8Array<ArrayBuffer>, RegExp][] = [
    ['correct above the shard size', (l, spec) => gradientFrame(l, spec, 1.0, { correct: 125_000_000 }), /125000000 correct predictions in a shard of 32/],
    ['a negative loss', (l, spec) => gradientFrame(l, spec, 1.0, { loss: -5 }), /loss -5 is outside/],
    ['a huge loss', (l, spec) => gradientFrame(l, spec, 1.0, { loss: 1e30 }), /loss 1e\+30 is outside/],
    ['a statistic of 3e38', (l, spec) => gradientFrame(l, spec, 1.0, { stats: Float32Array.from({ length: spec.bufferCount }, (_, i) => (i === 3 ? 3e38 : 0.5)) }), /statistics value 3 is/],
    ['a negative variance', (l, spec) => gradientFrame(l, spec, 1.0, { stats: -0.5 }), /is a variance and is -0.5/],
  ];

  it("gradient frames with impossible values (correct > count, loss < 0 or huge, statistics out of range, negative variances) are refused 422 'range' and counted against the worker", async () => {
    const { runId, spec } = await createRun(BN);
    expect(spec.bufferCount).toBeGreaterThan(0);
    const v0 = await paramsAt(runId, 0);
    for (const [name, frame, message] of impossible) {
      const w = worker(`range-${impossible.findIndex((c) => c[0] === name)}`);
      const l = await leaseFor(w, runId, 0, 0);
      const e = await refusal(w.submitGradient(l, frame(l, spec)));
      expect({ name, ...statusAndReason(e) }).toEqual({ name, status: 422, reason: 'range' });
      expect(e.body.error).toMatch(message);
    }
    const status = await api.status(runId);
    expect(status).toMatchObject({ state: 'training', step: 0, loss: null });
    const rangeIds = await Promise.all(impossible.map((_, i) => idOf(`range-${i}`, runId)));
    const ranged = status.workers.filter((x) => rangeIds.includes(x.worker));
    expect(ranged).toHaveLength(impossible.length);
    for (const w of ranged) expect(w).toMatchObject({ accepted: 0, rejected: 1 });
    expect(mismatches(await paramsAt(runId, 0), (i) => v0[i])).toEqual([]);
  });

  it("the aggregator path refuses the same impossible values with 422 'range', and a replayed gradient with 422 'replay'", async () => {
    const { runId, spec } = await createRun({ ...BN, cluster: { microBatch: 16, aggregators: 2 } });
    for (const [name, frame] of impossible) {
      const w = worker(`agg-range-${impossible.findIndex((c) => c[0] === name)}`);
      const l = await leaseFor(w, runId, 0, 0);
      expect(l.aggregator).toBe(0);
      expect({ name, ...(await refused(w.submitGradient(l, frame(l, spec)))) }).toEqual({ name, status: 422, reason: 'range' });
    }
    const w = worker('agg-replay');
    const first = await leaseFor(w, runId, 0, 0);
    const honest = gradientFrame(first, spec, gradientOf(0, 0));
    expect((await w.submitGradient(first, honest)).accepted).toBe(true);
    const other = await leaseFor(w, runId, 0, 1);
    const copied = encodeGradient({ ...decodeGradient(honest), leaseId: other.leaseId, shard: other.shard });
    expect(await refused(w.submitGradient(other, copied))).toEqual({ status: 422, reason: 'replay' });
  });

  it("an accepted frame re-wrapped for another lease (other shard or step, checksum recomputed) is refused 422 'replay', and the shard is then counted from its own answer", async () => {
    const { runId, spec } = await createRun();
    const honest = worker('rp-honest');
    const copier = worker('rp-copier');
    const a = await leaseFor(honest, runId, 0, 0);
    const stored = gradientFrame(a, spec, gradientOf(0, 0));
    expect(await honest.submitGradient(a, stored)).toEqual({ accepted: true, version: 0 });
    // Shard 1 of the same step.
    const b = await leaseFor(copier, runId, 0, 1);
    const rewrapped = encodeGradient({ ...decodeGradient(stored), leaseId: b.leaseId, shard: b.shard });
    const e = await refusal(copier.submitGradient(b, rewrapped));
    expect(statusAndReason(e)).toEqual({ status: 422, reason: 'replay' });
    expect(e.body.error).toMatch(/equals the one accepted for step 0 shard 0/);
    expect(await api.status(runId)).toMatchObject({ step: 0, version: 0 });
    const b2 = await leaseFor(honest, runId, 0, 1);
    expect(await honest.submitGradient(b2, gradientFrame(b2, spec, gradientOf(0, 1)))).toEqual({ accepted: true, version: 1 });
    // Shard 0 of the next step.
    const c = await leaseFor(copier, runId, 1, 0);
    expect(await refused(copier.submitGradient(c, encodeGradient({ ...decodeGradient(stored), leaseId: c.leaseId, step: c.step, version: c.version })))).toEqual({ status: 422, reason: 'replay' });
    // The shard, leased again, answered with its own values: counted.
    const d = await leaseFor(honest, runId, 1, 0);
    expect(await honest.submitGradient(d, gradientFrame(d, spec, gradientOf(1, 0)))).toEqual({ accepted: true, version: 1 });
    const e2 = await leaseFor(honest, runId, 1, 1);
    expect(await honest.submitGradient(e2, gradientFrame(e2, spec, gradientOf(1, 1)))).toEqual({ accepted: true, version: 2 });
    const copierId = await idOf('rp-copier', runId);
    expect((await api.status(runId)).workers.find((w) => w.worker === copierId)).toMatchObject({ accepted: 0, rejected: 2 });
  });

  it("a worker whose training graph differs from the run's (the spec's graphHash) refuses to work, naming both hashes; the run's own graph is accepted", async () => {
    const { spec } = await createRun({ model: { head: 'linear' } });
    expect(spec.graphHash).toMatch(/^[0-9a-f]{64}$/);
    const ort = await webOrt();
    const engine = await GradientEngine.create(ort, spec);
    await engine.release();
    const other = 'ab'.repeat(32);
    await expect(GradientEngine.create(ort, { ...spec, graphHash: other })).rejects.toThrow(new RegExp(`graph ${other}.*built ${spec.graphHash}.*update the worker`));
    // A spec stored before the field existed: no check.
    const { graphHash: _, ...old } = spec;
    await (await GradientEngine.create(ort, old)).release();
  });
});
