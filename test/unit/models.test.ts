import { describe, expect, it } from 'vitest';
import { buildEvalGraph, buildInferenceModel, buildTrainingGraph, trainingLayout } from '../../shared/models/compile';
import { flatLayout, initBuffers, initParameters } from '../../shared/models/params';
import { DEFAULT_MODEL_CONFIG, HEAD_NAMES, PRESET_NAMES, checkModelConfig, type ModelConfig } from '../../shared/models/presets';
import { randomFeeds } from '../../shared/models/random-feeds';
import { CIFAR10_NORMALIZATION, normalizationTable } from '../../shared/data/normalize';
import { runOnce } from '../support/ort';

const config = (over: Partial<ModelConfig>): ModelConfig => ({ ...DEFAULT_MODEL_CONFIG, ...over });

describe('model presets', () => {
  it("seed-cnn with a 10-way linear classifier has the seed's 545,098 parameters", () => {
    const graph = buildTrainingGraph(config({ head: 'linear' }), 2);
    expect(flatLayout(graph.params).size).toBe(545_098);
    expect(graph.params.map((p) => p.name)).toEqual([
      'conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias', 'fc1.weight', 'fc1.bias', 'classifier.weight', 'classifier.bias',
    ]);
  });

  it('the training graph of the same preset has the same bytes', () => {
    const a = buildTrainingGraph(config({ head: 'attention', dann: true }), 8);
    const b = buildTrainingGraph(config({ head: 'attention', dann: true }), 8);
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
    const other = buildTrainingGraph(config({ head: 'attention', dann: true }), 16);
    expect(Buffer.from(other.bytes).equals(Buffer.from(a.bytes))).toBe(false);
  });

  it('outputs loss, correct, a gradient per parameter and batch statistics per buffer', () => {
    const graph = buildTrainingGraph(config({ preset: 'res-cnn', head: 'linear' }), 2);
    expect(graph.outputs.slice(0, 2)).toEqual(['loss', 'correct']);
    expect(graph.outputs.filter((o) => o.startsWith('grad.'))).toHaveLength(graph.params.length);
    expect(graph.outputs.filter((o) => o.startsWith('stat.'))).toEqual(graph.buffers.map((b) => `stat.${b.name}`));
    expect(graph.buffers.length).toBeGreaterThan(0);
  });

  it('bn-cnn is seed-cnn with batch norm after each conv: its parameters, 4 buffers of running statistics, and batch statistics that differ per batch', async () => {
    const c = config({ preset: 'bn-cnn', head: 'linear' });
    const graph = buildTrainingGraph(c, 4);
    expect(graph.params.map((p) => p.name)).toEqual([
      'conv1.weight', 'conv1.bn.weight', 'conv1.bn.bias', 'conv2.weight', 'conv2.bn.weight', 'conv2.bn.bias', 'fc1.weight', 'fc1.bias', 'classifier.weight', 'classifier.bias',
    ]);
    // seed-cnn's 545,098 less the two conv biases (32 + 64), plus γ and β per channel.
    expect(flatLayout(graph.params).size).toBe(545_098 - 96 + 2 * 96);
    expect(graph.buffers.map((b) => b.name)).toEqual(['conv1.bn.running_mean', 'conv1.bn.running_var', 'conv2.bn.running_mean', 'conv2.bn.running_var']);
    const feeds = randomFeeds(graph, c.classes, 5);
    const out = await runOnce(graph.bytes, feeds);
    expect(Number.isFinite(out.loss[0])).toBe(true);
    const mean = out['stat.conv1.bn.running_mean'] as Float32Array;
    const variance = out['stat.conv1.bn.running_var'] as Float32Array;
    expect(mean).toHaveLength(32);
    expect(Math.max(...variance)).toBeGreaterThan(0);
    // Statistics of the batch, not constants: another batch gives others.
    const other = await runOnce(graph.bytes, randomFeeds(graph, c.classes, 6));
    expect(Buffer.from((other['stat.conv1.bn.running_mean'] as Float32Array).buffer).equals(Buffer.from(mean.buffer))).toBe(false);
  });

  it.each(HEAD_NAMES.flatMap((head) => [false, true].map((dann) => [head, dann] as const)))(
    'seed-cnn / %s (dann %s): training, eval and inference graphs run and agree',
    async (head, dann) => {
      const c = config({ head, dann });
      const train = buildTrainingGraph(c, 4);
      const feeds = randomFeeds(train, c.classes, 5);
      const out = await runOnce(train.bytes, feeds);
      expect(Number.isFinite(out.loss[0])).toBe(true);
      expect(train.dataInputs.map((d) => d.name)).toEqual(
        expect.arrayContaining(dann ? ['image', 'label', 'target_image', 'lambda'] : ['image', 'label']),
      );

      const evalGraph = buildEvalGraph(c, 4);
      const evalOut = await runOnce(evalGraph.bytes, feeds);
      // The model is made from the run's vectors: with DANN, the domain classifier's parameters too.
      const run = trainingLayout(c);
      const params = initParameters(run.params, 5);
      const text = new Map<string, Float32Array>();
      for (const d of evalGraph.dataInputs) if (d.name === 'class_text' || d.name === 'class_texts') text.set(d.name, feeds[d.name].data as Float32Array);
      const model = buildInferenceModel(c, { params, buffers: initBuffers(run.buffers), text }, 4);
      const modelFeeds = { image: feeds.image, ...(head === 'concat' ? { caption: feeds.caption } : {}) };
      const inference = await runOnce(model, modelFeeds);
      // Baked weights let ORT pre-pack and fold constants: equal up to float32 rounding.
      const logits = inference.logits as Float32Array;
      const reference = evalOut.logits as Float32Array;
      expect(logits.length).toBe(reference.length);
      expect(Math.max(...logits.map((v, i) => Math.abs(v - reference[i])))).toBeLessThan(1e-5);
      const probs = inference.probabilities as Float32Array;
      expect(probs.subarray(0, 10).reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
    },
  );

  it('an inference model with the normalisation baked in takes raw pixels and equals the eval graph on normalised images', async () => {
    const c = config({ head: 'align' });
    const evalGraph = buildEvalGraph(c, 2);
    const feeds = randomFeeds(evalGraph, c.classes, 5);
    const table = normalizationTable(CIFAR10_NORMALIZATION);
    const pixels = Float32Array.from({ length: 2 * 3 * 1024 }, (_, i) => (i * 37) % 256);
    const image = pixels.map((v, i) => table[Math.floor(i / 1024) % 3 * 256 + v]);
    const params = initParameters(evalGraph.params, 5);
    const text = new Map<string, Float32Array>();
    for (const d of evalGraph.dataInputs) if (d.name === 'class_text' || d.name === 'class_texts') text.set(d.name, feeds[d.name].data as Float32Array);
    const model = buildInferenceModel(c, { params, buffers: initBuffers(evalGraph.buffers), text, pixels: table }, 2);
    const fromPixels = (await runOnce(model, { pixels: { data: pixels, dims: [2, 3, 32, 32] } })).logits as Float32Array;
    const reference = (await runOnce(evalGraph.bytes, { ...feeds, image: { data: image, dims: [2, 3, 32, 32] } })).logits as Float32Array;
    expect(Math.max(...fromPixels.map((v, i) => Math.abs(v - reference[i])))).toBeLessThan(1e-5);
  });

  it('unknown preset or head names the valid choices', () => {
    expect(() => checkModelConfig(config({ preset: 'vgg' }))).toThrow(`preset: 'vgg' is not one of ${PRESET_NAMES.join(', ')}`);
    expect(() => buildTrainingGraph(config({ head: 'mlp' }), 2)).toThrow(`head: 'mlp' is not one of ${HEAD_NAMES.join(', ')}`);
  });

  it('the inference model rejects weights of the wrong size', () => {
    expect(() => buildInferenceModel(config({ head: 'linear' }), { params: new Float32Array(10), buffers: new Float32Array(0) })).toThrow(
      "inference model: parameters has 10 values, the run's layout needs 545098",
    );
  });
});
