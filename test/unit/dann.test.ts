// DANN and its comparison rows, on real graphs run by onnxruntime-web: a short adversarial run stays
// bounded; each domain's batch norm sees only its own images; the target is evaluated with its own
// statistics; AdaBN averages the training graph's batch statistics; the run exports a model.
import { describe, expect, it } from 'vitest';
import { assembleCifar10, IMAGE_BYTES, type Cifar10, type CifarSplit } from '../../shared/data/cifar';
import { buildEvalGraph, buildTrainingGraph, trainingLayout } from '../../shared/models/compile';
import { initBuffers, initParameters } from '../../shared/models/params';
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from '../../shared/models/presets';
import { randomFeeds } from '../../shared/models/random-feeds';
import type { Feed } from '../../shared/onnx/session';
import { adaptBatchNorm } from '../../shared/training/adabn';
import { placeholderCaptions } from '../../shared/training/caption-feed';
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../../shared/training/config';
import { inferenceModelBytes } from '../../shared/training/export';
import { BatchFeeder } from '../../shared/training/feeder';
import { GraphRunner } from '../../shared/training/step';
import { train } from '../../shared/training/trainer';
import { TEXT_DIM } from '../../shared/models/heads';
import { fixtureFiles } from '../support/cifar-fixture';
import { runOnce, webOrt } from '../support/ort';

const BN: ModelConfig = { ...DEFAULT_MODEL_CONFIG, preset: 'bn-cnn', head: 'linear', dann: true };

/** A shifted copy: the red plane inverted, the others halved (deterministic, clearly another domain). */
function shifted(split: CifarSplit): CifarSplit {
  return { ...split, images: split.images.map((v, i) => (i % IMAGE_BYTES < 1024 ? 255 - v : v >> 1)) };
}

function fixtureDomains(perBatch: number): { data: Cifar10; target: Cifar10 } {
  const data = assembleCifar10(fixtureFiles(perBatch), 'fixture');
  return { data, target: { ...data, train: shifted(data.train), test: shifted(data.test) } };
}

const feedsWith = (feeds: Record<string, Feed>, name: string, seed: number): Record<string, Feed> => {
  const data = Float32Array.from({ length: (feeds[name].data as Float32Array).length }, (_, i) => Math.sin(i * 0.37 + seed * 11) * 2);
  return { ...feeds, [name]: { data, dims: feeds[name].dims } };
};

