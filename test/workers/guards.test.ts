// The coordinator's fault handling, through the real Worker bundle in Miniflare (SQLite Durable
// Object, KV, R2) and the typed ApiClient, with hand-driven workers posting frames of known gradients:
// workers excluded after 3 bad answers in a row (and a good one resetting the streak), a refused
// answer freeing its shard at once, the gradient-norm guard and its second-worker override, frames of
// the wrong parameter version, the per-worker rate limit, adaptive lease deadlines and heartbeats
// capped by leaseMs, and cancel → resume. Each test checks the run afterwards (step, version,
// parameters, worker list); plain SGD (lr 0.5, no momentum) makes every expected update exact.
import { describe, expect, it } from 'vitest';
import type { LocalCoordinator } from '../../cli/cluster/local';
import type { Lease, RunRequest, RunSpec, RunStatus, WorkerSummary } from '../../shared/protocol';
import { snapshotKey } from '../../shared/storage-keys';
import { decodeCheckpoint } from '../../shared/training/checkpoint';
import { ApiClient } from '../../workers/gradient/client';
import { evalFrame, gradientFrame, leaseOrFail, mismatches, refusal, statusAndReason, waitFor, namedWorkers } from '../support/hand-worker';
import { useFixtureCoordinator } from '../support/fixture-dataset';

const DATASET = 'fixture';
/** 500 train / 100 test images; trainLimit 128 with batch 64 gives 2 steps per epoch of 2 shards each. */
const TINY: RunRequest = { dataset: DATASET, trainLimit: 128, batch: 64, evalBatch: 50, epochs: 1, cluster: { microBatch: 32, leaseMs: 60_000 } };
/** Plain SGD: new = old − lr · mean gradient, exactly (weight decay defaults to 0 for sgd). */
const SGD = { kind: 'sgd' as const, lr: 0.5, momentum: 0 };

let coordinator: LocalCoordinator;
/** The user's client (creates, polls, cancels, resumes). */
let api: ApiClient;

useFixtureCoordinator((local) => ({ coordinator, api } = local));

// ---------- helpers ----------

