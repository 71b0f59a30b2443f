// The TrainingCoordinator through the real Worker bundle in Miniflare (SQLite Durable Object, KV, R2),
// driven over HTTP with the typed ApiClient. Most tests act as hand-driven gradient workers: they take
// leases and post frames with known gradients, so every applied update, duplicate and rejection can be
// checked exactly; every call carries the API token, and lease calls the lease's token. A refused
// answer spends its lease, so a retry takes a new one. Only the queue fan-out test runs ORT: a real
// workerd gradient worker fed by a real queue. The fault-handling guards (worker exclusion, norm
// guard, rate limit, adaptive deadlines, resume) are in guards.test.ts. The second describe pins guards added after review: non-finite results refused and, when one
// shard keeps diverging, the run failed; finished runs, answered eval shards, the run index, unknown
// config fields, future parameter versions and repeated dataset preparation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset, type PrepareReport } from '../../cli/prepare';
import { buildDatasetBlocks } from '../../shared/data/blocks';
import { assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { FINAL_STATES, type Lease, type RunRequest, type RunSpec, type RunStatus, type RunSummary, type SubmitReply } from '../../shared/protocol';
import { leaseToken, signingKey } from '../../shared/auth';
import { runIndexKey, snapshotKey } from '../../shared/storage-keys';
import { decodeCheckpoint } from '../../shared/training/checkpoint';
import { ApiClient, type Fetch } from '../../workers/gradient/client';
import { fixtureFiles } from '../support/cifar-fixture';
import { evalFrame, gradientFrame, leaseOrFail, mismatches, refusal, statusAndReason, waitFor, type FrameOptions, namedWorkers } from '../support/hand-worker';

const DATASET = 'fixture';
/** 500 train / 100 test images; trainLimit 128 with batch 64 gives 2 steps per epoch of 2 shards each. */
const TINY: RunRequest = { dataset: DATASET, trainLimit: 128, batch: 64, evalBatch: 50, epochs: 1, cluster: { microBatch: 32, leaseMs: 1000 } };
/** Plain SGD: new = old − lr · mean gradient, exactly (weight decay defaults to 0 for sgd). */
const SGD = { kind: 'sgd' as const, lr: 0.5, momentum: 0 };

let coordinator: LocalCoordinator;
/** The user's client (creates, polls, cancels). */
let api: ApiClient;
/** The fixture data set and the report of its first preparation (into empty storage). */
let cifar: Cifar10;
let prepared: PrepareReport;

beforeAll(async () => {
  coordinator = await startCoordinator();
  api = new ApiClient(coordinator.url, { token: coordinator.token });
  cifar = assembleCifar10(fixtureFiles(100), 'fixture');
  prepared = await prepareDataset(api, cifar, DATASET, 128);
});

afterAll(async () => {
  await coordinator?.dispose();
});

// ---------- helpers ----------

const worker = namedWorkers(() => new ApiClient(coordinator.url, { token: coordinator.token }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** POST /v1/runs with TINY plus `overrides` (cluster merged); asserts 201 and returns status and spec. */
async function createRun(overrides: RunRequest = {}): Promise<{ runId: string; status: RunStatus; spec: RunSpec }> {
  const body: RunRequest = { ...TINY, ...overrides, cluster: { ...TINY.cluster, ...overrides.cluster } };
  const res = await fetch(`${coordinator.url}/v1/runs`, { method: 'POST', headers: { authorization: `Bearer ${coordinator.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as RunStatus;
  expect(res.status, JSON.stringify(json)).toBe(201);
  return { runId: json.runId, status: json, spec: await api.spec(json.runId) };
}

/** Parameters and buffers of a version, copied out of the response. */
async function paramsAt(runId: string, version: number): Promise<{ params: Float32Array; buffers: Float32Array }> {
  const p = await api.params(runId, version);
  expect(p.version).toBe(version);
  return { params: p.params.slice(), buffers: p.buffers.slice() };
}

async function checkpointKeys(runId: string): Promise<string[]> {
  const bucket = await coordinator.mf.getR2Bucket('DATA');
  return (await bucket.list({ prefix: `runs/${runId}/checkpoints/` })).objects.map((o) => o.key);
}

async function readCheckpoint(key: string) {
  const bucket = await coordinator.mf.getR2Bucket('DATA');
  const object = await bucket.get(key);
  if (!object) throw new Error(`no R2 object ${key}`);
  return decodeCheckpoint(new Uint8Array(await object.arrayBuffer()), key);
}

async function kvSummary(runId: string): Promise<RunSummary | null> {
  const kv = await coordinator.mf.getKVNamespace('KV');
  return (await kv.get(runIndexKey(runId), 'json')) as RunSummary | null;
}

/** Leases every train shard of the current step (one worker each) and submits `value` gradients: one step. */
async function trainStep(runId: string, spec: RunSpec, value = 0, o: FrameOptions = {}): Promise<SubmitReply[]> {
  const shards = spec.config.train.batch / spec.config.cluster.microBatch;
  const leases: Lease[] = [];
  for (let s = 0; s < shards; s++) leases.push(await leaseOrFail(worker(`step-w${s}`), runId));
  expect(leases.map((l) => l.kind)).toEqual(leases.map(() => 'train'));
  const replies: SubmitReply[] = [];
  for (const l of leases) replies.push(await worker(`step-w${l.shard}`).submitGradient(l, gradientFrame(l, spec, value, o)));
  return replies;
}

/** Leases and answers every eval shard of the current evaluation. */
async function evalRound(runId: string, spec: RunSpec, lossPerImage = 2, correctPerShard = 5): Promise<void> {
  const shards = Math.ceil(spec.dataset.test.count / spec.config.train.evalBatch);
  const leases: Lease[] = [];
  for (let s = 0; s < shards; s++) leases.push(await leaseOrFail(worker(`eval-w${s}`), runId));
  for (const l of leases) {
    expect(l.kind).toBe('eval');
    await worker(`eval-w${l.shard}`).submitEval(l, evalFrame(l, lossPerImage * l.indices.length, correctPerShard));
  }
}

// ---------- tests ----------

describe('TrainingCoordinator over the HTTP API (Miniflare: real DO, KV, R2)', () => {
  it('runs a run through its lifecycle: created → training → steps → eval → completed, with snapshot, index and model', async () => {
    const { runId, status, spec } = await createRun();
    expect(status).toMatchObject({ state: 'created', step: 0, totalSteps: 2, epoch: 0, epochs: 1, version: 0, phase: 'train', loss: null, activeWorkers: 0 });
    expect(await kvSummary(runId)).toMatchObject({ runId, state: 'created', preset: 'seed-cnn' });
    const p0 = await paramsAt(runId, 0);
    expect(p0.params.length).toBe(spec.paramCount);

    // Step 0: the first lease starts training; both shards of the global batch are leased.
    const w1 = worker('w1');
    const w2 = worker('w2');
    const a = await leaseOrFail(w1, runId);
    expect((await api.status(runId)).state).toBe('training');
    const b = await leaseOrFail(w2, runId);
    expect([a, b].map((l) => [l.kind, l.split, l.step, l.version, l.shard, l.epoch, l.indices.length])).toEqual([
      ['train', 'train', 0, 0, 0, 0, 32],
      ['train', 'train', 0, 0, 1, 0, 32],
    ]);
    expect(b.leaseId).not.toBe(a.leaseId);
    expect(await w1.submitGradient(a, gradientFrame(a, spec, 0, { loss: 2.0, correct: 8 }))).toEqual({ accepted: true, version: 0 });
    expect((await api.status(runId)).step).toBe(0); // half a batch applies nothing
    expect(await w2.submitGradient(b, gradientFrame(b, spec, 0, { loss: 2.5, correct: 12 }))).toEqual({ accepted: true, version: 1 });

    let s = await api.status(runId);
    expect(s).toMatchObject({ state: 'training', step: 1, version: 1, phase: 'train', loss: 2.25, trainAccuracy: 20 / 64 });
    expect((await paramsAt(runId, 1)).params.length).toBe(spec.paramCount);
    const gone = await refusal(api.params(runId, 0));
    expect(statusAndReason(gone)).toEqual({ status: 410, reason: 'stale' });

    // Step 1 (the epoch's last): its indices complete a permutation of the 128 training images used.
    const c = await leaseOrFail(w1, runId);
    const d = await leaseOrFail(w2, runId);
    expect([c.step, d.step, c.version, d.version]).toEqual([1, 1, 1, 1]);
    expect(new Set([...a.indices, ...b.indices, ...c.indices, ...d.indices])).toEqual(new Set(Array.from({ length: 128 }, (_, i) => i)));
    await w1.submitGradient(c, gradientFrame(c, spec, 0, { loss: 1.0, correct: 16 }));
    await w2.submitGradient(d, gradientFrame(d, spec, 0, { loss: 3.0, correct: 16 }));
    s = await api.status(runId);
    expect(s).toMatchObject({ state: 'training', step: 2, version: 2, phase: 'eval', epoch: 0, loss: 2.0, trainAccuracy: 0.5 });

    // Evaluation at the epoch end: two eval shards of the test split.
    const e0 = await leaseOrFail(w1, runId);
    const e1 = await leaseOrFail(w2, runId);
    expect([e0, e1].map((l) => [l.kind, l.split, l.step, l.version, l.shard, l.epoch])).toEqual([
      ['eval', 'test', 2, 2, 0, 0],
      ['eval', 'test', 2, 2, 1, 0],
    ]);
    expect(e0.indices).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(e1.indices).toEqual(Array.from({ length: 50 }, (_, i) => 50 + i));
    expect(await w1.submitEval(e0, evalFrame(e0, 100, 10))).toEqual({ accepted: true, version: 2 });
    expect((await api.status(runId)).state).toBe('training');
    expect(await w2.submitEval(e1, evalFrame(e1, 50, 30))).toEqual({ accepted: true, version: 2 });

    s = await api.status(runId);
    expect(s).toMatchObject({ state: 'completed', step: 2, totalSteps: 2, epoch: 1, phase: 'train', testLoss: 1.5, testAccuracy: 0.4, activeWorkers: 0, etaSeconds: 0, imagesPerSecond: null });
    expect(await w1.lease(runId)).toEqual({ type: 'done', state: 'completed' });

    const m = await api.metrics(runId);
    expect(m.steps.map((x) => [x.step, x.epoch, x.loss, x.accuracy, x.images])).toEqual([
      [1, 0, 2.25, 20 / 64, 64],
      [2, 0, 2.0, 0.5, 64],
    ]);
    expect(m.evals.map((x) => [x.epoch, x.step, x.loss, x.accuracy])).toEqual([[1, 2, 1.5, 0.4]]);
    expect((await api.metrics(runId, 1)).steps.map((x) => x.step)).toEqual([2]);

    // The final snapshot in R2 holds the final parameters and the epoch's history.
    const key = snapshotKey(runId, 2);
    expect(key.startsWith(`runs/${runId}/checkpoints/`)).toBe(true);
    await waitFor(() => checkpointKeys(runId), (keys) => keys.includes(key), 5000, `snapshot ${key}`);
    const ck = await readCheckpoint(key);
    expect([ck.step, ck.epoch, ck.history.length, ck.history[0]?.testAccuracy]).toEqual([2, 1, 1, 0.4]);
    const p2 = await paramsAt(runId, 2);
    expect(mismatches(ck.params, (i) => p2.params[i])).toEqual([]);

    // The KV index lists the run, and the trained model is served.
    const listed = (await api.listRuns()).runs.find((r) => r.runId === runId);
    expect(listed).toMatchObject({ runId, state: 'completed' });
    const model = await api.model(runId);
    expect(model.byteLength).toBeGreaterThan(spec.paramCount * 4);
    expect(model[0]).toBe(0x08); // ONNX ModelProto field 1 (ir_version), varint
  });

  it('applies the mean gradient exactly: SGD new = old − lr · mean, and batch-norm statistics averaged', async () => {
    // res-cnn has batch-norm buffers, so the running-statistics update is checked too.
    const { runId, spec } = await createRun({ model: { preset: 'res-cnn' }, optimizer: SGD, trainLimit: 256 });
    expect(spec.config.train.optimizer).toMatchObject({ kind: 'sgd', lr: 0.5, momentum: 0, weightDecay: 0 });
    expect(spec.config.train.schedule).toMatchObject({ warmupSteps: 0, decay: 'constant' });
    expect(spec.bufferCount).toBeGreaterThan(0);
    const momentum = spec.config.train.bnMomentum;
    const v0 = await paramsAt(runId, 0);

    // Step 0: shard 0 all 1.0, shard 1 all 3.0 → mean 2.0; stats 1.0 / 3.0 → mean 2.0.
    const a = await leaseOrFail(worker('w1'), runId);
    const b = await leaseOrFail(worker('w2'), runId);
    await worker('w1').submitGradient(a, gradientFrame(a, spec, 1.0, { stats: 1.0 }));
    await worker('w2').submitGradient(b, gradientFrame(b, spec, 3.0, { stats: 3.0 }));
    const v1 = await paramsAt(runId, 1);
    expect(mismatches(v1.params, (i) => v0.params[i] - 0.5 * 2.0)).toEqual([]);
    for (let k = 0; k < spec.bufferCount; k++) expect(v1.buffers[k]).toBeCloseTo((1 - momentum) * v0.buffers[k] + momentum * 2.0, 6);

    // Step 1: per-index gradients (catches misaligned sums): mean = ((i % 8) / 2 + 1) / 2.
    const c = await leaseOrFail(worker('w1'), runId);
    const d = await leaseOrFail(worker('w2'), runId);
    await worker('w2').submitGradient(d, gradientFrame(d, spec, 1.0));
    await worker('w1').submitGradient(c, gradientFrame(c, spec, (i) => (i % 8) / 2));
    const v2 = await paramsAt(runId, 2);
    expect(mismatches(v2.params, (i) => v1.params[i] - 0.5 * (((i % 8) / 2 + 1) / 2))).toEqual([]);
    expect((await api.metrics(runId)).steps.map((x) => x.step)).toEqual([1, 2]);
  });

  it('re-issues an expired lease to another worker and counts each shard once, whichever lease answers', async () => {
    const { runId, spec } = await createRun({ optimizer: SGD, cluster: { leaseMs: 300 } });
    const slow = worker('slow');
    const fast = worker('fast');
    const v0 = await paramsAt(runId, 0);

    // The slow worker holds both shards; the fast one's request long-polls until the first expires.
    const s0 = await leaseOrFail(slow, runId);
    const s1 = await leaseOrFail(slow, runId);
    const t0 = Date.now();
    const f0 = await leaseOrFail(fast, runId);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(f0).toMatchObject({ step: 0, shard: 0, version: 0 });
    expect(f0.leaseId).not.toBe(s0.leaseId);
    expect(f0.indices).toEqual(s0.indices);
    // Once the alarm has swept them, the expired leases can no longer be extended; the live one can.
    await sleep(100);
    expect(statusAndReason(await refusal(slow.heartbeat(s1)))).toEqual({ status: 409, reason: 'unknown-lease' });
    expect((await fast.heartbeat(f0)).deadline).toBeGreaterThanOrEqual(f0.deadline);

    // The slow worker answers late while the shard is still open: counted. The re-issued lease's
    // answer for the same shard is then a duplicate (its 100s must not reach the parameters).
    expect(await slow.submitGradient(s0, gradientFrame(s0, spec, 1.0))).toEqual({ accepted: true, version: 0 });
    expect(await fast.submitGradient(f0, gradientFrame(f0, spec, 100.0))).toEqual({ accepted: false, reason: 'duplicate', version: 0 });
    expect(await slow.submitGradient(s1, gradientFrame(s1, spec, 3.0))).toEqual({ accepted: true, version: 1 });
    const v1 = await paramsAt(runId, 1);
    expect(mismatches(v1.params, (i) => v0.params[i] - 0.5 * 2.0)).toEqual([]);
    expect((await api.metrics(runId)).steps.map((x) => x.step)).toEqual([1]);

    // Step 1: this time the re-issued lease answers first and the step commits; the expired lease's
    // late answer is then for a step that is gone: stale, and nothing changes.
    const late = await leaseOrFail(slow, runId);
    await sleep(350);
    const r0 = await leaseOrFail(fast, runId);
    const r1 = await leaseOrFail(fast, runId);
    expect([late.shard, r0.shard, r1.shard, r0.step]).toEqual([0, 0, 1, 1]);
    await fast.submitGradient(r0, gradientFrame(r0, spec, 2.0));
    await fast.submitGradient(r1, gradientFrame(r1, spec, 4.0));
    const stale = await refusal(slow.submitGradient(late, gradientFrame(late, spec, 100.0)));
    expect(statusAndReason(stale)).toEqual({ status: 409, reason: 'stale' });
    const v2 = await paramsAt(runId, 2);
    expect(mismatches(v2.params, (i) => v1.params[i] - 0.5 * 3.0)).toEqual([]);
    expect((await api.metrics(runId)).steps.map((x) => x.step)).toEqual([1, 2]);
    expect(await api.status(runId)).toMatchObject({ step: 2, phase: 'eval', state: 'training' });
  });

  it('answers a repeated submission as a duplicate (HTTP 200) and applies the parameters once', async () => {
    const { runId, spec } = await createRun({ optimizer: SGD });
    const v0 = await paramsAt(runId, 0);
    const w = worker('w');
    const a = await leaseOrFail(w, runId);
    const b = await leaseOrFail(w, runId);
    const fa = gradientFrame(a, spec, 1.0, { loss: 2.0 });
    const fb = gradientFrame(b, spec, 3.0, { loss: 4.0 });
    const { credential } = await w.identity(runId);

    const post = (lease: Lease, frame: Uint8Array<ArrayBuffer>) =>
      fetch(`${coordinator.url}/v1/runs/${runId}/leases/${lease.leaseId}/gradient`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'x-lease-token': lease.token }, body: frame });
    expect(await w.submitGradient(a, fa)).toEqual({ accepted: true, version: 0 });
    const again = await post(a, fa);
    expect([again.status, await again.json()]).toEqual([200, { accepted: false, reason: 'duplicate', version: 0 }]);
    expect(await w.submitGradient(b, fb)).toEqual({ accepted: true, version: 1 });
    // The frame that completed the step, repeated after the commit (its reply was lost, say).
    expect(await w.submitGradient(b, fb)).toEqual({ accepted: false, reason: 'duplicate', version: 1 });

    const v1 = await paramsAt(runId, 1);
    expect(mismatches(v1.params, (i) => v0.params[i] - 0.5 * 2.0)).toEqual([]);
    const m = await api.metrics(runId);
    expect(m.steps.map((x) => [x.step, x.loss])).toEqual([[1, 3.0]]);
    expect(await api.status(runId)).toMatchObject({ step: 1, version: 1 });
  });

  it('rejects stale submissions with 409 and carries on', async () => {
    const { runId, spec } = await createRun({ optimizer: SGD, trainLimit: 256 });
    const w = worker('w');
    await trainStep(runId, spec, 1.0);
    const v1 = await paramsAt(runId, 1);
    const before = await api.status(runId);

    // A frame claiming another parameter version than its lease's was not computed for it: bad data
    // (400 'version'), not stale; nothing is counted and the lease is spent.
    const a = await leaseOrFail(w, runId);
    const wrong = await refusal(w.submitGradient(a, gradientFrame(a, spec, 50.0, { version: 0 })));
    expect(statusAndReason(wrong)).toEqual({ status: 400, reason: 'version' });
    expect(wrong.body.error).toMatch(/version 0.*version 1/);
    expect(await api.status(runId)).toMatchObject({ step: before.step, version: before.version, loss: before.loss });
    expect(mismatches((await paramsAt(runId, 1)).params, (i) => v1.params[i])).toEqual([]);

    // The run continues: the refused lease answers 409, a new lease for the shard answers with the
    // right version, and the step applies once.
    const a2 = await leaseOrFail(w, runId);
    const b = await leaseOrFail(w, runId);
    expect([a2.shard, b.shard, a2.step]).toEqual([0, 1, 1]);
    expect(statusAndReason(await refusal(w.submitGradient(a, gradientFrame(a, spec, 1.0))))).toEqual({ status: 409, reason: 'unknown-lease' });
    expect(await w.submitGradient(a2, gradientFrame(a2, spec, 1.0))).toEqual({ accepted: true, version: 1 });
    expect(await w.submitGradient(b, gradientFrame(b, spec, 3.0))).toEqual({ accepted: true, version: 2 });
    const v2 = await paramsAt(runId, 2);
    expect(mismatches(v2.params, (i) => v1.params[i] - 0.5 * 2.0)).toEqual([]);

    // A lease of a step the run has moved past: its (otherwise good) answer is stale (409), nothing changes.
    const late = await leaseOrFail(w, runId);
    const other = worker('w-other');
    const r1 = await leaseOrFail(other, runId);
    const r0 = await leaseOrFail(other, runId); // long-polls until `late` expires
    expect([late.shard, late.step, r1.shard, r0.shard, r0.step]).toEqual([0, 2, 1, 0, 2]);
    await other.submitGradient(r0, gradientFrame(r0, spec, 0));
    await other.submitGradient(r1, gradientFrame(r1, spec, 0));
    const stale = await refusal(w.submitGradient(late, gradientFrame(late, spec, 50.0)));
    expect(statusAndReason(stale)).toEqual({ status: 409, reason: 'stale' });
    expect(stale.body.error).toMatch(/version 2.*version 3/);
    expect(await api.status(runId)).toMatchObject({ step: 3, version: 3, state: 'training' });
    expect(mismatches((await paramsAt(runId, 3)).params, (i) => v2.params[i])).toEqual([]);

    // Two steps on, the step-1 lease is forgotten: its frame is refused as an unknown lease (409).
    const forgotten = await refusal(w.submitGradient(a2, gradientFrame(a2, spec, 1.0)));
    expect(statusAndReason(forgotten)).toEqual({ status: 409, reason: 'unknown-lease' });
    expect(await api.status(runId)).toMatchObject({ step: 3, state: 'training' });
    // Four refusals recorded, but the 409s are no bad data: the worker is not excluded.
    const mine = (await w.identity(runId)).workerId;
    const me = (await api.status(runId)).workers.find((x) => x.worker === mine);
    expect([me?.accepted, me?.rejected, me?.excluded]).toEqual([2, 4, undefined]);
  });

  it('rejects invalid run configs with 400 and one issue per bad field, creating nothing', async () => {
    const runsBefore = (await api.listRuns()).runs.length;
    const issuesOf = async (request: unknown) => {
      const e = await refusal(api.createRun(request as RunRequest));
      expect(statusAndReason(e)).toEqual({ status: 400, reason: 'config' });
      return e.body.issues ?? [];
    };

    const preset = await issuesOf({ ...TINY, model: { preset: 'vgg' } });
    expect(preset.map((i) => i.path)).toEqual(['model.preset']);
    expect(preset[0].message).toContain('seed-cnn');
    expect(preset[0].message).toContain('res-cnn');

    const unknown = await issuesOf({ ...TINY, colour: 'red' });
    expect(unknown).toEqual([{ path: 'colour', message: "unknown field 'colour'" }]);

    // Every schema problem is reported at once.
    const several = await issuesOf({ ...TINY, model: { preset: 'vgg' }, epochs: 0, cluster: { microBatch: 32, leaseMs: 5 } });
    expect(several.map((i) => i.path).sort()).toEqual(['cluster.leaseMs', 'epochs', 'model.preset']);

    const microBatch = await issuesOf({ ...TINY, batch: 64, cluster: { microBatch: 24 } });
    expect(microBatch.map((i) => i.path)).toEqual(['cluster.microBatch']);
    expect(microBatch[0].message).toMatch(/24.*64/);

    const lr = await issuesOf({ ...TINY, optimizer: { kind: 'sgd', lr: -1 } });
    expect(lr.map((i) => i.path)).toEqual(['optimizer.lr']);

    const kind = await issuesOf({ ...TINY, optimizer: { kind: 'lion' } });
    expect(kind.map((i) => i.path)).toEqual(['optimizer.kind']);
    expect(kind[0].message).toMatch(/sgd.*adam.*adamw/);

    // Cross-field and optimizer problems together.
    const both = await issuesOf({ ...TINY, batch: 64, cluster: { microBatch: 24 }, optimizer: { kind: 'sgd', lr: -1 } });
    expect(both.map((i) => i.path).sort()).toEqual(['cluster.microBatch', 'optimizer.lr']);

    const dataset = await refusal(api.createRun({ ...TINY, dataset: 'imagenet' }));
    expect(statusAndReason(dataset)).toEqual({ status: 400, reason: 'dataset' });
    expect(dataset.body.error).toMatch(/imagenet.*prepare/);
    expect(dataset.body.issues?.map((i) => i.path)).toEqual(['dataset']);

    const tooSmall = await refusal(api.createRun({ ...TINY, trainLimit: 32, batch: 64 }));
    expect(tooSmall.status).toBe(400);
    expect(tooSmall.body.error).toMatch(/smaller than one batch/);

    expect((await api.listRuns()).runs.length).toBe(runsBefore);
  });

  // A refused answer spends its lease (the shard is leased again at once) and counts against its
  // worker, three in a row excluding it: each refusal below comes from a worker of its own.
  it('rejects malformed frames, mismatched leases and unknown runs without changing the run', async () => {
    const { runId, spec } = await createRun({ optimizer: SGD, cluster: { leaseMs: 60_000 } });
    const v0 = await paramsAt(runId, 0);
    let n = 0;
    /** A fresh worker and its lease (a refused lease's shard is free again at once). */
    const fresh = async () => {
      const client = worker(`mal-w${n++}`);
      return { client, lease: await leaseOrFail(client, runId) };
    };
    /** The run exactly as it was: step 0, nothing counted, parameters untouched. */
    const unchanged = async () => {
      expect(await api.status(runId)).toMatchObject({ state: 'training', step: 0, version: 0, loss: null });
      expect(mismatches((await paramsAt(runId, 0)).params, (i) => v0.params[i])).toEqual([]);
    };
    const refused = async (p: Promise<unknown>) => {
      const e = await refusal(p);
      await unchanged();
      return statusAndReason(e);
    };
    /** `frame(lease)` submitted by a fresh worker on a fresh lease. */
    const submit = async (frame: (lease: Lease) => Uint8Array<ArrayBuffer>) => {
      const { client, lease } = await fresh();
      return refused(client.submitGradient(lease, frame(lease)));
    };

    expect(await submit((a) => gradientFrame(a, spec, 1.0, { gradLength: spec.paramCount - 1 }))).toEqual({ status: 400, reason: 'length' });
    expect(await submit((a) => gradientFrame(a, spec, 1.0, { stats: new Float32Array(spec.bufferCount + 3) }))).toEqual({ status: 400, reason: 'length' });
    expect(await submit((a) => gradientFrame(a, spec, 1.0, { count: 31 }))).toEqual({ status: 400, reason: 'count' });
    expect(await submit((a) => gradientFrame(a, spec, 1.0, { loss: Number.NaN }))).toEqual({ status: 422, reason: 'non-finite' });
    const corrupt = (a: Lease) => {
      const f = gradientFrame(a, spec, 1.0);
      f[f.length >> 1] ^= 0x40;
      return f;
    };
    expect(await submit(corrupt)).toEqual({ status: 400, reason: 'checksum' });
    expect(await submit((a) => gradientFrame(a, spec, 1.0).slice(0, 10))).toEqual({ status: 400, reason: 'truncated' });
    expect(await submit((a) => evalFrame(a, 1, 1))).toEqual({ status: 400, reason: 'magic' });
    // A's frame posted to B's lease, and a frame naming the wrong shard for its lease.
    const { client: w, lease: a } = await fresh();
    const b = await leaseOrFail(w, runId);
    expect([a.shard, b.shard]).toEqual([0, 1]);
    expect(await refused(w.submitGradient(b, gradientFrame(a, spec, 1.0)))).toEqual({ status: 400, reason: 'mismatch' });
    expect(await refused(w.submitGradient(a, gradientFrame(a, spec, 1.0, { shard: 1 })))).toEqual({ status: 400, reason: 'mismatch' });
    // A lease id the coordinator never issued: with a lease token of another lease the API refuses it
    // (403); with a token signed for it (as only the API can) the coordinator does not know it (409).
    // A lease id that is no UUID is refused before either.
    const ghost = { ...a, leaseId: '00000000-0000-4000-8000-000000000000' };
    expect(await refused(w.submitGradient(ghost, gradientFrame(ghost, spec, 1.0)))).toEqual({ status: 403, reason: 'forbidden' });
    const signed = { ...ghost, token: await leaseToken(await signingKey(coordinator.token), runId, ghost.leaseId, w.workerId!, { expiresAt: Date.now() + 60_000, maxBytes: 1 << 24 }) };
    expect(await refused(w.submitGradient(signed, gradientFrame(signed, spec, 1.0)))).toEqual({ status: 409, reason: 'unknown-lease' });
    const notUuid = { ...a, leaseId: 'not-a-lease' };
    expect(await refused(w.submitGradient(notUuid, gradientFrame(notUuid, spec, 1.0)))).toEqual({ status: 400, reason: 'lease-id' });
    // An eval frame for a train lease.
    const { client: k, lease: t } = await fresh();
    expect(await refused(k.submitEval(t, evalFrame(t, 1, 1)))).toEqual({ status: 400, reason: 'kind' });

    // Unknown and malformed run ids; a malformed parameter version; a malformed lease request.
    expect(await refused(api.status('r-no-such-run'))).toEqual({ status: 404, reason: 'unknown-run' });
    expect(await refused(w.lease('r-no-such-run'))).toEqual({ status: 404, reason: 'unknown-run' });
    expect(await refused(api.status('Not_A_Run'))).toEqual({ status: 400, reason: 'run-id' });
    expect(await refused(api.params(runId, -1))).toEqual({ status: 400, reason: 'version' });
    const badLeaseBody = await fetch(`${coordinator.url}/v1/runs/${runId}/leases`, { method: 'POST', headers: { authorization: `Bearer ${(await worker('bad-body').identity(runId)).credential}`, 'content-type': 'application/json' }, body: '{"who":"x"}' });
    expect([badLeaseBody.status, ((await badLeaseBody.json()) as { reason: string }).reason]).toEqual([400, 'body']);

    // Nothing was counted and no worker excluded: new leases answer and the step applies exactly once.
    await unchanged();
    expect((await api.status(runId)).workers.filter((x) => x.excluded !== undefined)).toEqual([]);
    const [c, d] = [await fresh(), await fresh()];
    expect([c.lease.shard, d.lease.shard]).toEqual([0, 1]);
    expect(await c.client.submitGradient(c.lease, gradientFrame(c.lease, spec, 1.0))).toEqual({ accepted: true, version: 0 });
    expect(await d.client.submitGradient(d.lease, gradientFrame(d.lease, spec, 3.0))).toEqual({ accepted: true, version: 1 });
    expect(mismatches((await paramsAt(runId, 1)).params, (i) => v0.params[i] - 0.5 * 2.0)).toEqual([]);
  });

  it('reports status fields that evolve sensibly while polling', async () => {
    // 4 steps per epoch, one epoch.
    const { runId, spec, status: created } = await createRun({ trainLimit: 256, cluster: { leaseMs: 5000 } });
    expect(created).toMatchObject({ step: 0, totalSteps: 4, epoch: 0, loss: null, imagesPerSecond: null, activeWorkers: 0, etaSeconds: null });
    const w1 = worker('poll-w1');
    const w2 = worker('poll-w2');
    const w3 = worker('poll-w3');
    const seen: RunStatus[] = [];

    const step = async (leasers: [ApiClient, ApiClient], losses: [number, number]) => {
      const l0 = await leaseOrFail(leasers[0], runId);
      const l1 = await leaseOrFail(leasers[1], runId);
      await leasers[0].submitGradient(l0, gradientFrame(l0, spec, 0, { loss: losses[0], correct: 16 }));
      await leasers[1].submitGradient(l1, gradientFrame(l1, spec, 0, { loss: losses[1], correct: 8 }));
      const s = await api.status(runId);
      seen.push(s);
      await sleep(200); // distinct commit times, so throughput is measurable; long enough that a loaded machine's jitter does not reorder the ETAs
      return s;
    };

    await leaseOrFail(w1, runId).then((l) => w1.submitGradient(l, gradientFrame(l, spec, 0, { loss: 3.0, correct: 16 })));
    expect((await api.status(runId)).activeWorkers).toBe(1);
    await leaseOrFail(w2, runId).then((l) => w2.submitGradient(l, gradientFrame(l, spec, 0, { loss: 2.0, correct: 8 })));
    const first = await api.status(runId);
    seen.push(first);
    expect(first).toMatchObject({ step: 1, totalSteps: 4, epoch: 0, loss: 2.5, trainAccuracy: 24 / 64, activeWorkers: 2, imagesPerSecond: null, etaSeconds: null });
    await sleep(200);

    const second = await step([w1, w2], [2.0, 1.8]);
    expect(second).toMatchObject({ step: 2, totalSteps: 4, epoch: 0, loss: 1.9, activeWorkers: 2 });
    expect(second.imagesPerSecond).toBeGreaterThan(0);
    expect(second.etaSeconds).toBeGreaterThan(0);
    // Throughput and ETA follow the step metrics' commit times.
    const m = await api.metrics(runId);
    const seconds = (m.steps[1].at - m.steps[0].at) / 1000;
    expect(second.imagesPerSecond).toBeCloseTo(64 / seconds, 6);
    expect(second.etaSeconds).toBeCloseTo(2 * seconds, 6);

    const third = await step([w1, w3], [1.5, 1.5]); // a third worker joins
    expect(third).toMatchObject({ step: 3, epoch: 0, loss: 1.5, activeWorkers: 3 });
    const fourth = await step([w2, w3], [1.0, 1.2]);
    expect(fourth).toMatchObject({ step: 4, phase: 'eval', epoch: 0, loss: 1.1, activeWorkers: 3, state: 'training' });

    expect(seen.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(seen.every((s) => s.totalSteps === 4 && s.epochs === 1)).toBe(true);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i].updatedAt).toBeGreaterThanOrEqual(seen[i - 1].updatedAt);
      expect(seen[i].etaSeconds).toBeLessThan(seen[i - 1].etaSeconds ?? Infinity);
    }
    expect(seen[3].etaSeconds).toBe(0);

    await evalRound(runId, spec, 2, 10);
    const done = await api.status(runId);
    expect(done).toMatchObject({ state: 'completed', step: 4, epoch: 1, testLoss: 2, testAccuracy: 0.2, activeWorkers: 0, etaSeconds: 0, imagesPerSecond: null });
  });

  it('long-polls a lease request until the next step frees its shards, and answers wait after ~2 s', async () => {
    const { runId, spec } = await createRun({ trainLimit: 256, cluster: { leaseMs: 10_000 } });
    const [w1, w2, w3] = ['lp-w1', 'lp-w2', 'lp-w3'].map(worker);
    const a = await leaseOrFail(w1, runId);
    const b = await leaseOrFail(w2, runId);
    const pending = w3.lease(runId); // both shards are out: this request is held
    await sleep(100);
    await w1.submitGradient(a, gradientFrame(a, spec, 0));
    await w2.submitGradient(b, gradientFrame(b, spec, 0));
    const t0 = Date.now();
    const reply = await pending;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(reply).toMatchObject({ type: 'lease', lease: { step: 1, shard: 0, version: 1 } });

    await leaseOrFail(w1, runId); // shard 1: nothing left to hand out for 10 s
    const t1 = Date.now();
    const idle = await w2.lease(runId);
    const held = Date.now() - t1;
    expect(idle.type).toBe('wait');
    expect(held).toBeGreaterThanOrEqual(1900);
    expect(held).toBeLessThan(4000);
  });

  it('trains several epochs: an evaluation and a snapshot at every epoch end, a fresh order per epoch, uneven eval shards', async () => {
    const { runId, spec } = await createRun({ epochs: 2, evalBatch: 30, cluster: { snapshotEvery: 3 } });
    expect(spec.config.cluster).toMatchObject({ snapshotEvery: 3, commitEvery: 1 });
    const order = async () => {
      const leases = [await leaseOrFail(worker('e-w0'), runId), await leaseOrFail(worker('e-w1'), runId)];
      for (const l of leases) await worker(`e-w${l.shard}`).submitGradient(l, gradientFrame(l, spec, 0));
      return leases.flatMap((l) => l.indices);
    };
    const epoch0 = [...(await order()), ...(await order())];
    await evalRound(runId, spec, 1, 3);
    expect(await api.status(runId)).toMatchObject({ state: 'training', step: 2, epoch: 1, phase: 'train', testLoss: 1, testAccuracy: 0.12 });

    const epoch1 = [...(await order()), ...(await order())];
    const all = Array.from({ length: 128 }, (_, i) => i);
    expect([...epoch0].sort((x, y) => x - y)).toEqual(all);
    expect([...epoch1].sort((x, y) => x - y)).toEqual(all);
    expect(epoch1).not.toEqual(epoch0);

    // 100 test images in shards of 30: 30, 30, 30, 10; a wrong count for the short one is refused.
    const evals: Lease[] = [];
    for (let k = 0; k < 4; k++) evals.push(await leaseOrFail(worker(`ev${k}`), runId));
    expect(evals.map((l) => [l.shard, l.indices.length, l.indices[0], l.epoch])).toEqual([
      [0, 30, 0, 1],
      [1, 30, 30, 1],
      [2, 30, 60, 1],
      [3, 10, 90, 1],
    ]);
    const short = evals[3];
    expect(statusAndReason(await refusal(worker('ev3').submitEval(short, evalFrame(short, 30, 1, 30))))).toEqual({ status: 400, reason: 'count' });
    // The refused lease is spent; its shard is leased again at once.
    const again = await leaseOrFail(worker('ev3'), runId);
    expect([again.shard, again.indices.length, again.indices[0]]).toEqual([3, 10, 90]);
    evals[3] = again;
    for (const l of evals) await worker(`ev${l.shard}`).submitEval(l, evalFrame(l, 0.5 * l.indices.length, l.shard));
    expect(await api.status(runId)).toMatchObject({ state: 'completed', step: 4, epoch: 2, testLoss: 0.5, testAccuracy: 0.06 });

    const m = await api.metrics(runId);
    expect(m.steps.map((x) => [x.step, x.epoch])).toEqual([[1, 0], [2, 0], [3, 1], [4, 1]]);
    expect(m.evals.map((x) => [x.epoch, x.step, x.loss])).toEqual([[1, 2, 1], [2, 4, 0.5]]);

    // Snapshots: each epoch end (steps 2 and 4) and every 3 steps (step 3).
    const keys = [2, 3, 4].map((step) => snapshotKey(runId, step));
    await waitFor(() => checkpointKeys(runId), (got) => keys.every((k) => got.includes(k)), 5000, 'three snapshots');
    expect((await checkpointKeys(runId)).sort()).toEqual(keys);
    const last = await readCheckpoint(keys[2]);
    expect([last.step, last.epoch, last.history.map((h) => [h.epoch, h.testLoss])]).toEqual([4, 2, [[1, 1], [2, 0.5]]]);
    const mid = await readCheckpoint(keys[1]);
    expect([mid.step, mid.epoch, mid.history.length]).toEqual([3, 1, 1]);
  });

  it('cancels a run: final state, leases done, submissions refused, snapshot written; idempotent', async () => {
    const { runId, spec } = await createRun({ trainLimit: 256 });
    await trainStep(runId, spec, 0);
    const v1 = await paramsAt(runId, 1);
    const w = worker('w');
    const open = await leaseOrFail(w, runId);

    const cancelled = await api.cancel(runId);
    expect(cancelled).toMatchObject({ state: 'cancelled', step: 1, activeWorkers: 0, etaSeconds: 0 });
    expect(await w.lease(runId)).toEqual({ type: 'done', state: 'cancelled' });
    const refused = await refusal(w.submitGradient(open, gradientFrame(open, spec, 1.0)));
    expect(statusAndReason(refused)).toEqual({ status: 409, reason: 'finished' });
    expect(await api.status(runId)).toMatchObject({ state: 'cancelled', step: 1 });

    const key = snapshotKey(runId, 1);
    await waitFor(() => checkpointKeys(runId), (keys) => keys.includes(key), 5000, `snapshot ${key}`);
    const ck = await readCheckpoint(key);
    expect([ck.step, ck.epoch]).toEqual([1, 0]);
    expect(mismatches(ck.params, (i) => v1.params[i])).toEqual([]);
    expect(await kvSummary(runId)).toMatchObject({ state: 'cancelled' });
    // Only the worker list moved: the refused submission is recorded against its worker.
    const settled = await api.status(runId);
    expect(settled).toEqual({ ...cancelled, workers: settled.workers });
    const mine = (await w.identity(runId)).workerId;
    expect(settled.workers.find((x) => x.worker === mine)).toMatchObject({ accepted: 0, rejected: 1 });

    // Again: same answer, nothing rewritten.
    const again = await api.cancel(runId);
    expect(again).toEqual(settled);
    expect(await checkpointKeys(runId)).toEqual([key]);

    // A completed run stays completed when cancelled.
    const tiny = await createRun();
    await trainStep(tiny.runId, tiny.spec);
    await trainStep(tiny.runId, tiny.spec);
    await evalRound(tiny.runId, tiny.spec);
    expect((await api.cancel(tiny.runId)).state).toBe('completed');
    expect(statusAndReason(await refusal(api.cancel('r-no-such-run')))).toEqual({ status: 404, reason: 'unknown-run' });
  });

  it(
    'trains a tiny run with a real gradient worker fanned out through the queue (ORT in workerd)',
    async () => {
      const { runId } = await createRun({ cluster: { leaseMs: 30_000 } });
      const gradientWorker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
      try {
        await gradientWorker.start(runId, await api.workerToken(runId));
        const final = await waitFor(() => api.status(runId), (s) => FINAL_STATES.includes(s.state), 90_000, `run ${runId} to finish`);
        expect(final).toMatchObject({ state: 'completed', step: 2, totalSteps: 2, epoch: 1 });
        const m = await api.metrics(runId);
        expect(m.steps.map((s) => s.step)).toEqual([1, 2]);
        for (const s of m.steps) {
          expect(s.loss).toBeGreaterThan(0.5); // cross-entropy over 10 classes from a fresh init, ≈ ln 10
          expect(s.loss).toBeLessThan(10);
          expect(s.accuracy).toBeGreaterThanOrEqual(0);
          expect(s.accuracy).toBeLessThanOrEqual(1);
        }
        expect(m.evals).toHaveLength(1);
        expect(m.evals[0]).toMatchObject({ epoch: 1, step: 2 });
        expect(Number.isFinite(m.evals[0].loss)).toBe(true);
        expect(m.evals[0].accuracy).toBeGreaterThanOrEqual(0);
        expect(m.evals[0].accuracy).toBeLessThanOrEqual(1);
        expect(final.testLoss).toBe(m.evals[0].loss);
      } finally {
        await gradientWorker.dispose();
      }
    },
    120_000,
  );
});

// Guards added after review. Each comment names the behaviour pinned and what went wrong without it.
describe('TrainingCoordinator: guards found in review', () => {
  // One NaN or infinite gradient or statistics value averaged into a step would make every later
  // parameter version NaN: such a submission is refused (422), its lease spent and the shard open
  // for a new lease.
  it('refuses non-finite gradients and statistics with 422, keeping the step open and the parameters finite', async () => {
    const { runId, spec } = await createRun({ model: { preset: 'res-cnn' }, optimizer: SGD });
    expect(spec.paramCount).toBeGreaterThan(12345);
    expect(spec.bufferCount).toBeGreaterThan(0);
    const v0 = await paramsAt(runId, 0);
    const [w1, w2] = [worker('nf-w1'), worker('nf-w2')];
    const a = await leaseOrFail(w1, runId);
    const b = await leaseOrFail(w2, runId);
    expect(await w1.submitGradient(a, gradientFrame(a, spec, 1.0, { stats: 1.0 }))).toEqual({ accepted: true, version: 0 });

    const nanGradient = await refusal(w2.submitGradient(b, gradientFrame(b, spec, (i) => (i === 12345 ? Number.NaN : 3.0), { stats: 3.0 })));
    expect({ ...statusAndReason(nanGradient), error: nanGradient.body.error }).toEqual({ status: 422, reason: 'non-finite', error: 'gradient value 12345 is NaN' });
    // The refused lease is spent (409); the shard is leased again at once.
    expect(statusAndReason(await refusal(w2.submitGradient(b, gradientFrame(b, spec, 3.0, { stats: 3.0 }))))).toEqual({ status: 409, reason: 'unknown-lease' });
    const b2 = await leaseOrFail(w2, runId);
    expect([b2.shard, b2.step]).toEqual([1, 0]);
    const stats = new Float32Array(spec.bufferCount).fill(3.0);
    stats[spec.bufferCount - 1] = Number.POSITIVE_INFINITY;
    const infStats = await refusal(w2.submitGradient(b2, gradientFrame(b2, spec, 3.0, { stats })));
    expect({ ...statusAndReason(infStats), error: infStats.body.error }).toEqual({ status: 422, reason: 'non-finite', error: `statistics value ${spec.bufferCount - 1} is Infinity` });

    // Nothing was counted: still step 0, parameters and buffers as initialised.
    const open = await api.status(runId);
    expect(open).toMatchObject({ state: 'training', step: 0, version: 0, loss: null });
    expect(open.error).toBeUndefined();
    const still = await paramsAt(runId, 0);
    expect(mismatches(still.params, (i) => v0.params[i])).toEqual([]);
    expect(mismatches(still.buffers, (i) => v0.buffers[i])).toEqual([]);

    // A new lease for the shard answered with finite values completes the step exactly once.
    const b3 = await leaseOrFail(w2, runId);
    expect([b3.shard, b3.step]).toEqual([1, 0]);
    expect(await w2.submitGradient(b3, gradientFrame(b3, spec, 3.0, { stats: 3.0 }))).toEqual({ accepted: true, version: 1 });
    const v1 = await paramsAt(runId, 1);
    expect(mismatches(v1.params, (i) => v0.params[i] - 0.5 * 2.0)).toEqual([]);
    expect(v1.buffers.every(Number.isFinite)).toBe(true);
  });

  // The data order is deterministic, so a shard that keeps coming back non-finite (reports from 3
  // workers with answers accepted in the run) is divergence, not a bad worker: the run fails with the
  // last good parameters, a snapshot of them, the index updated and workers told to stop. Fewer
  // reports, or reports of workers with nothing accepted yet, leave the run training.
  it('fails a run as diverged after non-finite reports from three established workers for one shard of a step, keeping the last good parameters', async () => {
    const { runId, spec } = await createRun({ optimizer: SGD, trainLimit: 256, cluster: { leaseMs: 200 } });
    const v0 = await paramsAt(runId, 0);
    const nan = (l: Lease) => gradientFrame(l, spec, (i) => (i === 7 ? Number.NaN : 1.0));
    /** Submits `frame` for `lease`, expecting the 422 non-finite refusal. */
    const refusedNonFinite = async (client: ApiClient, lease: Lease, frame: Uint8Array<ArrayBuffer>) =>
      statusAndReason(await refusal(client.submitGradient(lease, frame)));
    const training = async (step: number) => {
      const s = await api.status(runId);
      expect(s).toMatchObject({ state: 'training', step });
      expect(s.error).toBeUndefined();
    };

    // Step 0: shard 1 answers; shard 0 is reported non-finite twice (by two leases), then answered.
    const a0 = await leaseOrFail(worker('dv-w1'), runId);
    const b0 = await leaseOrFail(worker('dv-w2'), runId);
    expect([a0.shard, b0.shard]).toEqual([0, 1]);
    expect(await worker('dv-w2').submitGradient(b0, gradientFrame(b0, spec, 1.0))).toEqual({ accepted: true, version: 0 });
    expect(await refusedNonFinite(worker('dv-w1'), a0, nan(a0))).toEqual({ status: 422, reason: 'non-finite' });
    const a1 = await leaseOrFail(worker('dv-w3'), runId); // shard 0 again: a0's refusal freed it
    expect([a1.shard, a1.step]).toEqual([0, 0]);
    expect(await refusedNonFinite(worker('dv-w3'), a1, gradientFrame(a1, spec, 1.0, { loss: Number.POSITIVE_INFINITY }))).toEqual({ status: 422, reason: 'non-finite' });
    await training(0);
    const a2 = await leaseOrFail(worker('dv-w4'), runId);
    expect([a2.shard, a2.step]).toEqual([0, 0]);
    expect(await worker('dv-w4').submitGradient(a2, gradientFrame(a2, spec, 3.0))).toEqual({ accepted: true, version: 1 });
    const v0b = await paramsAt(runId, 1);
    expect(mismatches(v0b.params, (i) => v0.params[i] - 0.5 * 2.0)).toEqual([]);
    await training(1);
    // Step 1: dv-w1 and dv-w3 have answers accepted too.
    for (const id of ['dv-w1', 'dv-w3']) {
      const l = await leaseOrFail(worker(id), runId);
      expect(await worker(id).submitGradient(l, gradientFrame(l, spec, 0))).toMatchObject({ accepted: true });
    }
    const v1 = await paramsAt(runId, 2);
    await training(2);

    // Step 2: two reports for each shard (four in all) leave it training; the third for shard 0 fails it.
    const c0 = await leaseOrFail(worker('dv-w1'), runId);
    const c1 = await leaseOrFail(worker('dv-w2'), runId);
    expect([c0.shard, c1.shard, c0.step]).toEqual([0, 1, 2]);
    expect(await refusedNonFinite(worker('dv-w1'), c0, nan(c0))).toEqual({ status: 422, reason: 'non-finite' });
    expect(await refusedNonFinite(worker('dv-w2'), c1, nan(c1))).toEqual({ status: 422, reason: 'non-finite' });
    const d0 = await leaseOrFail(worker('dv-w3'), runId); // both refused, so free: re-issued in shard order
    const d1 = await leaseOrFail(worker('dv-w4'), runId);
    expect([d0.shard, d1.shard, d0.step, d1.step]).toEqual([0, 1, 2, 2]);
    expect(await refusedNonFinite(worker('dv-w3'), d0, nan(d0))).toEqual({ status: 422, reason: 'non-finite' });
    expect(await refusedNonFinite(worker('dv-w4'), d1, nan(d1))).toEqual({ status: 422, reason: 'non-finite' });
    await training(2);
    // A worker with nothing accepted does not vote.
    const f0 = await leaseOrFail(worker('dv-w5'), runId);
    expect([f0.shard, f0.step]).toEqual([0, 2]);
    expect(await refusedNonFinite(worker('dv-w5'), f0, nan(f0))).toEqual({ status: 422, reason: 'non-finite' });
    await training(2);
    expect(await kvSummary(runId)).toMatchObject({ state: 'training' });
    const e0 = await leaseOrFail(worker('dv-w4'), runId);
    expect([e0.shard, e0.step]).toEqual([0, 2]);
    expect(await refusedNonFinite(worker('dv-w4'), e0, nan(e0))).toEqual({ status: 422, reason: 'non-finite' });

    const failed = await api.status(runId);
    expect(failed).toMatchObject({ state: 'failed', step: 2, version: 2 });
    expect(failed.error).toMatch(/diverged/);
    expect(failed.error).toMatch(/step 3\b/);
    expect(failed.error).toMatch(/shard 0\b/);
    expect(failed.error).toContain('gradient value 7 is NaN');
    expect(mismatches((await paramsAt(runId, 2)).params, (i) => v1.params[i])).toEqual([]);
    expect(await worker('dv-w2').lease(runId)).toEqual({ type: 'done', state: 'failed' });
    expect(await kvSummary(runId)).toMatchObject({ runId, state: 'failed' });
    expect((await api.listRuns()).runs.find((r) => r.runId === runId)?.state).toBe('failed');
    // A finite answer for the failing shard now comes too late.
    expect(statusAndReason(await refusal(worker('dv-w4').submitGradient(e0, gradientFrame(e0, spec, 1.0))))).toEqual({ status: 409, reason: 'finished' });

    const key = snapshotKey(runId, 2);
    await waitFor(() => checkpointKeys(runId), (keys) => keys.includes(key), 5000, `snapshot ${key}`);
    expect(await checkpointKeys(runId)).toEqual([key]);
    const ck = await readCheckpoint(key);
    expect(ck.step).toBe(2);
    expect(mismatches(ck.params, (i) => v1.params[i])).toEqual([]);
    // Cancelling a failed run leaves it failed.
    expect(await api.cancel(runId)).toMatchObject({ state: 'failed', step: 2 });
  });

  // Reaching a final state deletes the run's leases; the 'finished' check comes before the lease
  // lookup, so a late answer is told the run is over rather than 'unknown-lease' (a lease that merely
  // expired) or 'duplicate' (an answer that may still matter).
  it("refuses every submission to a cancelled or completed run with 409 'finished'", async () => {
    const cancelled = await createRun();
    const w = worker('fin-w');
    const open = await leaseOrFail(w, cancelled.runId);
    await api.cancel(cancelled.runId);
    const refused = await refusal(w.submitGradient(open, gradientFrame(open, cancelled.spec, 1.0)));
    expect(statusAndReason(refused)).toEqual({ status: 409, reason: 'finished' });
    expect(refused.body.error).toMatch(/cancelled/);

    // A completed run: the answered frames repeated, and a lease id never issued.
    const { runId, spec } = await createRun();
    await trainStep(runId, spec);
    const t0 = await leaseOrFail(worker('fin-t0'), runId);
    const t1 = await leaseOrFail(worker('fin-t1'), runId);
    const lastTrain = gradientFrame(t1, spec, 0);
    await worker('fin-t0').submitGradient(t0, gradientFrame(t0, spec, 0));
    await worker('fin-t1').submitGradient(t1, lastTrain);
    const e0 = await leaseOrFail(worker('fin-e0'), runId);
    const e1 = await leaseOrFail(worker('fin-e1'), runId);
    await worker('fin-e0').submitEval(e0, evalFrame(e0, 100, 10));
    expect(await worker('fin-e1').submitEval(e1, evalFrame(e1, 50, 30))).toEqual({ accepted: true, version: 2 });
    expect((await api.status(runId)).state).toBe('completed');

    const finished = { status: 409, reason: 'finished' };
    expect(statusAndReason(await refusal(worker('fin-e1').submitEval(e1, evalFrame(e1, 50, 30))))).toEqual(finished);
    expect(statusAndReason(await refusal(worker('fin-t1').submitGradient(t1, lastTrain)))).toEqual(finished);
    // A lease id never issued: with another lease's token the API refuses it (403) before the
    // coordinator sees it; with a token signed for it, the coordinator answers 'finished' before any
    // lease lookup.
    const ghost = { ...t1, leaseId: '00000000-0000-4000-8000-000000000000' };
    // (As fin-t1, who holds an identity on this run: minting a new one is refused once the run is over.)
    const holder = worker('fin-t1');
    expect(statusAndReason(await refusal(worker('fin-new').lease(runId)))).toEqual(finished);
    expect(statusAndReason(await refusal(holder.submitGradient(ghost, gradientFrame(ghost, spec, 0))))).toEqual({ status: 403, reason: 'forbidden' });
    const signed = { ...ghost, token: await leaseToken(await signingKey(coordinator.token), runId, ghost.leaseId, (await holder.identity(runId)).workerId, { expiresAt: Date.now() + 60_000, maxBytes: 1 << 24 }) };
    expect(statusAndReason(await refusal(holder.submitGradient(signed, gradientFrame(signed, spec, 0))))).toEqual(finished);
    expect(await api.status(runId)).toMatchObject({ state: 'completed', step: 2, testLoss: 1.5, testAccuracy: 0.4 });
  });

  // GET /v1/runs reads the KV index; created → training (on the first lease) must reach it, not only
  // creation and the final states.
  it("shows a run as 'training' in the run list from its first lease", async () => {
    const { runId } = await createRun();
    expect(await kvSummary(runId)).toMatchObject({ runId, state: 'created' });
    expect((await api.listRuns()).runs.find((r) => r.runId === runId)?.state).toBe('created');
    await leaseOrFail(worker('idx-w'), runId);
    expect((await api.status(runId)).state).toBe('training');
    expect(await kvSummary(runId)).toMatchObject({ runId, state: 'training' });
    expect((await api.listRuns()).runs.find((r) => r.runId === runId)?.state).toBe('training');
  });

  // An eval shard answered by its re-issued lease: the expired lease's late answer for the same shard
  // is a 200 'duplicate' (it would otherwise hit eval_parts' primary key: a 500 the worker treats as
  // fatal), and the evaluation counts the shard once.
  it('answers the late eval result of an expired lease whose shard was re-issued and answered as a duplicate', async () => {
    const { runId, spec } = await createRun({ cluster: { leaseMs: 300 } });
    await trainStep(runId, spec);
    await trainStep(runId, spec);
    const slow = worker('slow');
    const fast = worker('fast');
    const e0 = await leaseOrFail(slow, runId);
    const e1 = await leaseOrFail(slow, runId);
    const again = await leaseOrFail(fast, runId); // long-polls until e0 expires
    expect([again.kind, again.shard, again.step]).toEqual(['eval', 0, 2]);
    expect(await fast.submitEval(again, evalFrame(again, 100, 10))).toEqual({ accepted: true, version: 2 });

    // Different numbers from the late lease: were they counted, the test loss would change.
    expect(await slow.submitEval(e0, evalFrame(e0, 400, 50))).toEqual({ accepted: false, reason: 'duplicate', version: 2 });
    expect(await api.status(runId)).toMatchObject({ state: 'training', phase: 'eval', testLoss: null });
    expect(await slow.submitEval(e1, evalFrame(e1, 50, 30))).toEqual({ accepted: true, version: 2 });
    expect(await api.status(runId)).toMatchObject({ state: 'completed', testLoss: 1.5, testAccuracy: 0.4 });
    expect((await api.metrics(runId)).evals.map((x) => [x.epoch, x.step, x.loss, x.accuracy])).toEqual([[1, 2, 1.5, 0.4]]);
  });

  // Unknown keys are reported one issue each, with the key in the path, at any depth.
  it('reports each unknown config field as its own issue, the key in the path', async () => {
    const issues = async (request: unknown) => {
      const e = await refusal(api.createRun(request as RunRequest));
      expect(statusAndReason(e)).toEqual({ status: 400, reason: 'config' });
      return [...(e.body.issues ?? [])].sort((x, y) => x.path.localeCompare(y.path));
    };
    const unknown = (path: string) => ({ path, message: `unknown field '${path.split('.').pop()}'` });

    expect(await issues({ ...TINY, colour: 'red', size: 3 })).toEqual([unknown('colour'), unknown('size')]);
    expect(await issues({ ...TINY, model: { preset: 'seed-cnn', colour: 'blue' } })).toEqual([unknown('model.colour')]);
    expect(
      await issues({ ...TINY, colour: 'red', model: { preset: 'seed-cnn', colour: 'blue', depth: 4 }, cluster: { microBatch: 32, colour: 1 } }),
    ).toEqual([unknown('cluster.colour'), unknown('colour'), unknown('model.colour'), unknown('model.depth')]);
    // Alongside a bad value, both are reported.
    const mixed = await issues({ ...TINY, epochs: 0, model: { preset: 'seed-cnn', colour: 'blue' } });
    expect(mixed.map((i) => i.path)).toEqual(['epochs', 'model.colour']);
    expect(mixed[1]).toEqual(unknown('model.colour'));
    // Optimizer fields are checked per kind, after the schema.
    const optimizer = await issues({ ...TINY, optimizer: { kind: 'sgd', lr: 0.1, beta1: 0.9 } });
    expect(optimizer.map((i) => i.path)).toEqual(['optimizer.beta1']);
    expect(optimizer[0].message).toMatch(/unknown field/);

    // The lease request body is strict too.
    const { runId } = await createRun();
    const { credential } = await worker('strict-body').identity(runId);
    const res = await fetch(`${coordinator.url}/v1/runs/${runId}/leases`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body: '{"who":"x"}' });
    const body = (await res.json()) as { reason: string; issues: unknown };
    expect([res.status, body.reason, body.issues]).toEqual([400, 'body', [unknown('who')]]);
    expect((await api.status(runId)).state).toBe('created');
  });

  // A version the run has not reached is 404 'future-version' (the worker asked too early or for the
  // wrong run); only a version already replaced is 410 'stale'.
  it("answers a parameter version ahead of the run with 404 'future-version' and one behind with 410 'stale'", async () => {
    const { runId, spec } = await createRun();
    expect(statusAndReason(await refusal(api.params(runId, 1)))).toEqual({ status: 404, reason: 'future-version' });
    const ahead = await refusal(api.params(runId, 1_000_000));
    expect(statusAndReason(ahead)).toEqual({ status: 404, reason: 'future-version' });
    expect(ahead.body.error).toMatch(/1000000.*current version is 0/);
    await trainStep(runId, spec);
    expect(statusAndReason(await refusal(api.params(runId, 0)))).toEqual({ status: 410, reason: 'stale' });
    expect(statusAndReason(await refusal(api.params(runId, 2)))).toEqual({ status: 404, reason: 'future-version' });
    expect((await api.params(runId, 1)).version).toBe(1);
  });

  // Blocks already stored are skipped, but the API still reads each body before answering: an answer
  // sent before a body of more than about a megabyte is read makes workerd reset the connection
  // (ECONNRESET about every other time with 4 MB blocks), which the client would have to resend or
  // which fails `prepare` outright.
  it('prepares the same data sets again and again without uploading, resending or failing anything', async () => {
    // A data set of 4.6 MB blocks beside the 0.4 MB blocks of the beforeAll fixture.
    const big = assembleCifar10(fixtureFiles(300), 'fixture-big');
    const bigName = 'fixture-big';
    const calls: { method: string; path: string; status: number | string }[] = [];
    const counting: Fetch = async (input, init) => {
      const call = { method: init?.method ?? 'GET', path: new URL(input instanceof Request ? input.url : input).pathname, status: 'pending' as number | string };
      calls.push(call);
      try {
        const res = await globalThis.fetch(input, init);
        call.status = res.status;
        return res;
      } catch (e) {
        call.status = String((e as { cause?: { code?: string } }).cause?.code ?? e);
        throw e;
      }
    };
    const client = new ApiClient(coordinator.url, { token: coordinator.token, fetch: counting });
    const blockPuts = () => calls.filter((c) => c.path.startsWith('/v1/datasets/blocks/'));

    const first = await prepareDataset(client, big, bigName, 1500);
    expect([first.uploaded, first.skipped, first.manifest.train.blocks.length, first.manifest.test.blocks.length]).toEqual([2, 0, 1, 1]);
    expect(first.bytes).toBeGreaterThan(4 * 1024 * 1024);
    expect(blockPuts().map((c) => c.status)).toEqual([201, 201]);
    expect(prepared.uploaded).toBeGreaterThan(0);
    const small = prepared.uploaded + prepared.skipped;

    for (let round = 0; round < 5; round++) {
      calls.length = 0;
      const again = await prepareDataset(client, big, bigName, 1500);
      const fixture = await prepareDataset(client, cifar, DATASET, 128);
      expect([again, fixture].map((r) => ({ uploaded: r.uploaded, skipped: r.skipped, bytes: r.bytes, id: r.manifest.id }))).toEqual([
        { uploaded: 0, skipped: 2, bytes: 0, id: first.manifest.id },
        { uploaded: 0, skipped: small, bytes: 0, id: prepared.manifest.id },
      ]);
      // Each block sent exactly once (no retry after a reset), and every request answered.
      expect(blockPuts().map((c) => [c.method, c.status])).toEqual(Array.from({ length: 2 + small }, () => ['PUT', 200]));
      expect(calls.filter((c) => typeof c.status !== 'number')).toEqual([]);
    }

    // The 4.6 MB block once more through plain fetch, which retries nothing.
    const { blocks } = await buildDatasetBlocks(big, bigName, 1500);
    const sha = first.manifest.train.blocks[0].sha256;
    const bytes = blocks.get(sha) as Uint8Array<ArrayBuffer>;
    expect(bytes.byteLength).toBeGreaterThan(4 * 1024 * 1024);
    const answers: unknown[] = [];
    for (let k = 0; k < 8; k++) {
      answers.push(
        await fetch(`${coordinator.url}/v1/datasets/blocks/${sha}`, { method: "PUT", headers: { authorization: `Bearer ${coordinator.token}` }, body: bytes }).then(
          async (r) => [r.status, await r.json()],
          (e: unknown) => String((e as { cause?: { code?: string } }).cause?.code ?? e),
        ),
      );
    }
    expect(answers).toEqual(Array.from({ length: 8 }, () => [200, { stored: false, sha256: sha }]));
  });
});
