// Synchronous data-parallel training through the local cluster equals the single-process reference
// trainer: same preset, seed and global batch; the parameters after every step agree within 1e-5.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { runRequestOf } from '../../cli/start';
import { assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { FINAL_STATES, type RunStatus } from '../../shared/protocol';
import { decodeCheckpoint } from '../../shared/training/checkpoint';
import type { TrainConfig } from '../../shared/training/config';
import { train } from '../../shared/training/trainer';
import { snapshotKey } from '../../shared/storage-keys';
import { ApiClient } from '../../workers/gradient/client';
import { NodeWorker } from '../../workers/node/runtime';
import { loadOrt } from '../../workers/ort/node';
import { fixtureFiles } from '../support/cifar-fixture';
import { relativeError } from '../support/compare';
import { tinyTrainConfig } from '../support/tiny-run';

const CONFIG: TrainConfig = tinyTrainConfig(192);
const MICRO_BATCH = 32;
const STEPS = 2 * (192 / 64);

async function waitFinal(api: ApiClient, runId: string): Promise<RunStatus> {
  for (;;) {
    const s = await api.status(runId);
    if (FINAL_STATES.includes(s.state)) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('distributed training equals the single-process trainer', () => {
  let data: Cifar10;
  let coordinator: LocalCoordinator;
  let api: ApiClient;
  const reference: Float32Array[] = [];

  beforeAll(async () => {
    data = assembleCifar10(fixtureFiles(100), 'fixture');
    coordinator = await startCoordinator();
    api = new ApiClient(coordinator.url, { workerId: 'equivalence-test', token: coordinator.token });
    await prepareDataset(api, data, 'fixture', 128);
    await train({ ort: await loadOrt('web', 1), data, config: CONFIG, onStep: (p) => reference.push(p.params.slice()) });
  });

  afterAll(async () => {
    await coordinator?.dispose();
  });

  const runRequest = () => ({ ...runRequestOf(CONFIG), dataset: 'fixture', cluster: { microBatch: MICRO_BATCH, snapshotEvery: 1, leaseMs: 60_000 } });

  async function snapshotParams(runId: string, step: number): Promise<Float32Array> {
    const bucket = await coordinator.mf.getR2Bucket('DATA');
    for (let tries = 0; tries < 100; tries++) {
      const object = await bucket.get(snapshotKey(runId, step));
      if (object) return decodeCheckpoint(new Uint8Array(await object.arrayBuffer())).params;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no snapshot of step ${step}`);
  }

  it('two workerd gradient-worker processes: parameters match after every step within 1e-5', async () => {
    expect(reference).toHaveLength(STEPS);
    const run = await api.createRun(runRequest());
    const workers = await Promise.all([0, 1].map((index) => startWorkerdWorker({ index, apiUrl: coordinator.url })));
    try {
      for (const w of workers) await w.start(run.runId, run.workerToken);
      const final = await waitFinal(api, run.runId);
      expect(final.state).toBe('completed');
      expect(final.step).toBe(STEPS);
      const errors: number[] = [];
      for (let step = 1; step <= STEPS; step++) errors.push(relativeError(await snapshotParams(run.runId, step), reference[step - 1]));
      console.log(`[equivalence] relative parameter error per step: ${errors.map((e) => e.toExponential(2)).join(', ')}`);
      for (const e of errors) expect(e).toBeLessThanOrEqual(1e-5);
      // Both processes computed shards: every step has two, and one worker cannot take both while the other is idle forever.
      const metrics = await api.metrics(run.runId);
      expect(metrics.steps.map((s) => s.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
      expect(metrics.evals).toHaveLength(CONFIG.epochs);
    } finally {
      for (const w of workers) await w.dispose();
    }
  }, 180_000);

  it('the Node runtime (ORT in worker threads behind comlink), accumulating two graph runs per lease, gives the same parameters', async () => {
    const request = runRequest();
    const run = await api.createRun({ ...request, cluster: { ...request.cluster, graphBatch: MICRO_BATCH / 2 } });
    const workers = [0, 1].map(() => NodeWorker.start({ runtime: 'web', threads: 1 }));
    try {
      const reports = await Promise.all(workers.map((w, i) => w.run(new ApiClient(coordinator.url, { workerId: `node-${i}`, token: coordinator.token }), run.runId)));
      expect(reports.map((r) => r.state)).toEqual(['completed', 'completed']);
      expect(reports.reduce((n, r) => n + r.accepted, 0)).toBeGreaterThanOrEqual(STEPS * 2);
      const { params } = await api.params(run.runId, STEPS);
      expect(relativeError(params, reference[STEPS - 1])).toBeLessThanOrEqual(1e-5);
    } finally {
      for (const w of workers) await w.dispose();
    }
  }, 180_000);
});
