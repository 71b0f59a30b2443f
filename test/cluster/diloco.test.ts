// DiLoCo through the local cluster equals the single-process trainer's simulation of it: each round's
// leases run the inner loop (H inner Adam steps from the round's version) in a worker, the coordinator
// averages their deltas and final buffers in float64 and applies outer Nesterov SGD. Compared per
// parameter tensor after every round: bit for bit. Then a worker process killed (SIGKILL) while it holds a round's
// lease: the lease expires, another worker recomputes it to the same bits, and the run ends where the
// uninterrupted one did. With int8 deltas and versions the cluster still equals the simulation.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { progressLine, runShape } from '../../cli/display';
import { runRequestOf } from '../../cli/start';
import { assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { trainingLayout } from '../../shared/models/compile';
import { initParameters } from '../../shared/models/params';
import type { LeaseReply, RunRequest } from '../../shared/protocol';
import { snapshotKey } from '../../shared/storage-keys';
import { decodeCheckpoint, type TrainerState } from '../../shared/training/checkpoint';
import { DEFAULT_COMPRESSION, type DilocoConfig } from '../../shared/training/communication';
import type { TrainConfig } from '../../shared/training/config';
import { train } from '../../shared/training/trainer';
import { ApiClient } from '../../workers/gradient/client';
import { loadOrt } from '../../workers/ort/node';
import { fixtureFiles } from '../support/cifar-fixture';
import { worstTensorError, type TensorError } from '../support/compare';
import { json, startFaultProxy, type FaultProxy } from '../support/fault-proxy';
import { workerOfRequest } from '../support/hand-worker';
import { tinyTrainConfig } from '../support/tiny-run';
import { waitFinal } from '../support/wait-final';

/** 3 steps per epoch in rounds of 2 and 1 (rounds stop at epoch ends): 4 rounds in 2 epochs. */
const CONFIG: TrainConfig = tinyTrainConfig(192);
const DILOCO: DilocoConfig = { innerSteps: 2, outerLr: 0.7, outerMomentum: 0.9, outerNesterov: true };
const MICRO_BATCH = 32;
const ROUNDS = 4;
const PARAMS = trainingLayout(CONFIG.model).params;
const START = initParameters(PARAMS, CONFIG.seed);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('DiLoCo in the cluster', () => {
  let data: Cifar10;
  let coordinator: LocalCoordinator;
  let api: ApiClient;
  /** The trainer's parameters after every round. */
  let reference: Float32Array[];
  /** The uninterrupted cluster run's final checkpoint. */
  let uninterrupted: TrainerState | undefined;

  const request = (cluster: RunRequest['cluster'] = {}): RunRequest => ({
    ...runRequestOf(CONFIG),
    dataset: 'fixture',
    cluster: { microBatch: MICRO_BATCH, snapshotEvery: 1, leaseMs: 60_000, diloco: DILOCO, ...cluster },
  });


  async function snapshot(runId: string, round: number): Promise<TrainerState> {
    const bucket = await coordinator.mf.getR2Bucket('DATA');
    for (let tries = 0; tries < 100; tries++) {
      const object = await bucket.get(snapshotKey(runId, round));
      if (object) return decodeCheckpoint(new Uint8Array(await object.arrayBuffer()));
      await sleep(50);
    }
    throw new Error(`no snapshot of round ${round}`);
  }

  /** The run completed in ROUNDS rounds (each recording its inner steps' images), evaluated at each epoch end. */
  async function expectCompleted(runId: string): Promise<void> {
    const final = await waitFinal(api, runId);
    expect(final).toMatchObject({ state: 'completed', step: ROUNDS, totalSteps: ROUNDS });
    // The CLI's and dashboard's words for them.
    expect(progressLine(final)).toContain(`round ${ROUNDS}/${ROUNDS}`);
    expect(runShape(final)).toContain('2 epoch(s) of 2 rounds (DiLoCo, up to 2 inner steps each)');
    const metrics = await api.metrics(runId);
    expect(metrics.steps.map((s) => [s.step, s.epoch, s.images])).toEqual([
      [1, 0, 2 * CONFIG.batch],
      [2, 0, CONFIG.batch],
      [3, 1, 2 * CONFIG.batch],
      [4, 1, CONFIG.batch],
    ]);
    expect(metrics.evals.map((e) => [e.epoch, e.step])).toEqual([
      [1, 2],
      [2, 4],
    ]);
  }

  beforeAll(async () => {
    data = assembleCifar10(fixtureFiles(100), 'fixture');
    coordinator = await startCoordinator();
    api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareDataset(api, data, 'fixture', 128);
    reference = [];
    await train({
      ort: await loadOrt('web', 1),
      data,
      config: CONFIG,
      ghostBatch: MICRO_BATCH,
      communication: { compression: DEFAULT_COMPRESSION, diloco: DILOCO, workers: 1 },
      onStep: (p) => reference.push(p.params.slice()),
    });
    expect(reference).toHaveLength(ROUNDS);
  }, 120_000);

  afterAll(async () => {
    await coordinator?.dispose();
  });

  it("one workerd worker, rounds of 2 inner Adam steps: every round's parameters equal the trainer's simulation, bit for bit", async () => {
    const run = await api.createRun(request());
    const worker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
    try {
      await worker.start(run.runId, run.workerToken);
      await expectCompleted(run.runId);
    } finally {
      await worker.dispose();
    }
    const states: TrainerState[] = [];
    for (let round = 1; round <= ROUNDS; round++) states.push(await snapshot(run.runId, round));
    // Snapshots are in the trainer's format: global steps, the outer optimizer's state.
    expect(states.map((s) => s.step)).toEqual([2, 3, 5, 6]);
    expect(states.map((s) => s.optimizer.step)).toEqual([1, 2, 3, 4]);
    const errors: TensorError[] = states.map((s, i) => worstTensorError(s.params, reference[i], START, PARAMS));
    console.log(`[diloco] worst tensor error per round: ${errors.map((e) => `${e.error.toExponential(2)} (${e.tensor})`).join(', ')}`);
    // Both sides run the same graph on the same slices and average the same leases in float64.
    for (const e of errors) expect(e.error, e.tensor).toBe(0);
    uninterrupted = states.at(-1);
  }, 180_000);

  it('a worker process killed (SIGKILL) holding a round’s lease: the lease expires, another worker recomputes it, the run ends with the uninterrupted parameters', async () => {
    expect(uninterrupted, 'the run above').toBeDefined();
    // Leases expire 8 s after issue at most (heartbeats stop with the process): the killed one soon does.
    const run = await api.createRun(request({ leaseMs: 8_000 }));
    const proxy: FaultProxy = await startFaultProxy(coordinator.url);
    const token = await api.workerToken(run.runId, 24);
    const leases: { leaseId: string; step: number; shard: number; worker: string }[] = [];
    let doomed: { worker: string; leaseId: string; step: number; child: ChildProcess } | undefined;
    let answerBeatKill = false;
    const children: ChildProcess[] = [];
    const spawnWorker = () => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'worker', '--url', proxy.url, '--run', run.runId, '--verbose'], {
        env: { ...process.env, EDGETRAIN_TOKEN: token },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      child.stderr!.resume();
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^lease (\S+) train step (\d+) shard (\d+)$/.exec(line);
        // The second epoch's first round (2 inner steps): killed while its inner loop runs.
        if (!m || doomed || Number(m[2]) !== 2) return;
        const lease = leases.find((l) => l.leaseId === m[1]);
        doomed = { worker: lease?.worker ?? '', leaseId: m[1], step: 2, child };
        setTimeout(() => child.kill('SIGKILL'), 30);
      });
    };
    proxy.setHook(async (req, forward) => {
      // Should the doomed worker's answer beat the kill, it is lost with the process.
      if (doomed && req.path.includes(`/leases/${doomed.leaseId}/`) && req.method === 'POST') {
        answerBeatKill = true;
        doomed.child.kill('SIGKILL');
        return { status: 503, headers: { 'content-type': 'application/json' }, body: new TextEncoder().encode('{"error":"killed"}') };
      }
      const res = await forward(req);
      if (req.method === 'POST' && /\/v1\/runs\/[^/]+\/leases$/.test(req.path) && res.status === 200) {
        const reply = json(res) as LeaseReply;
        if (reply.type === 'lease' && reply.lease.kind === 'train') leases.push({ ...reply.lease, worker: workerOfRequest(req.headers) });
      }
      return res;
    });
    try {
      spawnWorker();
      spawnWorker();
      await expectCompleted(run.runId);
    } finally {
      for (const c of children) c.kill('SIGKILL');
      await proxy.close();
    }
    expect(doomed).toBeDefined();
    const killed = doomed!;
    console.log(`[diloco] killed worker ${killed.worker} holding lease ${killed.leaseId} of round ${killed.step}${answerBeatKill ? ' (its answer was on its way and was dropped)' : ' mid-round'}`);
    expect(killed.worker).not.toBe('');
    const shard = leases.find((l) => l.leaseId === killed.leaseId)!.shard;
    // The killed lease's shard was leased again to the surviving worker, and the round counted its answer only.
    expect(leases.some((l) => l.step === killed.step && l.shard === shard && l.leaseId !== killed.leaseId && l.worker !== killed.worker)).toBe(true);
    const round = (await api.metrics(run.runId)).steps.find((s) => s.step === killed.step + 1)!;
    expect(round.workers?.[killed.worker]).toBeUndefined();
    const final = await snapshot(run.runId, ROUNDS);
    expect(bytesOf(final.params).equals(bytesOf(uninterrupted!.params)), 'parameters bit-identical to the uninterrupted run').toBe(true);
    final.optimizer.slots.forEach((slot, i) => expect(bytesOf(slot).equals(bytesOf(uninterrupted!.optimizer.slots[i])), `outer optimizer slot ${i}`).toBe(true));
  }, 240_000);

  it('with int8 deltas (error feedback) and int8 versions: the run ends with the simulating trainer\'s parameters, bit for bit', async () => {
    const compression = { ...DEFAULT_COMPRESSION, gradients: 'int8', params: 'int8', errorFeedback: true } as const;
    let expected: Float32Array | undefined;
    await train({
      ort: await loadOrt('web', 1),
      data,
      config: CONFIG,
      ghostBatch: MICRO_BATCH,
      communication: { compression, diloco: DILOCO, workers: 1 },
      onStep: (p) => (expected = p.params.slice()),
    });
    const run = await api.createRun(request({ compression }));
    const worker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
    try {
      await worker.start(run.runId, run.workerToken);
      await expectCompleted(run.runId);
    } finally {
      await worker.dispose();
    }
    const final = await snapshot(run.runId, ROUNDS);
    expect(worstTensorError(final.params, expected!, START, PARAMS).error).toBe(0);
    // The compression changed the result: the comparison is not with the fp32 run's.
    expect(worstTensorError(final.params, reference.at(-1)!, START, PARAMS).error).toBeGreaterThan(1e-4);
  }, 180_000);
});
