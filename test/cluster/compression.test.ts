// A run with cluster.compression through the local cluster: one Node worker sends int8 gradient frames
// through its error feedback and computes at int8 parameter versions, and the run ends with the
// parameters of the single-process trainer simulating that communication (bit for bit). A frame in
// another encoding than the run's is refused 400 naming what is wrong, and the run goes on. Top-k
// with DGC's momentum correction on the workers equals its simulation too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { runRequestOf } from '../../cli/start';
import { assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { trainingLayout } from '../../shared/models/compile';
import { initParameters } from '../../shared/models/params';
import { snapshotKey } from '../../shared/storage-keys';
import { decodeCheckpoint, type TrainerState } from '../../shared/training/checkpoint';
import { DEFAULT_COMPRESSION, DEFAULT_DILOCO, type CompressionConfig } from '../../shared/training/communication';
import type { TrainConfig } from '../../shared/training/config';
import { runEncodings } from '../../shared/training/run-encodings';
import { train } from '../../shared/training/trainer';
import { encodeGradientAs } from '../../shared/wire';
import { roundTrip } from '../../shared/wire/codec';
import { ApiClient } from '../../workers/gradient/client';
import { NodeWorker } from '../../workers/node/runtime';
import { loadOrt } from '../../workers/ort/node';
import { fixtureFiles } from '../support/cifar-fixture';
import { worstTensorError } from '../support/compare';
import { leaseOrFail, refusal, statusAndReason } from '../support/hand-worker';
import { tinyTrainConfig } from '../support/tiny-run';
import { waitFinal } from '../support/wait-final';

const CONFIG: TrainConfig = { ...tinyTrainConfig(128), epochs: 1 }; // 2 steps of two 32-image shards
const MICRO_BATCH = 32;
const STEPS = 2;
const COMPRESSION: CompressionConfig = { ...DEFAULT_COMPRESSION, gradients: 'int8', params: 'int8', errorFeedback: true };


describe('a compressed run through the local cluster', () => {
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

  async function snapshot(runId: string, step: number): Promise<TrainerState> {
    const bucket = await coordinator.mf.getR2Bucket('DATA');
    for (let tries = 0; tries < 100; tries++) {
      const object = await bucket.get(snapshotKey(runId, step));
      if (object) return decodeCheckpoint(new Uint8Array(await object.arrayBuffer()));
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no snapshot of step ${step}`);
  }

  for (const aggregators of [0, 2]) {
  it(`int8 gradients with error feedback and int8 versions, one worker, ${aggregators ? 'summed by two aggregators' : 'no aggregators'}: a frame in another encoding is refused 400, and the run ends with the simulating trainer's parameters, bit for bit`, async () => {
    const run = await api.createRun({
      ...runRequestOf(CONFIG),
      dataset: 'fixture',
      cluster: { microBatch: MICRO_BATCH, snapshotEvery: 1, leaseMs: 60_000, aggregators, compression: { gradients: 'int8', params: 'int8', errorFeedback: true } },
    });
    const spec = await api.spec(run.runId);
    const encodings = runEncodings(spec);

    // A hand worker answers its lease in the wrong encodings: each refusal spends the lease, and the
    // shard goes to the next worker; nothing of it counts.
    const hand = new ApiClient(coordinator.url, { token: run.workerToken });
    const answer = (lease: Awaited<ReturnType<typeof leaseOrFail>>) => ({
      leaseId: lease.leaseId, version: lease.version, step: lease.step, shard: lease.shard, count: lease.indices.length, loss: 2.3, correct: 1,
      grads: new Float32Array(spec.paramCount).fill(1e-3), stats: new Float32Array(spec.bufferCount),
    });
    const dense = await leaseOrFail(hand, run.runId);
    const denseRefusal = await refusal(hand.submitGradient(dense, encodeGradientAs(answer(dense), { codec: { codec: 'fp32' }, segments: encodings.gradients.segments })));
    expect(statusAndReason(denseRefusal)).toEqual({ status: 400, reason: 'codec' });
    expect(denseRefusal.body.error).toMatch(/a dense fp32 frame, and this run's frames are int8/);
    const fp16 = await leaseOrFail(hand, run.runId);
    const fp16Refusal = await refusal(hand.submitGradient(fp16, encodeGradientAs(answer(fp16), { ...encodings.gradients, codec: { codec: 'fp16' } })));
    expect(statusAndReason(fp16Refusal)).toEqual({ status: 400, reason: 'codec' });
    expect(fp16Refusal.body.error).toMatch(/codec fp16, and this run's is int8/);
    const merged = await leaseOrFail(hand, run.runId);
    const segmentsRefusal = await refusal(hand.submitGradient(merged, encodeGradientAs(answer(merged), { ...encodings.gradients, segments: [spec.paramCount] })));
    expect(statusAndReason(segmentsRefusal)).toEqual({ status: 400, reason: 'segments' });

    const worker = NodeWorker.start({ runtime: 'web', threads: 1 });
    try {
      const report = await worker.run(new ApiClient(coordinator.url, { token: run.workerToken }), run.runId);
      expect(report.state).toBe('completed');
      expect(report.rejected).toBe(0);
    } finally {
      await worker.dispose();
    }
    const final = await waitFinal(api, run.runId);
    expect(final.state).toBe('completed');
    expect(final.step).toBe(STEPS);
    const cluster = await snapshot(run.runId, STEPS);
    // Versions are served int8: what a worker reads is the round trip of the parameters.
    const served = await api.params(run.runId, STEPS);
    expect(served.encoding).toEqual(encodings.params);
    expect(Array.from(served.params)).toEqual(Array.from(roundTrip(cluster.params, encodings.params.codec, encodings.params.segments)));
    const ref = await train({ ort: await loadOrt('web', 1), data, config: CONFIG, ghostBatch: MICRO_BATCH, communication: { compression: COMPRESSION, diloco: DEFAULT_DILOCO, workers: 1 } });
    expect(ref.step).toBe(STEPS);
    const layout = trainingLayout(CONFIG.model).params;
    const err = worstTensorError(cluster.params, ref.params, initParameters(layout, CONFIG.seed), layout);
    console.log(`[compression] int8/int8 + error feedback vs simulating trainer: worst tensor error ${err.error} (${err.tensor})`);
    expect(Buffer.from(cluster.params.buffer, cluster.params.byteOffset, cluster.params.byteLength).equals(Buffer.from(ref.params.buffer, ref.params.byteOffset, ref.params.byteLength))).toBe(true);
    // ...and compression changed something: the fp32 trainer ends elsewhere.
    const plain = await train({ ort: await loadOrt('web', 1), data, config: CONFIG, ghostBatch: MICRO_BATCH });
    expect(worstTensorError(plain.params, ref.params, initParameters(layout, CONFIG.seed), layout).error).toBeGreaterThan(0);
  }, 180_000);
  }

  it('top-k with DGC momentum correction (workers keep the momentum, the coordinator runs SGD without): the run ends with the simulating trainer\'s parameters, bit for bit', async () => {
    const sgd: TrainConfig = { ...CONFIG, optimizer: { kind: 'sgd', lr: 0.05, momentum: 0, nesterov: false, weightDecay: 0 } };
    const dgc: CompressionConfig = { ...DEFAULT_COMPRESSION, gradients: 'topk', topK: 0.05, momentumCorrection: 0.9 };
    const run = await api.createRun({ ...runRequestOf(sgd), dataset: 'fixture', cluster: { microBatch: MICRO_BATCH, snapshotEvery: 1, leaseMs: 60_000, compression: dgc } });
    const worker = NodeWorker.start({ runtime: 'web', threads: 1 });
    try {
      const report = await worker.run(new ApiClient(coordinator.url, { token: run.workerToken }), run.runId);
      expect(report).toMatchObject({ state: 'completed', rejected: 0 });
    } finally {
      await worker.dispose();
    }
    const cluster = await snapshot(run.runId, STEPS);
    const ort = await loadOrt('web', 1);
    const ref = await train({ ort, data, config: sgd, ghostBatch: MICRO_BATCH, communication: { compression: dgc, diloco: DEFAULT_DILOCO, workers: 1 } });
    const layout = trainingLayout(CONFIG.model).params;
    expect(worstTensorError(cluster.params, ref.params, initParameters(layout, CONFIG.seed), layout).error).toBe(0);
    // Without the correction the same top-k run ends elsewhere: the workers' momentum counted.
    const plain = await train({ ort, data, config: sgd, ghostBatch: MICRO_BATCH, communication: { compression: { ...dgc, momentumCorrection: 0, errorFeedback: true }, diloco: DEFAULT_DILOCO, workers: 1 } });
    expect(worstTensorError(plain.params, ref.params, initParameters(layout, CONFIG.seed), layout).error).toBeGreaterThan(1e-3);
  }, 180_000);
});
