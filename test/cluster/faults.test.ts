// Fault injection on the local cluster with real processes: workerd gradient workers (the deployed
// Worker's queue consumer, each in its own workerd process), `edgetrain worker` Node processes, and the
// API + coordinator in workerd with persistent state. Workers reach the API through a proxy that
// injects faults (test/support/fault-proxy.ts).
//
// Every scenario trains the same run as a fault-free reference (same seed, synchronous data parallelism,
// res-cnn with batch norm, three shards of 16 per step, whose answers arrive in whatever order the
// faults leave them) and asserts that the final parameters, batch-norm buffers and Adam state (the
// run's last R2 checkpoint) are bit-identical to the reference's: faults may cost time, never change
// what is learned, lose an accepted gradient's contribution, or count one twice. Bit-identical holds
// because every shard's gradient is a deterministic function of (seed, step, shard) in the same WASM
// build, and the coordinator sums a step's shards in float64 (order-independent at float32 precision).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator, type WorkerdWorker } from '../../cli/cluster/local';
import { runRequestOf } from '../../cli/start';
import { FINAL_STATES, type Lease, type LeaseReply, type RunCreated, type RunRequest, type RunStatus } from '../../shared/protocol';
import { snapshotKey } from '../../shared/storage-keys';
import { trainingLayout } from '../../shared/models/compile';
import { initBuffers } from '../../shared/models/params';
import { decodeCheckpoint, type TrainerState } from '../../shared/training/checkpoint';
import type { TrainConfig } from '../../shared/training/config';
import { decodeGradient, encodeGradient } from '../../shared/wire';
import { workerOfRequest } from '../support/hand-worker';
import { ApiClient } from '../../workers/gradient/client';
import { json, startFaultProxy, type FaultHook, type FaultProxy, type ProxiedRequest, type ProxiedResponse } from '../support/fault-proxy';
import { tinyTrainConfig } from '../support/tiny-run';
import { prepareFixtureDataset } from '../support/fixture-dataset';

const TINY = tinyTrainConfig(192);
/** A preset with batch norm, so that the running statistics the shards contribute are compared too. */
const CONFIG: TrainConfig = { ...TINY, model: { ...TINY.model, preset: 'res-cnn' }, batch: 48 };
const MICRO_BATCH = 16;
const STEPS = 2 * (192 / 48);
const request = (cluster: RunRequest['cluster'] = {}): RunRequest => ({ ...runRequestOf(CONFIG), dataset: 'fixture', cluster: { microBatch: MICRO_BATCH, leaseMs: 60_000, ...cluster } });

let stateDir: string;
let coordinator: LocalCoordinator;
let proxy: FaultProxy;
/** The operator's client, through the proxy (it rides out a coordinator restart like the workers). */
let api: ApiClient;
let workers: WorkerdWorker[];
let reference: TrainerState;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFinal(runId: string, timeoutMs = 120_000): Promise<RunStatus> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await api.status(runId);
    if (FINAL_STATES.includes(s.state)) return s;
    if (Date.now() > until) throw new Error(`run ${runId} did not finish in ${timeoutMs} ms: ${JSON.stringify({ state: s.state, step: s.step })}`);
    await sleep(100);
  }
}

