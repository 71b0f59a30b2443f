// Synchronous data-parallel training through the local cluster equals the single-process reference
// trainer computing each step as the cluster does (ghost batches of the lease size, averaged in
// float64): same preset, seed and global batch. Compared per parameter tensor, relative to how far
// training moved it, after every step, with Adam and with SGD, and for the batch-norm presets (bn-cnn,
// res-cnn) their running statistics too; a coordinator snapshot taken mid-epoch resumes in the trainer
// to the same parameters.
//
// Each test has a coordinator of its own, its calls time out after HANG_MS, and it is retried once:
// workerd 2026-04-26 at times stops answering (see test/cluster/deployed-topology.test.ts), and with
// one coordinator for the file, one such hang timed every test out.
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { runRequestOf } from '../../cli/start';
import { assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { trainingLayout } from '../../shared/models/compile';
import { initBuffers, initParameters } from '../../shared/models/params';
import { decodeCheckpoint, type TrainerState } from '../../shared/training/checkpoint';
import type { TrainConfig } from '../../shared/training/config';
import { train } from '../../shared/training/trainer';
import { snapshotKey } from '../../shared/storage-keys';
import { fetchWithTimeout } from '../../cli/target';
import { ApiClient } from '../../workers/gradient/client';
import { NodeWorker } from '../../workers/node/runtime';
import { loadOrt } from '../../workers/ort/node';
import { fixtureFiles } from '../support/cifar-fixture';
import { worstTensorError, type TensorError } from '../support/compare';
import { tinyTrainConfig } from '../support/tiny-run';
import { waitFinal } from '../support/wait-final';

const ADAM: TrainConfig = tinyTrainConfig(192);
const SGD: TrainConfig = { ...ADAM, optimizer: { kind: 'sgd', lr: 0.05, momentum: 0.9, nesterov: false, weightDecay: 0 } };
const MICRO_BATCH = 32;
const STEPS = 2 * (192 / 64);
/**
 * Where the two sides sum in different orders (a whole batch in one graph run, or a lease's graph
 * runs accumulated), float32 rounding stays far below this; a wrong mean (one shard dropped, averaged
 * over one too many) is ~0.3. Where they compute the same slices, the parameters must be equal.
 */
const ROUNDING = 1e-4;
const PARAMS = trainingLayout(ADAM.model).params;
const START = initParameters(PARAMS, ADAM.seed);
/** A call unanswered this long means the coordinator's workerd is stuck (a step here takes < 1 s). */
const HANG_MS = 30_000;


describe('distributed training equals the single-process trainer', { retry: 1 }, () => {
  let data: Cifar10;
  let coordinator: LocalCoordinator;
  let api: ApiClient;
  const ort = () => loadOrt('web', 1);

  /** The reference trainer's parameters after every step. */
  async function reference(config: TrainConfig, ghostBatch: number, resume?: TrainerState): Promise<Float32Array[]> {
    const steps: Float32Array[] = [];
    await train({ ort: await ort(), data, config, ghostBatch, resume, onStep: (p) => steps.push(p.params.slice()) });
    return steps;
  }

  beforeAll(() => {
    data = assembleCifar10(fixtureFiles(100), 'fixture');
  });

  beforeEach(async () => {
    coordinator = await startCoordinator();
    api = new ApiClient(coordinator.url, { token: coordinator.token, fetch: fetchWithTimeout(HANG_MS) });
    await prepareDataset(api, data, 'fixture', 128);
  });

  afterEach(async () => {
    await coordinator?.dispose();
  });

  const runRequest = (config: TrainConfig, graphBatch?: number, microBatch = MICRO_BATCH, aggregators = 0) => ({
    ...runRequestOf(config),
    dataset: 'fixture',
    cluster: { microBatch, snapshotEvery: 1, leaseMs: 60_000, aggregators, ...(graphBatch ? { graphBatch } : {}) },
  });

  async function snapshot(runId: string, step: number): Promise<TrainerState> {
    const bucket = await coordinator.mf.getR2Bucket('DATA');
    for (let tries = 0; tries < 100; tries++) {
      const object = await bucket.get(snapshotKey(runId, step));
      if (object) return decodeCheckpoint(new Uint8Array(await object.arrayBuffer()));
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no snapshot of step ${step}`);
  }

  /** A run on two workerd gradient-worker processes; every step's snapshot. */
  async function clusterRunStates(config: TrainConfig, microBatch = MICRO_BATCH, aggregators = 0): Promise<{ runId: string; states: TrainerState[] }> {
    const steps = config.epochs * (config.trainLimit / config.batch);
    const run = await api.createRun(runRequest(config, undefined, microBatch, aggregators));
    const workers = await Promise.all([0, 1].map((index) => startWorkerdWorker({ index, apiUrl: coordinator.url })));
    try {
      for (const w of workers) await w.start(run.runId, run.workerToken);
      const final = await waitFinal(api, run.runId);
      expect(final.state).toBe('completed');
      expect(final.step).toBe(steps);
      const metrics = await api.metrics(run.runId);
      expect(metrics.steps.map((s) => s.step)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
      expect(metrics.evals).toHaveLength(config.epochs);
    } finally {
      for (const w of workers) await w.dispose();
    }
    const states: TrainerState[] = [];
    for (let step = 1; step <= steps; step++) states.push(await snapshot(run.runId, step));
    return { runId: run.runId, states };
  }

  async function clusterRun(config: TrainConfig): Promise<{ runId: string; steps: Float32Array[] }> {
    const { runId, states } = await clusterRunStates(config);
    return { runId, steps: states.map((s) => s.params) };
  }

  function expectEqualSteps(label: string, cluster: Float32Array[], ref: Float32Array[], bound: number): void {
    expect(cluster).toHaveLength(ref.length);
    const errors: TensorError[] = cluster.map((p, i) => worstTensorError(p, ref[i], START, PARAMS));
    console.log(`[equivalence] ${label}: worst tensor error per step: ${errors.map((e) => `${e.error.toExponential(2)} (${e.tensor})`).join(', ')}`);
    for (const e of errors) expect(e.error, e.tensor).toBeLessThanOrEqual(bound);
  }

  it("Adam, two workerd gradient-worker processes: every step's parameters equal the reference's, bit for bit; a snapshot taken mid-epoch resumes in the trainer to the same final parameters", async () => {
    const { runId, steps } = await clusterRun(ADAM);
    expectEqualSteps('adam', steps, await reference(ADAM, MICRO_BATCH), 0);

    const midEpoch = STEPS / 2 + 1; // epoch 2's second step
    const state = await snapshot(runId, midEpoch);
    expect(state.step).toBe(midEpoch);
    const resumed = await reference(ADAM, MICRO_BATCH, state);
    expect(resumed).toHaveLength(STEPS - midEpoch);
    expect(Buffer.from(resumed.at(-1)!.buffer).equals(Buffer.from(steps[STEPS - 1].buffer))).toBe(true);
  }, 180_000);

  it("SGD with momentum, two workerd gradient-worker processes: equal to the ghost-batch reference bit for bit, and to one graph run per step within rounding", async () => {
    const { steps } = await clusterRun(SGD);
    expectEqualSteps('sgd', steps, await reference(SGD, MICRO_BATCH), 0);
    // The reference without ghost batches shares no averaging code with the coordinator (for seed-cnn,
    // without batch norm, one graph run of 64 is the same mathematics): a wrong mean shows here.
    expectEqualSteps('sgd vs one graph run per step', steps, await reference(SGD, SGD.batch), ROUNDING);
  }, 180_000);

  it("Adam summed through two aggregators (four shards of 16, shard s to aggregator s mod 2): every step's parameters equal the reference's, bit for bit", async () => {
    const { states } = await clusterRunStates(ADAM, 16, 2);
    expectEqualSteps('adam, 2 aggregators', states.map((s) => s.params), await reference(ADAM, 16), 0);
  }, 180_000);

  // Batch norm normalises each graph run over its own examples, so the cluster equals a reference that
  // runs each step in the same shards (ghost batch norm), and the whole-batch reference is measurably off.
  for (const preset of ['bn-cnn', 'res-cnn'] as const) {
    it(`${preset} (batch norm), three shards of 16 per step: parameters and running statistics equal the ghost-batch reference bit for bit`, async () => {
      const base = tinyTrainConfig(96);
      const config: TrainConfig = { ...base, model: { ...base.model, preset }, batch: 48, epochs: preset === 'res-cnn' ? 1 : 2 };
      const layout = trainingLayout(config.model);
      const { states } = await clusterRunStates(config, 16);
      const last = states.at(-1)!;
      const ref = await train({ ort: await ort(), data, config, ghostBatch: 16 });
      expect(ref.step).toBe(last.step);
      const startBuffers = initBuffers(layout.buffers);
      const params = worstTensorError(last.params, ref.params, initParameters(layout.params, config.seed), layout.params);
      const buffers = worstTensorError(last.buffers, ref.buffers, startBuffers, layout.buffers);
      const whole = await train({ ort: await ort(), data, config });
      const wholeBuffers = worstTensorError(last.buffers, whole.buffers, startBuffers, layout.buffers);
      console.log(`[equivalence] ${preset}: vs ghost-batch reference params ${params.error} (${params.tensor}), buffers ${buffers.error} (${buffers.tensor}); vs whole-batch reference buffers ${wholeBuffers.error.toExponential(2)} (${wholeBuffers.tensor})`);
      expect(layout.buffers.length).toBeGreaterThan(0);
      expect(params.error, params.tensor).toBe(0);
      expect(buffers.error, buffers.tensor).toBe(0);
      expect(wholeBuffers.error).toBeGreaterThan(ROUNDING);
    }, 240_000);
  }

  it('the Node runtime (ORT in worker threads behind comlink), accumulating two graph runs per lease, gives the same parameters', async () => {
    const run = await api.createRun(runRequest(ADAM, MICRO_BATCH / 2));
    const workers = [0, 1].map(() => NodeWorker.start({ runtime: 'web', threads: 1 }));
    try {
      const reports = await Promise.all(workers.map((w, i) => w.run(new ApiClient(coordinator.url, { token: coordinator.token, fetch: fetchWithTimeout(HANG_MS) }), run.runId)));
      expect(reports.map((r) => r.state)).toEqual(['completed', 'completed']);
      expect(reports.reduce((n, r) => n + r.accepted, 0)).toBeGreaterThanOrEqual(STEPS * 2);
      const { params } = await api.params(run.runId, STEPS);
      expectEqualSteps('node runtime, graph batch 16', [params], (await reference(ADAM, MICRO_BATCH / 2)).slice(-1), ROUNDING);
    } finally {
      for (const w of workers) await w.dispose();
    }
  }, 180_000);
});
