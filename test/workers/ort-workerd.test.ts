// onnxruntime-web inside workerd (Miniflare) must compute what it computes in Node: same wasm, one
// thread, so the loss and every gradient of a training graph should match bit for bit.
// All ORT-in-workerd checks live in this file: importing the 14 MB wasm into workerd costs seconds,
// so one Miniflare instance serves every case. A new case is one `it(...)` calling `compareRuns`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTrainingGraph } from '../../shared/models/compile';
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from '../../shared/models/presets';
import { randomFeeds } from '../../shared/models/random-feeds';
import { decodeRunRequest, encodeRunRequest } from '../../shared/onnx/feeds-codec';
import { GraphSession, type Feed, type OrtApi } from '../../shared/onnx/session';
import { loadOrt } from '../../workers/ort/node';
import { startOrtWorkerd, type OrtWorkerd } from '../../cli/cluster/ort-probe';
import { median } from '../../shared/stats';

/** A graph to run on both sides: model bytes, every feed, the outputs to compare. */
export interface GraphCase {
  model: Uint8Array;
  feeds: Record<string, Feed>;
  outputs: string[];
}

/** A preset's real training graph with seeded parameters and data. */
function presetTrainingGraph(config: ModelConfig, batch: number, seed = 1): GraphCase {
  const graph = buildTrainingGraph(config, batch);
  return { model: graph.bytes, feeds: randomFeeds(graph, config.classes, seed), outputs: [...graph.outputs] };
}

let workerd: OrtWorkerd;
let nodeOrt: OrtApi;
let startMs = 0;
let firstRunPending = true;

beforeAll(async () => {
  const t0 = performance.now();
  workerd = await startOrtWorkerd();
  startMs = performance.now() - t0;
  nodeOrt = await loadOrt('web', 1);
});

afterAll(async () => {
  await workerd?.dispose();
});


/**
 * Runs `graph` in Node (onnxruntime-web, one thread) and in workerd and asserts every output
 * matches within 1e-6 of its scale; `timedRuns` more runs per side give the per-run medians.
 */
async function compareRuns(label: string, graph: GraphCase, timedRuns = 10): Promise<{ bitIdentical: boolean }> {
  const session = await GraphSession.create(nodeOrt, graph.model);
  try {
    const fromNode = await session.run(graph.feeds, graph.outputs);
    const first = await workerd.run(graph.model, graph.feeds);
    if (firstRunPending) {
      firstRunPending = false;
      console.log(`[ort-workerd] miniflare start ${startMs.toFixed(0)} ms, first run ${first.ms.toFixed(0)} ms (session creation included)`);
    }

    let bitIdentical = true;
    for (const name of graph.outputs) {
      const a = fromNode[name];
      const w = first.outputs[name];
      expect(w, `output ${name} from workerd`).toBeDefined();
      expect(w.data.constructor).toBe(a.constructor);
      expect(w.data.length, `length of ${name}`).toBe(a.length);
      let scale = 1;
      let maxDiff = 0;
      for (let i = 0; i < a.length; i++) {
        const av = Number(a[i]);
        const wv = Number(w.data[i]);
        expect(Number.isFinite(wv), `${name}[${i}] finite`).toBe(true);
        scale = Math.max(scale, Math.abs(av));
        maxDiff = Math.max(maxDiff, Math.abs(av - wv));
        if (!Object.is(av, wv)) bitIdentical = false;
      }
      expect(maxDiff, `max |node - workerd| of ${name}`).toBeLessThanOrEqual(1e-6 * scale);
    }

    const nodeMs: number[] = [];
    const workerdMs: number[] = [];
    const inWorkerMs: number[] = [];
    for (let i = 0; i < timedRuns; i++) {
      const t0 = performance.now();
      await session.run(graph.feeds, graph.outputs);
      nodeMs.push(performance.now() - t0);
      const r = await workerd.run(graph.model, graph.feeds);
      expect(r.sessionCached).toBe(true);
      workerdMs.push(r.ms);
      inWorkerMs.push(r.workerMs);
    }
    if (timedRuns > 0) {
      console.log(
        `[ort-workerd] ${label}: per-run median node ${median(nodeMs).toFixed(2)} ms, workerd ${median(workerdMs).toFixed(2)} ms round trip / ${median(inWorkerMs).toFixed(0)} ms in-worker (1 ms clock), bit-identical ${bitIdentical}`,
      );
    }
    return { bitIdentical };
  } finally {
    await session.release();
  }
}

describe('onnxruntime-web inside workerd', () => {
  it('seed-cnn/align training graph (batch 16): loss and every gradient match Node bit for bit', async () => {
    const graph = presetTrainingGraph(DEFAULT_MODEL_CONFIG, 16);
    expect(graph.outputs.filter((o) => o.startsWith('grad.'))).toHaveLength(11);
    const { bitIdentical } = await compareRuns('seed-cnn/align B=16', graph, 3);
    expect(bitIdentical).toBe(true);
  });

  it('res-cnn/attention + DANN training graph (batch 4): loss, gradients and batch statistics match Node', async () => {
    const graph = presetTrainingGraph({ ...DEFAULT_MODEL_CONFIG, preset: 'res-cnn', head: 'attention', dann: true }, 4);
    expect(graph.outputs.some((o) => o.startsWith('stat.'))).toBe(true);
    const { bitIdentical } = await compareRuns('res-cnn/attention+dann B=4', graph, 0);
    expect(bitIdentical).toBe(true);
  });

  it('reports a missing feed by name; the frame codec rejects truncated input', async () => {
    const graph = presetTrainingGraph({ ...DEFAULT_MODEL_CONFIG, head: 'linear' }, 2);
    const { image: _image, ...withoutImage } = graph.feeds;
    await expect(workerd.run(graph.model, withoutImage)).rejects.toThrow(/HTTP 500: GraphSession: missing feed 'image'/);
    const frame = encodeRunRequest(graph);
    expect(decodeRunRequest(frame).feeds.label.data).toEqual(graph.feeds.label.data);
    expect(() => decodeRunRequest(frame.subarray(0, frame.length - 1))).toThrow(/truncated/);
    expect(() => decodeRunRequest(frame.subarray(0, 6))).toThrow(/truncated/);
  });

  it('exposes the wasm heap and no WebGPU', async () => {
    const heap = await workerd.heap();
    expect(heap.webgpu).toBe(false);
    expect(heap.wasmHeapBytes).toBeGreaterThan(0);
  });
});