describe('DANN', () => {
  it('a short adversarial run stays bounded: the domain loss near ln 2 every epoch, the class loss finite', async () => {
    // Before the domain classifier read unit-length features, this run's domain loss was 0.70, 1.28,
    // 3.04, 2.31 over epochs 1–4 (0.699, 0.694, 0.693, 0.693 with them): the reversed gradient grew
    // the features to fool the classifier without bound.
    const { data, target } = fixtureDomains(60);
    const config: TrainConfig = {
      ...SEED_TRAIN_CONFIG,
      model: { ...DEFAULT_MODEL_CONFIG, head: 'align', dann: true },
      optimizer: { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
      epochs: 4,
      batch: 50,
      evalBatch: 100,
      normalization: 'cifar',
    };
    const state = await train({ ort: await webOrt(), data, target, config });
    const domain = state.history.map((r) => r.domainLoss!);
    console.log(`[dann] domain loss per epoch: ${domain.map((l) => l.toFixed(3)).join(', ')}; class loss ${state.history.map((r) => r.trainLoss.toFixed(3)).join(', ')}`);
    expect(domain).toHaveLength(4);
    for (const l of domain) expect(l).toBeLessThan(2 * Math.LN2);
    for (const r of state.history) {
      expect(Number.isFinite(r.trainLoss)).toBe(true);
      expect(r.domainAccuracy).toBeGreaterThanOrEqual(0);
      expect(r.domainAccuracy).toBeLessThanOrEqual(1);
      expect(r.targetAccuracy).toBeGreaterThanOrEqual(0);
    }
  }, 120_000);

  it('batch norm per domain: source statistics ignore the target images, target statistics ignore the source images', async () => {
    const graph = buildTrainingGraph(BN, 4);
    const sourceStats = graph.buffers.filter((b) => !b.name.startsWith('target.'));
    const targetStats = graph.buffers.filter((b) => b.name.startsWith('target.'));
    expect(targetStats.map((b) => b.name)).toEqual(sourceStats.map((b) => `target.${b.name}`));
    const feeds = randomFeeds(graph, BN.classes, 3);
    const outputs = graph.buffers.map((b) => b.statOutput);
    const base = await runOnce(graph.bytes, feeds, outputs);
    const otherTarget = await runOnce(graph.bytes, feedsWith(feeds, 'target_image', 1), outputs);
    const otherSource = await runOnce(graph.bytes, feedsWith(feeds, 'image', 2), outputs);
    const same = (a: unknown, b: unknown) => Buffer.from((a as Float32Array).buffer).equals(Buffer.from((b as Float32Array).buffer));
    for (const s of sourceStats) {
      expect(same(otherTarget[s.statOutput], base[s.statOutput]), s.name).toBe(true);
      expect(same(otherSource[s.statOutput], base[s.statOutput]), s.name).toBe(false);
    }
    for (const s of targetStats) {
      expect(same(otherSource[s.statOutput], base[s.statOutput]), s.name).toBe(true);
      expect(same(otherTarget[s.statOutput], base[s.statOutput]), s.name).toBe(false);
    }
  });

  it("evaluation reads its domain's running statistics: the target graph the target.* buffers, the source graph the others", async () => {
    const run = trainingLayout(BN);
    const params = initParameters(run.params, 4);
    const buffers = initBuffers(run.buffers);
    const changed = buffers.slice();
    let offset = 0;
    for (const b of run.buffers) {
      const size = b.shape.reduce((a, d) => a * d, 1);
      if (b.name.startsWith('target.') && b.name.endsWith('running_mean')) changed.fill(0.5, offset, offset + size);
      offset += size;
    }
    const ort = await webOrt();
    const config: TrainConfig = { ...SEED_TRAIN_CONFIG, model: BN, normalization: 'cifar' };
    const { data } = fixtureDomains(4);
    const captions = placeholderCaptions(BN.classes, BN.captionsPerClass, TEXT_DIM);
    const logitsOf = async (domain: 'source' | 'target', b: Float32Array) => {
      const graph = buildEvalGraph(BN, 4, domain);
      const runner = await GraphRunner.create(ort, graph, undefined, run);
      const feeds = new BatchFeeder(graph, config, captions, 4).feeds({ split: data.test, indices: [0, 1, 2, 3], epoch: 0, firstPosition: 0 }, false);
      try {
        return await runner.evaluate(params, b, feeds);
      } finally {
        await runner.release();
      }
    };
    expect(await logitsOf('source', changed)).toEqual(await logitsOf('source', buffers));
    expect(await logitsOf('target', changed)).not.toEqual(await logitsOf('target', buffers));
  });

  it('AdaBN re-estimates batch norm as the mean of the training graph’s batch statistics over the target images', async () => {
    const model: ModelConfig = { ...BN, dann: false };
    const config: TrainConfig = { ...SEED_TRAIN_CONFIG, model, batch: 8, normalization: 'cifar' };
    const { target } = fixtureDomains(4);
    const ort = await webOrt();
    const run = trainingLayout(model);
    const params = initParameters(run.params, 6);
    const buffers = initBuffers(run.buffers);
    const captions = placeholderCaptions(model.classes, model.captionsPerClass, TEXT_DIM);
    const adapted = (await adaptBatchNorm(ort, config, params, buffers, target.train, captions, { images: 16 }))!;

    const graph = buildTrainingGraph(model, 8);
    const runner = await GraphRunner.create(ort, graph);
    const feeder = new BatchFeeder(graph, config, captions, 8);
    const expected = new Float64Array(buffers.length);
    for (const first of [0, 8]) {
      const { stats } = await runner.step(params, buffers, feeder.feeds({ split: target.train, indices: Array.from({ length: 8 }, (_, i) => first + i), epoch: 0, firstPosition: first }, false));
      stats.forEach((v, i) => (expected[i] += v / 2));
    }
    await runner.release();
    expect(adapted).toHaveLength(buffers.length);
    for (let i = 0; i < adapted.length; i++) expect(adapted[i]).toBeCloseTo(expected[i], 5);
    expect(adapted.some((v, i) => Math.abs(v - buffers[i]) > 1e-3)).toBe(true);
    // A model without batch norm has nothing to re-estimate.
    const plain = { ...config, model: { ...model, preset: 'seed-cnn' as const } };
    expect(await adaptBatchNorm(ort, plain, initParameters(trainingLayout(plain.model).params, 6), new Float32Array(0), target.train, captions, { images: 16 })).toBeUndefined();
  });

  it("a DANN run's vectors export a model (the domain classifier left out), with the source's statistics or the target's; a source-only run has no target's", async () => {
    const run = trainingLayout(BN);
    expect(run.params.some((p) => p.name.startsWith('domain.'))).toBe(true);
    const params = initParameters(run.params, 8);
    const buffers = initBuffers(run.buffers);
    const model = inferenceModelBytes(BN, 'cifar', params, buffers);
    const pixels = Float32Array.from({ length: 3 * 1024 }, (_, i) => (i * 29) % 256);
    const logits = (await runOnce(model, { pixels: { data: pixels, dims: [1, 3, 32, 32] } })).logits as Float32Array;
    expect(logits).toHaveLength(10);
    expect(logits.every(Number.isFinite)).toBe(true);
    const target = inferenceModelBytes(BN, 'cifar', params, buffers, undefined, 'target');
    expect((await runOnce(target, { pixels: { data: pixels, dims: [1, 3, 32, 32] } })).logits).toHaveLength(10);
    expect(() => inferenceModelBytes({ ...BN, dann: false }, 'cifar', initParameters(trainingLayout({ ...BN, dann: false }).params, 8), initBuffers(trainingLayout({ ...BN, dann: false }).buffers), undefined, 'target')).toThrow(
      'target-domain statistics exist only in DANN runs',
    );
  });
});
