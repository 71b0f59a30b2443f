// Sixteen lightweight Node gradient workers (tiny-cnn, 4-image shards, 16 shards a step, summed by four
// aggregators) train one run across an epoch end, with evaluation; the final parameters equal the
// single-process reference trainer's ghost-batch run bit for bit, and every worker's answers were counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { runRequestOf } from '../../cli/start';
import { assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { trainingLayout } from '../../shared/models/compile';
import { initParameters } from '../../shared/models/params';
import type { TrainConfig } from '../../shared/training/config';
import { train } from '../../shared/training/trainer';
import { ApiClient } from '../../workers/gradient/client';
import type { LeaseComputer } from '../../workers/gradient/lease-computer';
import { NodeWorker } from '../../workers/node/runtime';
import { loadOrt } from '../../workers/ort/node';
import { fixtureFiles } from '../support/cifar-fixture';
import { worstTensorError } from '../support/compare';
import { tinyTrainConfig } from '../support/tiny-run';

const WORKERS = 16;
const SHARD = 4;
const base = tinyTrainConfig(128);
const CONFIG: TrainConfig = { ...base, model: { ...base.model, preset: 'tiny-cnn', head: 'linear' } };
const STEPS = CONFIG.epochs * (CONFIG.trainLimit / CONFIG.batch);

describe(`${WORKERS} Node gradient workers`, () => {
  let data: Cifar10;
  let coordinator: LocalCoordinator;
  let api: ApiClient;

  beforeAll(async () => {
    data = assembleCifar10(fixtureFiles(100), 'fixture');
    coordinator = await startCoordinator();
    api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareDataset(api, data, 'fixture', 128);
  });

  afterAll(async () => {
    await coordinator?.dispose();
  });

  it(`${CONFIG.batch / SHARD} shards a step over ${WORKERS} workers, across an epoch end: the final parameters equal the ghost-batch reference bit for bit, and every worker contributed`, async () => {
    // Through four aggregators (shard s → s mod 4): the hierarchical path at this scale.
    const cluster = { microBatch: SHARD, snapshotEvery: 1, leaseMs: 60_000, aggregators: 4 };
    const run = await api.createRun({ ...runRequestOf(CONFIG), dataset: 'fixture', cluster });
    const workers = Array.from({ length: WORKERS }, () => NodeWorker.start({ runtime: 'web', threads: 1 }));
    const clients = workers.map(() => new ApiClient(coordinator.url, { token: coordinator.token }));
    // Leasing starts once every worker has compiled its graphs: 16 compiles share 2 cores here, and a
    // worker still compiling when the others hold every shard (2 each) could otherwise miss the run.
    let prepared = 0;
    let allPrepared!: () => void;
    const ready = new Promise<void>((resolve) => (allPrepared = resolve));
    const together = (c: LeaseComputer): LeaseComputer => ({
      ...c,
      prepare: async (spec, captions) => {
        await c.prepare(spec, captions);
        if (++prepared === WORKERS) allPrepared();
        await ready;
      },
    });
    try {
      const reports = await Promise.all(workers.map((w, i) => w.run(clients[i], run.runId, undefined, {}, together)));
      expect(reports.map((r) => r.state)).toEqual(Array(WORKERS).fill('completed'));
      const metrics = await api.metrics(run.runId);
      expect(metrics.steps.map((s) => s.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
      expect(metrics.evals).toHaveLength(CONFIG.epochs);
      const shardsBy = new Map<string, number>();
      for (const s of metrics.steps) for (const [worker, n] of Object.entries(s.workers ?? {})) shardsBy.set(worker, (shardsBy.get(worker) ?? 0) + n);
      console.log(`[many-workers] shards per worker: ${[...shardsBy].map(([w, n]) => `${w} ${n}`).join(', ')}`);
      expect([...shardsBy.keys()].sort()).toEqual(clients.map((c) => c.workerId).sort());
      expect([...shardsBy.values()].reduce((a, b) => a + b, 0)).toBe(STEPS * (CONFIG.batch / SHARD));

      const { params } = await api.params(run.runId, STEPS);
      const ref = await train({ ort: await loadOrt('web', 1), data, config: CONFIG, ghostBatch: SHARD });
      expect(ref.step).toBe(STEPS);
      const layout = trainingLayout(CONFIG.model);
      const error = worstTensorError(params, ref.params, initParameters(layout.params, CONFIG.seed), layout.params);
      console.log(`[many-workers] worst tensor error vs reference: ${error.error} (${error.tensor}); ${layout.params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)} parameters`);
      expect(error.error, error.tensor).toBe(0);
    } finally {
      await Promise.all(workers.map((w) => w.dispose()));
    }
  }, 120_000);
});