const worker = namedWorkers(() => new ApiClient(coordinator.url, { token: coordinator.token }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** POST /v1/runs with TINY plus `overrides` (cluster merged); returns the run id and its spec. */
async function createRun(overrides: RunRequest = {}): Promise<{ runId: string; spec: RunSpec }> {
  const created = await api.createRun({ ...TINY, ...overrides, cluster: { ...TINY.cluster, ...overrides.cluster } });
  expect(created).toMatchObject({ state: 'created', step: 0 });
  return { runId: created.runId, spec: await api.spec(created.runId) };
}

/** A gradient frame with one flipped bit in the middle: its checksum fails. */
function corruptFrame(lease: Lease, spec: RunSpec): Uint8Array<ArrayBuffer> {
  const f = gradientFrame(lease, spec, 1.0);
  f[f.length >> 1] ^= 0x40;
  return f;
}

/** A gradient frame with gradient value 7 NaN. */
const nanFrame = (lease: Lease, spec: RunSpec) => gradientFrame(lease, spec, (i) => (i === 7 ? Number.NaN : 1.0));

const refused = async (p: Promise<unknown>) => statusAndReason(await refusal(p));

/** The parameters of a version, copied out of the response. */
async function paramsAt(runId: string, version: number): Promise<Float32Array> {
  const p = await api.params(runId, version);
  expect(p.version).toBe(version);
  return p.params.slice();
}

/** `params` after one SGD step (lr 0.5) with every gradient `mean`, rounded to float32 as the coordinator does. */
const sgd = (params: Float32Array, mean: number) => Float32Array.from(params, (p) => p - 0.5 * mean);

/** The run's summary of named worker `id` (the identity it was minted there); fails when the run has none. */
async function workerOf(runId: string, id: string): Promise<WorkerSummary> {
  const minted = (await worker(id).identity(runId)).workerId;
  const w = (await api.status(runId)).workers.find((x) => x.worker === minted);
  if (!w) throw new Error(`run ${runId} lists no worker ${id}`);
  return w;
}

/** Leases the current step's shards one by one, each answered at once with gradient `value`. */
async function quickStep(runId: string, spec: RunSpec, client: ApiClient, value = 0): Promise<void> {
  const shards = spec.config.train.batch / spec.config.cluster.microBatch;
  for (let s = 0; s < shards; s++) {
    const l = await leaseOrFail(client, runId);
    expect(l.kind).toBe('train');
    expect((await client.submitGradient(l, gradientFrame(l, spec, value))).accepted).toBe(true);
  }
}

// ---------- tests ----------

describe('TrainingCoordinator fault handling (Miniflare: real DO, KV, R2)', () => {
  it('excludes a worker after 3 bad answers in a row, frees its leases, and lets another worker finish the step exactly', async () => {
    const { runId, spec } = await createRun({ optimizer: SGD });
    const v0 = await paramsAt(runId, 0);
    const bad = worker('ex-bad');
    const good = worker('ex-good');
    const l1 = await leaseOrFail(bad, runId);
    const held = await leaseOrFail(bad, runId); // kept open: exclusion must free it
    expect([l1.shard, held.shard]).toEqual([0, 1]);

    // 1: a corrupt frame. 2: a gradient of the wrong length, on a new lease of the freed shard.
    expect(await refused(bad.submitGradient(l1, corruptFrame(l1, spec)))).toEqual({ status: 400, reason: 'checksum' });
    const l2 = await leaseOrFail(bad, runId);
    expect(l2.shard).toBe(0);
    expect(await refused(bad.submitGradient(l2, gradientFrame(l2, spec, 1.0, { gradLength: spec.paramCount - 1 })))).toEqual({ status: 400, reason: 'length' });
    // A good frame on the spent lease is a 409: neither counted nor resetting the streak.
    expect(await refused(bad.submitGradient(l2, gradientFrame(l2, spec, 1.0)))).toEqual({ status: 409, reason: 'unknown-lease' });
    expect(await workerOf(runId, 'ex-bad')).toMatchObject({ accepted: 0, rejected: 3 });
    expect((await workerOf(runId, 'ex-bad')).excluded).toBeUndefined();
    // 3: a NaN gradient: the third bad answer in a row excludes the worker.
    const l3 = await leaseOrFail(bad, runId);
    expect(l3.shard).toBe(0);
    expect(await refused(bad.submitGradient(l3, nanFrame(l3, spec)))).toEqual({ status: 422, reason: 'non-finite' });

    const excluded = await workerOf(runId, 'ex-bad');
    expect(excluded).toMatchObject({ accepted: 0, rejected: 4, active: false });
    expect(excluded.excluded).toMatch(/3 bad submissions in a row/);
    const forbidden = { status: 403, reason: 'excluded' };
    expect(await refused(bad.lease(runId))).toEqual(forbidden);
    expect(await refused(bad.heartbeat(held))).toEqual(forbidden);
    expect(await refused(bad.submitGradient(held, gradientFrame(held, spec, 100.0)))).toEqual(forbidden);
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 0, version: 0, loss: null });
    expect(mismatches(await paramsAt(runId, 0), (i) => v0[i])).toEqual([]);

    // Both shards are free at once (the held lease had 60 s left): one lease request each, no waiting.
    const g0 = await good.lease(runId);
    const g1 = await good.lease(runId);
    if (g0.type !== 'lease' || g1.type !== 'lease') throw new Error(`expected two leases, got ${JSON.stringify([g0.type, g1.type])}`);
    expect([g0.lease.shard, g1.lease.shard, g1.lease.step]).toEqual([0, 1, 0]);
    expect(g1.lease.indices).toEqual(held.indices);
    expect(await good.submitGradient(g0.lease, gradientFrame(g0.lease, spec, 1.0))).toEqual({ accepted: true, version: 0 });
    expect(await good.submitGradient(g1.lease, gradientFrame(g1.lease, spec, 3.0))).toEqual({ accepted: true, version: 1 });

    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 1, version: 1 });
    expect(mismatches(await paramsAt(runId, 1), (i) => v0[i] - 0.5 * 2.0)).toEqual([]);
    expect(await workerOf(runId, 'ex-good')).toMatchObject({ accepted: 2, rejected: 0, active: true });
    expect((await workerOf(runId, 'ex-bad')).excluded).toMatch(/3 bad submissions in a row/);
  });

  it('resets the bad-answer streak on a counted answer: 2 bad, 1 good, 2 bad leaves the worker in the run', async () => {
    const { runId, spec } = await createRun({ optimizer: SGD });
    const v0 = await paramsAt(runId, 0);
    const w = worker('streak-w');
    const next = async (shard: number) => {
      const l = await leaseOrFail(w, runId);
      expect([l.shard, l.step]).toEqual([shard, 0]);
      return l;
    };

    let l = await next(0);
    expect(await refused(w.submitGradient(l, corruptFrame(l, spec)))).toEqual({ status: 400, reason: 'checksum' });
    l = await next(0);
    expect(await refused(w.submitGradient(l, gradientFrame(l, spec, 1.0, { count: 31 })))).toEqual({ status: 400, reason: 'count' });
    l = await next(0);
    expect(await w.submitGradient(l, gradientFrame(l, spec, 1.0))).toEqual({ accepted: true, version: 0 });
    l = await next(1);
    expect(await refused(w.submitGradient(l, gradientFrame(l, spec, 1.0, { gradLength: 3 })))).toEqual({ status: 400, reason: 'length' });
    l = await next(1);
    expect(await refused(w.submitGradient(l, nanFrame(l, spec)))).toEqual({ status: 422, reason: 'non-finite' });

    const summary = await workerOf(runId, 'streak-w');
    expect(summary).toMatchObject({ accepted: 1, rejected: 4, active: true });
    expect(summary.excluded).toBeUndefined();
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 0, version: 0 });
    expect(mismatches(await paramsAt(runId, 0), (i) => v0[i])).toEqual([]);

    // Still in the run: it leases the open shard again and completes the step.
    l = await next(1);
    expect(await w.submitGradient(l, gradientFrame(l, spec, 3.0))).toEqual({ accepted: true, version: 1 });
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 1, version: 1 });
    expect(mismatches(await paramsAt(runId, 1), (i) => v0[i] - 0.5 * 2.0)).toEqual([]);
    expect(await workerOf(runId, 'streak-w')).toMatchObject({ accepted: 2, rejected: 4 });
  });

  it("frees a refused answer's shard at once: a new lease for it is issued without waiting for the deadline", async () => {
    const { runId, spec } = await createRun({ optimizer: SGD });
    const v0 = await paramsAt(runId, 0);
    const [wa, wb, wc] = ['free-a', 'free-b', 'free-c'].map(worker);
    const a = await leaseOrFail(wa, runId);
    const b = await leaseOrFail(wb, runId);
    expect([a.shard, b.shard]).toEqual([0, 1]);
    expect(a.deadline - Date.now()).toBeGreaterThan(50_000);

    expect(await refused(wa.submitGradient(a, gradientFrame(a, spec, 1.0, { count: 31 })))).toEqual({ status: 400, reason: 'count' });
    // One lease request, answered at once: a held request would wait ~2 s and answer 'wait' (a's
    // deadline was a minute away).
    const t0 = Date.now();
    const reply = await wc.lease(runId);
    const took = Date.now() - t0;
    if (reply.type !== 'lease') throw new Error(`expected a lease, got ${JSON.stringify(reply)}`);
    const c = reply.lease;
    expect([c.kind, c.step, c.shard, c.version]).toEqual(['train', 0, 0, 0]);
    expect(c.leaseId).not.toBe(a.leaseId);
    expect(c.indices).toEqual(a.indices);
    expect(took).toBeLessThan(1500);
    expect(await api.status(runId)).toMatchObject({ step: 0, version: 0, loss: null });

    // The new lease answers; the refused one is spent (409) and changes nothing.
    expect(await wc.submitGradient(c, gradientFrame(c, spec, 1.0))).toEqual({ accepted: true, version: 0 });
    expect(await refused(wa.submitGradient(a, gradientFrame(a, spec, 100.0)))).toEqual({ status: 409, reason: 'unknown-lease' });
    expect(await wb.submitGradient(b, gradientFrame(b, spec, 3.0))).toEqual({ accepted: true, version: 1 });
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 1, version: 1 });
    expect(mismatches(await paramsAt(runId, 1), (i) => v0[i] - 0.5 * 2.0)).toEqual([]);
    expect(await workerOf(runId, 'free-a')).toMatchObject({ accepted: 0, rejected: 2 });
  });

  it("refuses a gradient whose norm is absurd next to recent ones with 422 'norm', unless a second worker reports the same norm", async () => {
    // 8 steps per epoch: 4 steps of 2 shards give the guard its 8 accepted norms.
    const { runId, spec } = await createRun({ optimizer: SGD, trainLimit: 512 });
    const warm = worker('norm-warm');
    for (let s = 0; s < 4; s++) await quickStep(runId, spec, warm, 1.0);
    expect(await api.status(runId)).toMatchObject({ step: 4, version: 4 });
    const v4 = await paramsAt(runId, 4);

    const [w1, w2, w3] = ['norm-w1', 'norm-w2', 'norm-w3'].map(worker);
    const a = await leaseOrFail(w1, runId);
    const b = await leaseOrFail(w2, runId);
    expect([a.shard, b.shard, a.step]).toEqual([0, 1, 4]);
    expect(await w2.submitGradient(b, gradientFrame(b, spec, 1.0))).toEqual({ accepted: true, version: 4 });
    // Every value 1e4: a norm 1e4 × the median (sqrt(paramCount)), far above 1000 ×.
    const spike = await refusal(w1.submitGradient(a, gradientFrame(a, spec, 1e4)));
    expect(statusAndReason(spike)).toEqual({ status: 422, reason: 'norm' });
    expect(spike.body.error).toMatch(/norm/);
    // The same worker again, on a new lease: still refused (only a different worker corroborates).
    const a2 = await leaseOrFail(w1, runId);
    expect([a2.shard, a2.step]).toEqual([0, 4]);
    expect(await refused(w1.submitGradient(a2, gradientFrame(a2, spec, 1e4)))).toEqual({ status: 422, reason: 'norm' });
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 4, version: 4 });
    expect(mismatches(await paramsAt(runId, 4), (i) => v4[i])).toEqual([]);

    // A second worker reporting the same norm for this step and shard: counted.
    const a3 = await leaseOrFail(w3, runId);
    expect([a3.shard, a3.step]).toEqual([0, 4]);
    expect(await w3.submitGradient(a3, gradientFrame(a3, spec, 1e4))).toEqual({ accepted: true, version: 5 });
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 5, version: 5 });
    expect(mismatches(await paramsAt(runId, 5), (i) => v4[i] - 0.5 * ((1e4 + 1) / 2))).toEqual([]);
    const w1Summary = await workerOf(runId, 'norm-w1');
    expect(w1Summary).toMatchObject({ accepted: 0, rejected: 2 });
    expect(w1Summary.excluded).toBeUndefined();
    expect(await workerOf(runId, 'norm-w3')).toMatchObject({ accepted: 1, rejected: 0 });
  });

  it("refuses a frame whose version is not its lease's with 400 'version', applying nothing", async () => {
    const { runId, spec } = await createRun({ optimizer: SGD, trainLimit: 256 });
    await quickStep(runId, spec, worker('ver-warm'), 1.0);
    const before = await api.status(runId);
    expect(before).toMatchObject({ step: 1, version: 1 });
    const v1 = await paramsAt(runId, 1);
    const w = worker('ver-w');

    const a = await leaseOrFail(w, runId);
    expect([a.step, a.version, a.shard]).toEqual([1, 1, 0]);
    const behind = await refusal(w.submitGradient(a, gradientFrame(a, spec, 50.0, { version: 0 })));
    expect(statusAndReason(behind)).toEqual({ status: 400, reason: 'version' });
    expect(behind.body.error).toMatch(/version 0.*version 1/);
    const a2 = await leaseOrFail(w, runId);
    expect(a2.shard).toBe(0);
    expect(await refused(w.submitGradient(a2, gradientFrame(a2, spec, 50.0, { version: 2 })))).toEqual({ status: 400, reason: 'version' });
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 1, version: 1, loss: before.loss });
    expect(mismatches(await paramsAt(runId, 1), (i) => v1[i])).toEqual([]);
    expect(await workerOf(runId, 'ver-w')).toMatchObject({ accepted: 0, rejected: 2 });

    // The right version on new leases: the step applies once, without the refused 50s.
    const c = await leaseOrFail(w, runId);
    const d = await leaseOrFail(w, runId);
    expect([c.shard, d.shard]).toEqual([0, 1]);
    expect(await w.submitGradient(c, gradientFrame(c, spec, 1.0))).toEqual({ accepted: true, version: 1 });
    expect(await w.submitGradient(d, gradientFrame(d, spec, 3.0))).toEqual({ accepted: true, version: 2 });
    expect(await api.status(runId)).toMatchObject({ step: 2, version: 2 });
    expect(mismatches(await paramsAt(runId, 2), (i) => v1[i] - 0.5 * 2.0)).toEqual([]);
  });

  it("rate-limits one worker id with 429 'rate-limited' and retry-after, changing nothing and leaving other workers alone", async () => {
    const { runId } = await createRun({ optimizer: SGD });
    const v0 = await paramsAt(runId, 0);
    const hog = worker('rl-hog');
    const lease = await leaseOrFail(hog, runId);
    const before = await api.status(runId);
    const { credential } = await hog.identity(runId);

    const heartbeat = () =>
      fetch(`${coordinator.url}/v1/runs/${runId}/leases/${lease.leaseId}/heartbeat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${credential}`, 'x-lease-token': lease.token },
      }).then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), contentType: r.headers.get('content-type'), body: (await r.json()) as { reason?: string; error?: string } }));
    const answers = await Promise.all(Array.from({ length: 300 }, heartbeat));
    const limited = answers.filter((r) => r.status === 429);
    const passed = answers.filter((r) => r.status === 200);
    expect(limited.length + passed.length).toBe(answers.length);
    expect(limited.length).toBeGreaterThan(0);
    expect(passed.length).toBeGreaterThanOrEqual(119); // the burst of 120, less the lease request
    for (const r of limited) {
      expect(r.body).toMatchObject({ reason: 'rate-limited' });
      expect(r.body.error).toMatch(/rate limit/);
      expect(r.contentType).toMatch(/application\/json/);
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
    }

    // Nothing changed, the hog is neither excluded nor charged a refusal, and another worker id is unaffected.
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: before.step, version: before.version, loss: null });
    expect(mismatches(await paramsAt(runId, 0), (i) => v0[i])).toEqual([]);
    const hogSummary = await workerOf(runId, 'rl-hog');
    expect(hogSummary).toMatchObject({ accepted: 0, rejected: 0 });
    expect(hogSummary.excluded).toBeUndefined();
    const other = worker('rl-other');
    const o = await leaseOrFail(other, runId);
    expect([o.shard, o.step]).toEqual([1, 0]);
    expect((await other.heartbeat(o)).deadline).toBeGreaterThanOrEqual(o.deadline);

    // After the retry-after the hog's bucket has refilled: its lease is still alive.
    await sleep(Number(limited[0].retryAfter) * 1000 + 100);
    expect((await hog.heartbeat(lease)).deadline).toBeGreaterThanOrEqual(lease.deadline);
  });

  it('adapts lease deadlines to recent answer times, and heartbeats never move a deadline past issue + leaseMs', async () => {
    // leaseMs 60 s: the first leases get all of it; after 5 quick answers a lease gets a few seconds.
    const { runId, spec } = await createRun({ trainLimit: 512 });
    const w = worker('ad-w');
    // Node's and workerd's clocks are read at slightly different moments: `slack` ms either way.
    const slack = 20;
    let t0 = Date.now();
    const first = await leaseOrFail(w, runId);
    expect(first.deadline - t0).toBeGreaterThanOrEqual(60_000 - slack);
    await w.submitGradient(first, gradientFrame(first, spec, 0));
    const l1 = await leaseOrFail(w, runId);
    await w.submitGradient(l1, gradientFrame(l1, spec, 0));
    for (let s = 0; s < 2; s++) await quickStep(runId, spec, w); // 6 answers in all
    expect(await api.status(runId)).toMatchObject({ step: 3, version: 3 });

    t0 = Date.now();
    const adapted = await leaseOrFail(w, runId);
    let t1 = Date.now();
    expect(adapted.deadline - t0).toBeGreaterThanOrEqual(1000 - slack);
    expect(adapted.deadline - t1).toBeLessThanOrEqual(5000);
    const hb = await w.heartbeat(adapted);
    expect(hb.deadline).toBeGreaterThanOrEqual(adapted.deadline);
    expect(hb.deadline - Date.now()).toBeLessThanOrEqual(5000);

    // leaseMs 3 s: heartbeats extend a lease by the adapted window, but never past issue + 3 s.
    const capped = await createRun({ trainLimit: 512, cluster: { leaseMs: 3000 } });
    const c = worker('cap-w');
    for (let s = 0; s < 3; s++) await quickStep(capped.runId, capped.spec, c);
    t0 = Date.now();
    const l = await leaseOrFail(c, capped.runId);
    t1 = Date.now();
    expect(l.deadline - t0).toBeGreaterThanOrEqual(1000 - slack);
    expect(l.deadline).toBeLessThanOrEqual(t1 + 3000 + slack);
    const deadlines = [l.deadline];
    while (Date.now() < t0 + 2600) {
      await sleep(200);
      deadlines.push((await c.heartbeat(l)).deadline);
    }
    for (let i = 1; i < deadlines.length; i++) expect(deadlines[i]).toBeGreaterThanOrEqual(deadlines[i - 1]); // never shortened
    expect(Math.max(...deadlines)).toBeLessThanOrEqual(t1 + 3000 + slack);
    expect(deadlines.at(-1)).toBeGreaterThanOrEqual(t0 + 3000 - slack); // extended up to the cap, issue + leaseMs
    // Past the cap the lease has expired, heartbeats or not.
    await sleep(Math.max(0, (deadlines.at(-1) ?? 0) - Date.now()) + 300);
    expect(await refused(c.heartbeat(l))).toEqual({ status: 409, reason: 'unknown-lease' });
    expect(await api.status(capped.runId)).toMatchObject({ state: 'training', step: 3, version: 3 });
  });

  it('cancels with commitEvery 5 after one step, snapshots that step, resumes from it with the same parameters and trains to completion', async () => {
    // 4 steps, one epoch; with commitEvery 5 nothing is committed before the epoch ends.
    const { runId, spec } = await createRun({ optimizer: SGD, trainLimit: 256, cluster: { commitEvery: 5 } });
    expect(spec.config.cluster).toMatchObject({ commitEvery: 5 });
    const w = worker('res-w');
    const v0 = await paramsAt(runId, 0);
    const step = async (values: [number, number]) => {
      const a = await leaseOrFail(w, runId);
      const b = await leaseOrFail(w, runId);
      expect((await w.submitGradient(a, gradientFrame(a, spec, values[0]))).accepted).toBe(true);
      expect((await w.submitGradient(b, gradientFrame(b, spec, values[1]))).accepted).toBe(true);
    };
    expect(await refused(api.resume(runId))).toEqual({ status: 409, reason: 'not-cancelled' });

    await step([1.0, 3.0]);
    const v1 = await paramsAt(runId, 1);
    expect(mismatches(v1, (i) => v0[i] - 0.5 * 2.0)).toEqual([]);
    const open = await leaseOrFail(w, runId);
    const cancelled = await api.cancel(runId);
    expect(cancelled).toMatchObject({ state: 'cancelled', step: 1, version: 1, phase: 'train' });
    expect(await w.lease(runId)).toEqual({ type: 'done', state: 'cancelled' });
    expect(await refused(w.submitGradient(open, gradientFrame(open, spec, 1.0)))).toEqual({ status: 409, reason: 'finished' });

    const key = snapshotKey(runId, 1);
    const bucket = await coordinator.mf.getR2Bucket('DATA');
    await waitFor(async () => (await bucket.list({ prefix: `runs/${runId}/checkpoints/` })).objects.map((o) => o.key), (keys) => keys.includes(key), 5000, `snapshot ${key}`);
    const object = await bucket.get(key);
    if (!object) throw new Error(`no R2 object ${key}`);
    const ck = decodeCheckpoint(new Uint8Array(await object.arrayBuffer()), key);
    expect([ck.step, ck.epoch]).toEqual([1, 0]);
    expect(mismatches(ck.params, (i) => v1[i])).toEqual([]);

    // Resume: training again at the same step, with the same parameters.
    const resumed = await api.resume(runId);
    expect(resumed).toMatchObject({ state: 'training', step: 1, version: 1, phase: 'train' });
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 1, version: 1 });
    expect(mismatches(await paramsAt(runId, 1), (i) => v1[i])).toEqual([]);
    expect(await refused(api.resume(runId))).toEqual({ status: 409, reason: 'not-cancelled' });

    // Training continues to completion: three more steps (mean gradients 1.0, 0.5, 0) and the evaluation.
    await step([0.5, 1.5]);
    await step([0.25, 0.75]);
    await step([0, 0]);
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 4, phase: 'eval' });
    const expected = sgd(sgd(sgd(v1, 1.0), 0.5), 0);
    expect(mismatches(await paramsAt(runId, 4), (i) => expected[i])).toEqual([]);
    for (let k = 0; k < 2; k++) {
      const e = await leaseOrFail(w, runId);
      expect(e.kind).toBe('eval');
      expect((await w.submitEval(e, evalFrame(e, 2 * e.indices.length, 10))).accepted).toBe(true);
    }
    const done: RunStatus = await api.status(runId);
    expect(done).toMatchObject({ state: 'completed', step: 4, epoch: 1, testLoss: 2, testAccuracy: 0.2 });
    expect((await api.metrics(runId)).steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(await refused(api.resume(runId))).toEqual({ status: 409, reason: 'not-cancelled' });
    expect(await api.status(runId)).toMatchObject({ state: 'completed', step: 4 });

    // A run cancelled before any step resumes as 'created'.
    const fresh = await createRun();
    await leaseOrFail(worker('res-fresh'), fresh.runId);
    expect(await api.cancel(fresh.runId)).toMatchObject({ state: 'cancelled', step: 0 });
    expect(await api.resume(fresh.runId)).toMatchObject({ state: 'created', step: 0, version: 0 });
  });

  it('keeps leases out across the coordinator object being evicted while idle; a counted shard is recomputed, once', async () => {
    const { runId, spec } = await createRun({ optimizer: SGD });
    const v0 = await paramsAt(runId, 0);
    const [w1, w2] = [worker('evict-w1'), worker('evict-w2')];
    const a = await leaseOrFail(w1, runId);
    const b = await leaseOrFail(w2, runId);
    expect(await w1.submitGradient(a, gradientFrame(a, spec, 1.0))).toEqual({ accepted: true, version: 0 });
    // No request reaches the object for longer than workerd keeps an idle Durable Object (~10 s):
    // it is evicted, and the next request constructs it again from SQLite.
    await sleep(12_000);
    // w2's lease, out while the object was gone, is still good; the half-summed step was in memory
    // only, so shard 0 (counted before) is leased again and recomputed rather than lost.
    expect((await w2.heartbeat(b)).deadline).toBeGreaterThan(Date.now());
    expect(await w2.submitGradient(b, gradientFrame(b, spec, 3.0))).toEqual({ accepted: true, version: 0 });
    const again = await leaseOrFail(w1, runId);
    expect([again.step, again.shard]).toEqual([0, 0]);
    expect(await w1.submitGradient(again, gradientFrame(again, spec, 1.0))).toEqual({ accepted: true, version: 1 });
    const v1 = sgd(v0, 2.0);
    expect(mismatches(await paramsAt(runId, 1), (i) => v1[i])).toEqual([]);
  }, 60_000);
});
