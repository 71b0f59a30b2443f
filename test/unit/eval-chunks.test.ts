// An eval lease runs the eval graph in chunks of cluster.evalGraphBatch and sums: the same loss sum
// and correct count as one graph over the whole lease (real graphs on onnxruntime-web WASM).
import { describe, expect, it } from 'vitest';
import type { DatasetManifest } from '../../shared/data/blocks';
import { parseCifarBatch } from '../../shared/data/cifar';
import { buildTrainingGraph } from '../../shared/models/compile';
import { flatLayout, initBuffers, initParameters } from '../../shared/models/params';
import { resolveRunConfig, type Lease, type RunSpec } from '../../shared/protocol';
import { evalGraphBatch } from '../../shared/memory-budget';
import { GradientEngine } from '../../workers/gradient/gradient-engine';
import { makeBatch } from '../support/cifar-fixture';
import { webOrt } from '../support/ort';

const N = 100;
const model = { preset: 'bn-cnn', head: 'linear' };

function specWith(evalGraphBatch: number): RunSpec {
  const config = resolveRunConfig({ model, batch: 32, evalBatch: N, cluster: { microBatch: 32, evalGraphBatch } });
  const graph = buildTrainingGraph(config.train.model, 32);
  return { runId: `chunks-${evalGraphBatch}`, config, dataset: {} as DatasetManifest, paramCount: flatLayout(graph.params).size, bufferCount: flatLayout(graph.buffers).size };
}

describe('GradientEngine.evaluate in chunks', () => {
  it('sums chunks (with a ragged tail) to the one-graph result', async () => {
    const ort = await webOrt();
    const whole = await GradientEngine.create(ort, specWith(N));
    const chunked = await GradientEngine.create(ort, specWith(30));
    const graph = buildTrainingGraph(whole.spec.config.train.model, 32);
    // Scaled up so that logits spread and the loss depends clearly on the parameters.
    const params = initParameters(graph.params, 3).map((v) => 4 * v);
    // Running statistics away from their initial values, so that eval reads them.
    const buffers = initBuffers(graph.buffers).map((v, i) => v + 0.1 * Math.sin(i));
    const data = { examples: parseCifarBatch(makeBatch(1000, N), 'fixture') };
    const lease = { kind: 'eval', indices: Array.from({ length: N }, (_, i) => i), epoch: 0, firstPosition: 0 } as unknown as Lease;
    try {
      const a = await whole.evaluate(lease, params, buffers, data);
      const b = await chunked.evaluate(lease, params, buffers, data);
      expect(a.count).toBe(N);
      expect(b.count).toBe(N);
      expect(a.lossSum).toBeGreaterThan(0);
      expect(b.correct).toBe(a.correct);
      expect(Math.abs(b.lossSum - a.lossSum) / a.lossSum).toBeLessThan(1e-5);
      // A different parameter set gives a different sum: the comparison above is not of constants.
      const c = await chunked.evaluate(lease, initParameters(graph.params, 4).map((v) => 4 * v), buffers, data);
      expect(Math.abs(c.lossSum - a.lossSum) / a.lossSum).toBeGreaterThan(1e-3);
    } finally {
      await whole.release();
      await chunked.release();
    }
  }, 60_000);

  it('defaults to the preset’s Workers eval graph batch', () => {
    expect(evalGraphBatch(specWith(0).config)).toBe(50);
    expect(evalGraphBatch(resolveRunConfig({ model: { preset: 'res-cnn' } }))).toBe(16);
    expect(evalGraphBatch(specWith(7).config)).toBe(7);
  });
});
