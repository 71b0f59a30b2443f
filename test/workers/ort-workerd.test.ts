// onnxruntime-web inside workerd (Miniflare) must compute what it computes in Node: same wasm, one
// thread, so the loss and every gradient of a training graph should match bit for bit.
// All ORT-in-workerd checks live in this file: importing the 14 MB wasm into workerd costs seconds,
// so one Miniflare instance serves every case. A new case is one `it(...)` calling `compareRuns`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { differentiate } from '../../shared/autodiff/engine';
import { decodeRunRequest, encodeRunRequest } from '../../shared/onnx/feeds-codec';
import { GraphBuilder, numel, type Value } from '../../shared/onnx/graph';
import * as op from '../../shared/onnx/ops';
import { GraphSession, type Feed, type OrtApi } from '../../shared/onnx/session';
import { loadOrt } from '../../workers/ort/node';
import { startOrtWorkerd, type OrtWorkerd } from '../support/workerd';

/** A graph to run on both sides: model bytes, every feed, the outputs to compare. */
export interface GraphCase {
  model: Uint8Array;
  feeds: Record<string, Feed>;
  outputs: string[];
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniform(rand: () => number, n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
}

/**
 * Training graph of a tiny conv net: x [B,3,8,8] → conv 3→4 k3 p1 (+bias) → maxPool 2 → relu →
 * flatten → gemm → 10 logits; mean cross-entropy against int64 labels. Outputs `loss` and
 * `grad_<param>` for every parameter; feeds are deterministic (seeded).
 */
export function tinyConvNetTrainingGraph(batch = 4, seed = 1): GraphCase {
  const b = new GraphBuilder('tiny_convnet_train');
  const x = b.input('x', 'float32', [batch, 3, 8, 8]);
  const labels = b.input('labels', 'int64', [batch]);
  const params: Value[] = [
    b.input('conv_w', 'float32', [4, 3, 3, 3]),
    b.input('conv_b', 'float32', [4]),
    b.input('fc_w', 'float32', [10, 4 * 4 * 4]),
    b.input('fc_b', 'float32', [10]),
  ];
  const [convW, convB, fcW, fcB] = params;
  const conv = op.conv(b, x, convW, convB, { pads: [1, 1, 1, 1] });
  const [pooled] = op.maxPool(b, conv, { kernel: [2, 2] });
  const hidden = op.flatten(b, op.relu(b, pooled));
  const logits = op.gemm(b, hidden, fcW, fcB, { transB: true });
  const picked = op.mul(b, op.logSoftmax(b, logits, 1), op.oneHot(b, labels, 10));
  const loss = op.scale(b, op.reduceSum(b, picked, [0, 1], false), -1 / batch);
  const grads = differentiate(b, loss, params);
  b.output(loss, 'loss');
  params.forEach((p, i) => b.output(grads[i], `grad_${p.name}`));

  const rand = mulberry32(seed);
  const feeds: Record<string, Feed> = {
    x: { data: uniform(rand, numel(x.shape), 1), dims: x.shape },
    labels: { data: BigInt64Array.from({ length: batch }, () => BigInt(Math.floor(rand() * 10))), dims: labels.shape },
  };
  for (const p of params) feeds[p.name] = { data: uniform(rand, numel(p.shape), 1 / Math.sqrt(numel(p.shape.slice(1)) || 1)), dims: p.shape };
  return { model: b.serialize(), feeds, outputs: b.outputs.map((o) => o.name) };
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

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
  it('tiny conv net training graph: loss and every gradient match Node', async () => {
    const graph = tinyConvNetTrainingGraph();
    expect(graph.outputs).toEqual(['loss', 'grad_conv_w', 'grad_conv_b', 'grad_fc_w', 'grad_fc_b']);
    const { bitIdentical } = await compareRuns('tiny conv net B=4', graph);
    expect(bitIdentical).toBe(true);
  });

  it('reports a missing feed by name; the frame codec rejects truncated input', async () => {
    const graph = tinyConvNetTrainingGraph(2);
    const { x: _x, ...withoutX } = graph.feeds;
    await expect(workerd.run(graph.model, withoutX)).rejects.toThrow(/HTTP 500: GraphSession: missing feed 'x'/);
    const frame = encodeRunRequest(graph);
    expect(decodeRunRequest(frame).feeds.labels.data).toEqual(graph.feeds.labels.data);
    expect(() => decodeRunRequest(frame.subarray(0, frame.length - 1))).toThrow(/truncated/);
    expect(() => decodeRunRequest(frame.subarray(0, 6))).toThrow(/truncated/);
  });

  it('exposes the wasm heap and no WebGPU', async () => {
    const heap = await workerd.heap();
    expect(heap.webgpu).toBe(false);
    expect(heap.wasmHeapBytes).toBeGreaterThan(0);
  });
});
