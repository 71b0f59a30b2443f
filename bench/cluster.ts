// `npm run bench -- cluster [--quick] [--steps N]`: throughput of the local cluster with 1 and 2 workerd
// gradient-worker processes, the coordinator's share of a step, and bytes on the wire per step.
// One JSON object per line. Data: a synthetic CIFAR-sized set (speed does not depend on pixel values).
import { startCoordinator, startWorkerdWorker, type WorkerdWorker } from '../cli/cluster/local';
import { prepareDataset } from '../cli/prepare';
import { runRequestOf } from '../cli/start';
import { FINAL_STATES, type ClusterConfig, type Lease, type StepMetric, type StepPhases } from '../shared/protocol';
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../shared/training/config';
import { train } from '../shared/training/trainer';
import { encodeGradient, encodeParams } from '../shared/wire';
import { ApiClient } from '../workers/gradient/client';
import { loadOrt } from '../workers/ort/node';
import { median } from '../shared/stats';
import { syntheticCifar } from './synthetic-data';

interface ClusterCase {
  readonly batch: number;
  readonly microBatch: number;
  /** Examples per graph run inside a lease (0 = the lease). */
  readonly graphBatch: number;
  readonly commitEvery: number;
}

const CASES: readonly ClusterCase[] = [
  { batch: 64, microBatch: 32, graphBatch: 0, commitEvery: 1 },
  { batch: 128, microBatch: 64, graphBatch: 0, commitEvery: 1 },
  { batch: 128, microBatch: 64, graphBatch: 0, commitEvery: 10 },
  { batch: 256, microBatch: 128, graphBatch: 64, commitEvery: 10 },
  { batch: 512, microBatch: 256, graphBatch: 64, commitEvery: 10 },
];
const WARMUP_STEPS = 3;

const configFor = (c: ClusterCase, steps: number): TrainConfig => ({
  ...SEED_TRAIN_CONFIG,
  epochs: 1,
  batch: c.batch,
  evalBatch: 500,
  trainLimit: c.batch * steps,
  augment: true,
});

/** Step timing from the coordinator's metrics, after warm-up: the interval between commits. */
function stepFigures(steps: readonly StepMetric[], batch: number) {
  const measured = steps.slice(WARMUP_STEPS);
  const intervals = measured.slice(1).map((s, i) => s.at - measured[i].at);
  const stepMs = median(intervals);
  const coordinatorMs = median(measured.map((s) => s.coordinatorMs));
  const phase = (name: keyof StepPhases) => +median(measured.map((s) => s.phases?.[name] ?? NaN)).toFixed(2);
  return {
    steps: measured.length,
    imagesPerSecond: +((batch * intervals.length * 1000) / intervals.reduce((a, b) => a + b, 0)).toFixed(1),
    medianStepMs: stepMs,
    medianCoordinatorMs: coordinatorMs,
    coordinatorShare: +(coordinatorMs / stepMs).toFixed(3),
    phasesMs: { decode: phase('decodeMs'), sum: phase('sumMs'), optimizer: phase('optimizerMs'), commit: phase('commitMs'), publish: phase('publishMs') },
  };
}

/** What crosses the network per step: each shard's gradient frame and lease, each worker's copy of the parameters. */
function wireBytes(paramCount: number, bufferCount: number, shards: number, workers: number, leaseJsonBytes: number) {
  const gradient = encodeGradient({ leaseId: crypto.randomUUID(), version: 1, step: 1, shard: 0, count: 32, loss: 1, correct: 1, grads: new Float32Array(paramCount), stats: new Float32Array(bufferCount) }).byteLength;
  const params = encodeParams({ version: 1, params: new Float32Array(paramCount), buffers: new Float32Array(bufferCount) }).byteLength;
  const perStep = shards * (gradient + leaseJsonBytes) + Math.min(workers, shards) * params;
  return { gradientFrameBytes: gradient, paramsFrameBytes: params, leaseBytes: leaseJsonBytes, bytesPerStep: perStep };
}