/** The run's checkpoint at its last step (written after the final evaluation). */
async function finalState(runId: string): Promise<TrainerState> {
  const bucket = await coordinator.mf.getR2Bucket('DATA');
  for (let tries = 0; tries < 100; tries++) {
    const object = await bucket.get(snapshotKey(runId, STEPS));
    if (object) return decodeCheckpoint(new Uint8Array(await object.arrayBuffer()));
    await sleep(50);
  }
  throw new Error(`run ${runId}: no checkpoint of step ${STEPS}`);
}

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** The run ended completed with parameters, buffers and optimizer state bit-identical to the reference. */
async function expectSameAsReference(runId: string): Promise<void> {
  const final = await waitFinal(runId);
  expect(final).toMatchObject({ state: 'completed', step: STEPS });
  const state = await finalState(runId);
  expect(state.step).toBe(STEPS);
  expect(bytesOf(state.params).equals(bytesOf(reference.params)), 'parameters bit-identical to the fault-free run').toBe(true);
  expect(bytesOf(state.buffers).equals(bytesOf(reference.buffers)), 'batch-norm buffers bit-identical').toBe(true);
  expect(state.optimizer.step).toBe(reference.optimizer.step);
  state.optimizer.slots.forEach((slot, i) => expect(bytesOf(slot).equals(bytesOf(reference.optimizer.slots[i])), `optimizer slot ${i} bit-identical`).toBe(true));
  const metrics = await api.metrics(runId);
  expect(metrics.steps.map((s) => s.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  expect(metrics.evals.map((e) => e.epoch)).toEqual([1, 2]);
}

async function startRun(cluster: RunRequest['cluster'] = {}, withWorkerd = true): Promise<RunCreated> {
  const run = await api.createRun(request(cluster));
  if (withWorkerd) for (const w of workers) await w.start(run.runId, run.workerToken);
  return run;
}

// ---------- what the proxy sees ----------

const isGradient = (r: ProxiedRequest) => r.method === 'POST' && /\/leases\/[^/]+\/gradient$/.test(r.path);
const isLeaseRequest = (r: ProxiedRequest) => r.method === 'POST' && /\/v1\/runs\/[^/]+\/leases$/.test(r.path);
const workerOf = (r: ProxiedRequest) => workerOfRequest(r.headers);

/** Records every lease handed out through the proxy, with the worker it went to. */
function leaseRecorder(): { leases: (Lease & { worker: string })[]; hook: FaultHook } {
  const leases: (Lease & { worker: string })[] = [];
  return {
    leases,
    hook: async (req, forward) => {
      const res = await forward(req);
      if (isLeaseRequest(req) && res.status === 200) {
        const reply = json(res) as LeaseReply;
        if (reply.type === 'lease') leases.push({ ...reply.lease, worker: workerOf(req) });
      }
      return res;
    },
  };
}

const chain =
  (...hooks: FaultHook[]): FaultHook =>
  (req, forward) =>
    hooks.reduceRight<(r: ProxiedRequest) => Promise<ProxiedResponse>>((next, hook) => (r) => hook(r, next), forward)(req);

// ---------- `edgetrain worker` processes ----------

interface WorkerProcess {
  /** The id the coordinator minted for it (from its "worker <id> joining" line). */
  id: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

function spawnWorker(runId: string, token: string, onLine: (line: string, w: WorkerProcess) => void): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'worker', '--url', proxy.url, '--run', runId, '--verbose'], {
    env: { ...process.env, EDGETRAIN_TOKEN: token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w: WorkerProcess = { id: '', child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    w.id ||= /^worker (\S+) joining/.exec(line)?.[1] ?? '';
    onLine(line, w);
  });
  child.stderr!.resume();
  return w;
}

beforeAll(async () => {
  stateDir = await mkdtemp(path.join(tmpdir(), 'edgetrain-faults-'));
  coordinator = await startCoordinator({ persistDir: stateDir });
  proxy = await startFaultProxy(coordinator.url);
  api = new ApiClient(proxy.url, { token: coordinator.token, retryForMs: 30_000 });
  await prepareFixtureDataset(api);
  workers = await Promise.all([0, 1].map((index) => startWorkerdWorker({ index, apiUrl: proxy.url })));
  const run = await startRun();
  await waitFinal(run.runId);
  reference = await finalState(run.runId);
  // The comparison covers batch norm: there are running statistics, and training moved them.
  const initial = initBuffers(trainingLayout(CONFIG.model).buffers);
  expect(reference.buffers.length).toBeGreaterThan(0);
  expect(bytesOf(reference.buffers).equals(bytesOf(initial))).toBe(false);
}, 180_000);

afterAll(async () => {
  for (const w of workers ?? []) await w.dispose();
  await proxy?.close();
  await coordinator?.dispose();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe('fault injection: the run survives and learns exactly what a fault-free run learns', () => {
  it('1. worker processes killed mid-step three times (SIGKILL), and a workerd invocation that throws', async () => {
    const run = await startRun({}, false);
    const recorder = leaseRecorder();
    // The first workerd worker's invocation throws: its parameter fetch after step 2 answers 500. The
    // worker processes join with a worker token of their own, so the workerd worker's reads are told
    // apart by theirs (reads carry the worker token, not a credential).
    const processToken = await api.workerToken(run.runId, 24);
    let thrown = false;
    const throwOnce: FaultHook = async (req, forward) => {
      if (!thrown && req.method === 'GET' && /\/params\/[3-9](\?|$)/.test(req.path) && req.headers['authorization'] === `Bearer ${run.workerToken}`) {
        thrown = true;
        return { status: 500, headers: { 'content-type': 'application/json' }, body: new TextEncoder().encode('{"error":"injected"}') };
      }
      return forward(req);
    };
    proxy.setHook(chain(recorder.hook, throwOnce));
    const killed: { worker: string; step: number; shard: number }[] = [];
    const killAtSteps = [2, 4, 6];
    const processes: WorkerProcess[] = [];
    const onLine = (line: string, w: WorkerProcess) => {
      const m = /^lease (\S+) train step (\d+) shard (\d+)$/.exec(line);
      if (!m || killed.length >= killAtSteps.length || Number(m[2]) < killAtSteps[killed.length] || w.child.exitCode !== null || w.child.signalCode) return;
      killed.push({ worker: w.id, step: Number(m[2]), shard: Number(m[3]) });
      // Mid-step: the lease is taken and its compute under way.
      setTimeout(() => {
        w.child.kill('SIGKILL');
        processes.push(spawnWorker(run.runId, processToken, onLine));
      }, 30);
    };
    try {
      processes.push(spawnWorker(run.runId, processToken, onLine), spawnWorker(run.runId, processToken, onLine));
      await workers[0].start(run.runId, run.workerToken);
      await expectSameAsReference(run.runId);
    } finally {
      for (const p of processes) p.child.kill('SIGKILL');
      proxy.setHook(undefined);
    }
    expect(killed).toHaveLength(3);
    expect(thrown).toBe(true);
    // Each killed worker's shard was leased again, to someone else, and counted once (the steps above).
    for (const k of killed) expect(recorder.leases.some((l) => l.kind === 'train' && l.step === k.step && l.shard === k.shard && l.worker !== k.worker)).toBe(true);
    const status = await api.status(run.runId);
    for (const k of killed) expect(status.workers.find((w) => w.worker === k.worker)).toBeDefined();
  }, 240_000);

  it('2. the coordinator process restarted mid-step, twice, between commits (commitEvery 3)', async () => {
    const run = await startRun({ commitEvery: 3 });
    let restarts = 0;
    let restarting: Promise<void> | undefined;
    const restartAtVersions = [2, 5];
    const restart = async () => {
      proxy.setUpstream(undefined);
      await coordinator.dispose();
      coordinator = await startCoordinator({ persistDir: stateDir, token: coordinator.token });
      proxy.setUpstream(coordinator.url);
      restarts++;
    };
    proxy.setHook(async (req, forward) => {
      const res = await forward(req);
      // Once one shard of step v is accepted and the other is not: the step is half summed, in memory.
      if (isGradient(req) && res.status === 200 && !restarting && restarts < restartAtVersions.length) {
        const reply = json(res) as { accepted: boolean; version: number };
        if (reply.accepted && reply.version === restartAtVersions[restarts]) restarting = restart().finally(() => (restarting = undefined));
      }
      return res;
    });
    try {
      await expectSameAsReference(run.runId);
    } finally {
      await restarting;
      proxy.setHook(undefined);
    }
    expect(restarts).toBe(2);
  }, 240_000);

  it('3. duplicate and stale submissions: repeats answered "duplicate", replays of past steps refused 409', async () => {
    const run = await startRun();
    const answers: { kind: 'duplicate' | 'stale'; status: number; body: unknown }[] = [];
    let gradients = 0;
    const held: ProxiedRequest[] = [];
    proxy.setHook(async (req, forward) => {
      if (!isGradient(req)) return forward(req);
      const n = ++gradients;
      const res = await forward(req);
      if (n % 3 === 0) {
        const again = await forward(req);
        answers.push({ kind: 'duplicate', status: again.status, body: json(again) });
      }
      if (n === 2 || n === 5) held.push(req);
      // Two steps later, the held submissions are from a past step: replay them.
      if (res.status === 200 && (json(res) as { version: number }).version >= 4 && held.length) {
        for (const old of held.splice(0)) {
          const replay = await forward(old);
          answers.push({ kind: 'stale', status: replay.status, body: json(replay) });
        }
      }
      return res;
    });
    try {
      await expectSameAsReference(run.runId);
    } finally {
      proxy.setHook(undefined);
    }
    const duplicates = answers.filter((a) => a.kind === 'duplicate');
    const stale = answers.filter((a) => a.kind === 'stale');
    expect(duplicates.length).toBeGreaterThanOrEqual(5);
    for (const d of duplicates) expect(d).toMatchObject({ status: 200, body: { accepted: false, reason: 'duplicate' } });
    expect(stale.length).toBe(2);
    for (const s of stale) {
      expect(s.status).toBe(409);
      expect(['stale', 'unknown-lease']).toContain((s.body as { reason: string }).reason);
    }
  }, 240_000);

  it('4. corrupted payloads of each kind are refused with a reason, the shard recomputed, nothing poisoned', async () => {
    const run = await startRun();
    type Corruption = { name: string; status: number; reason: RegExp; corrupt: (body: Uint8Array<ArrayBuffer>) => Uint8Array<ArrayBuffer> };
    const reencode = (body: Uint8Array, change: (f: ReturnType<typeof decodeGradient>) => Partial<ReturnType<typeof decodeGradient>>) => {
      const frame = decodeGradient(body);
      return encodeGradient({ ...frame, ...change(frame) });
    };
    const corruptions: Corruption[] = [
      { name: 'truncated', status: 400, reason: /^(truncated|checksum)$/, corrupt: (b) => b.slice(0, b.length - 1000) },
      { name: 'wrong length', status: 400, reason: /^length$/, corrupt: (b) => reencode(b, (f) => ({ grads: f.grads.slice(0, f.grads.length - 10) })) },
      { name: 'bad checksum', status: 400, reason: /^checksum$/, corrupt: (b) => { const c = b.slice(); c[c.length >> 1] ^= 0x40; return c; } },
      { name: 'wrong version', status: 400, reason: /^version$/, corrupt: (b) => reencode(b, (f) => ({ version: f.version + 1 })) },
      { name: 'NaN', status: 422, reason: /^non-finite$/, corrupt: (b) => reencode(b, (f) => ({ grads: f.grads.map((g, i) => (i === 7 ? Number.NaN : g)) })) },
      { name: 'absurd norm', status: 422, reason: /^norm$/, corrupt: (b) => reencode(b, (f) => ({ grads: f.grads.map((g) => g * 1e7) })) },
    ];
    const refusals: { name: string; status: number; reason: string; error: string }[] = [];
    let gradients = 0;
    let due = 0;
    const lastBad = new Map<string, boolean>();
    proxy.setHook(async (req, forward) => {
      if (!isGradient(req)) return forward(req);
      // About every third gradient, one kind after another, never two in a row from one worker
      // (three in a row would exclude it: that is scenario 4b).
      if (++gradients % 3 === 2) due++;
      const worker = workerOf(req);
      const c = due > 0 && !lastBad.get(worker) ? corruptions[refusals.length] : undefined;
      lastBad.set(worker, !!c);
      if (!c) return forward(req);
      due--;
      const res = await forward({ ...req, body: c.corrupt(req.body) });
      const body = json(res) as { reason: string; error: string };
      refusals.push({ name: c.name, status: res.status, reason: body.reason, error: body.error });
      return res;
    });
    try {
      await expectSameAsReference(run.runId);
    } finally {
      proxy.setHook(undefined);
    }
    expect(refusals.map((r) => r.name)).toEqual(corruptions.map((c) => c.name));
    refusals.forEach((r, i) => {
      expect(r.status, r.name).toBe(corruptions[i].status);
      expect(r.reason, r.name).toMatch(corruptions[i].reason);
      expect(r.error.length, r.name).toBeGreaterThan(10);
    });
    expect((await api.status(run.runId)).workers.filter((w) => w.excluded)).toEqual([]);
  }, 240_000);

  it('4b. a worker that keeps sending corrupted gradients is excluded; the others finish the run unpoisoned', async () => {
    const run = await startRun();
    let victim: string | undefined;
    const refused: number[] = [];
    proxy.setHook(async (req, forward) => {
      if (!isGradient(req)) return forward(req);
      victim ??= workerOf(req);
      if (workerOf(req) !== victim) return forward(req);
      const body = req.body.slice();
      body[body.length >> 1] ^= 0x01;
      const res = await forward({ ...req, body });
      refused.push(res.status);
      return res;
    });
    try {
      await expectSameAsReference(run.runId);
    } finally {
      proxy.setHook(undefined);
    }
    expect(refused).toEqual([400, 400, 400]);
    const summary = (await api.status(run.runId)).workers.find((w) => w.worker === victim);
    expect(summary?.excluded).toMatch(/3 bad submissions in a row/);
    expect(summary?.accepted).toBe(0);
  }, 240_000);

  it('cancel keeps the last checkpoint (committing steps past the last commit); resume continues from it', async () => {
    const run = await startRun({ commitEvery: 3 });
    while ((await api.status(run.runId)).step < 5) await sleep(10);
    const cancelled = await api.cancel(run.runId);
    expect(cancelled.state).toBe('cancelled');
    // Workers notice the run ended and stop; nothing is accepted meanwhile.
    await sleep(500);
    const after = await api.status(run.runId);
    expect([after.state, after.step]).toEqual(['cancelled', cancelled.step]);
    const bucket = await coordinator.mf.getR2Bucket('DATA');
    let checkpoint: TrainerState | undefined;
    for (let tries = 0; tries < 100 && !checkpoint; tries++) {
      const object = await bucket.get(snapshotKey(run.runId, cancelled.step));
      if (object) checkpoint = decodeCheckpoint(new Uint8Array(await object.arrayBuffer()));
      else await sleep(50);
    }
    expect(checkpoint?.step).toBe(cancelled.step);
    // The committed parameters are the checkpoint's: what the API serves for that version.
    if (cancelled.phase === 'train') expect(bytesOf((await api.params(run.runId, cancelled.step)).params).equals(bytesOf(checkpoint!.params))).toBe(true);
    const resumed = await api.resume(run.runId);
    expect([resumed.state, resumed.step]).toEqual(['training', cancelled.step]);
    for (const w of workers) await w.start(run.runId, run.workerToken);
    await expectSameAsReference(run.runId);
  }, 240_000);

  it('5. stalled workers holding leases, one silent and one heartbeating forever, cost a lease window, not leaseMs', async () => {
    const run = await startRun({ leaseMs: 60_000 });
    const stall = (id: string) => new ApiClient(proxy.url, { token: run.workerToken });
    const takeLease = async (client: ApiClient): Promise<Lease> => {
      for (;;) {
        const reply = await client.lease(run.runId);
        if (reply.type === 'lease') return reply.lease;
        if (reply.type === 'done' || reply.type === 'stop') throw new Error('the run ended before the stalled worker got a lease');
      }
    };
    const recorder = leaseRecorder();
    proxy.setHook(recorder.hook);
    const t0 = Date.now();
    let beating = true;
    try {
      while ((await api.status(run.runId)).step < 3) await sleep(20);
      const silentClient = stall('stalled-silent');
      const silent = await takeLease(silentClient);
      while ((await api.status(run.runId)).step < 5) await sleep(20);
      const busy = stall('stalled-heartbeating');
      const held = await takeLease(busy);
      void (async () => {
        while (beating) {
          await busy.heartbeat(held).catch(() => undefined);
          await sleep(200);
        }
      })();
      await expectSameAsReference(run.runId);
      const seconds = (Date.now() - t0) / 1000;
      console.log(`[faults] stalled workers: run finished in ${seconds.toFixed(1)} s with leaseMs 60 s`);
      expect(seconds).toBeLessThan(45);
      for (const [l, who] of [[silent, silentClient.workerId], [held, busy.workerId]] as const) {
        expect(recorder.leases.some((r) => r.kind === l.kind && r.step === l.step && r.shard === l.shard && r.worker !== who)).toBe(true);
      }
    } finally {
      beating = false;
      proxy.setHook(undefined);
    }
  }, 240_000);
});