export async function benchCluster(args: string[], print: (o: object) => void): Promise<void> {
  const quick = args.includes('--quick');
  const stepsArg = args.indexOf('--steps');
  const steps = stepsArg >= 0 ? Number(args[stepsArg + 1]) : quick ? 10 : 20;
  const cases = quick ? CASES.slice(0, 1) : CASES;
  const maxImages = Math.max(...cases.map((c) => c.batch)) * steps;
  const data = syntheticCifar(maxImages, 500);

  const coordinator = await startCoordinator();
  const workers: WorkerdWorker[] = [];
  try {
    const api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareDataset(api, data, 'bench', 5000);
    workers.push(...(await Promise.all([0, 1].map((index) => startWorkerdWorker({ index, apiUrl: coordinator.url })))));
    for (const c of cases) {
      const config = configFor(c, steps);
      // The single-process reference at the same global batch (graph run at the lease's graph batch
      // would be slower per image; this is the best one process does), for scale.
      const stepTimes: number[] = [];
      let last = performance.now();
      await train({
        ort: await loadOrt('web', 1),
        data,
        config: { ...config, trainLimit: c.batch * Math.min(steps, 12) },
        onStep: () => {
          const now = performance.now();
          stepTimes.push(now - last);
          last = now;
        },
      });
      const singleMs = median(stepTimes.slice(WARMUP_STEPS));
      print({ bench: 'cluster', mode: 'single-process', batch: c.batch, imagesPerSecond: +((c.batch * 1000) / singleMs).toFixed(1), medianStepMs: +singleMs.toFixed(1) });

      const byWorkers: Record<number, number> = {};
      for (const n of [1, 2]) {
        const cluster: Partial<ClusterConfig> = { microBatch: c.microBatch, graphBatch: c.graphBatch, commitEvery: c.commitEvery, leaseMs: 120_000 };
        const run = await api.createRun({ ...runRequestOf(config), dataset: 'bench', cluster });
        for (const w of workers.slice(0, n)) await w.start(run.runId, run.workerToken);
        for (;;) {
          const s = await api.status(run.runId);
          if (FINAL_STATES.includes(s.state)) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        const [metrics, spec] = await Promise.all([api.metrics(run.runId), api.spec(run.runId)]);
        const figures = stepFigures(metrics.steps, c.batch);
        byWorkers[n] = figures.imagesPerSecond;
        const lease: Lease = { leaseId: crypto.randomUUID(), token: 'x'.repeat(43), runId: run.runId, kind: 'train', step: 1234, shard: 1, version: 1234, paramsTag: '0123abcd', epoch: 0, split: 'train', indices: Array(c.microBatch).fill(49_999), firstPosition: 12_345, deadline: Date.now() };
        const leaseJsonBytes = JSON.stringify({ type: 'lease', lease }).length;
        print({
          bench: 'cluster',
          mode: 'workerd',
          workers: n,
          batch: c.batch,
          microBatch: c.microBatch,
          graphBatch: c.graphBatch || c.microBatch,
          commitEvery: c.commitEvery,
          ...figures,
          ...wireBytes(spec.paramCount, spec.bufferCount, c.batch / c.microBatch, n, leaseJsonBytes),
        });
      }
      print({
        bench: 'cluster',
        mode: 'scaling',
        batch: c.batch,
        microBatch: c.microBatch,
        graphBatch: c.graphBatch || c.microBatch,
        commitEvery: c.commitEvery,
        speedup2over1: +(byWorkers[2] / byWorkers[1]).toFixed(2),
        twoOverSingleProcess: +((byWorkers[2] * singleMs) / (c.batch * 1000)).toFixed(2),
        targets: { speedup2over1: 1.9, twoOverSingleProcess: 1.5 },
      });
    }
  } finally {
    for (const w of workers) await w.dispose();
    await coordinator.dispose();
  }
}
