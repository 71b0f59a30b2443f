// The Node worker runtime's compute thread: ORT runs here, behind comlink, so the worker's main thread
// stays free for lease heartbeats and I/O while a step computes.
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { Lease, RunSpec } from '../../shared/protocol';
import { LocalComputer, type LeaseComputer } from '../gradient/lease-computer';
import type { LeaseExamples } from '../gradient/gradient-engine';
import { loadOrt, type OrtRuntime } from '../ort/node';

export interface ThreadOptions {
  readonly runtime: OrtRuntime;
  readonly threads: number;
}

const { runtime, threads } = workerData as ThreadOptions;
const local = new LocalComputer(() => loadOrt(runtime, threads));

// Results go back as transfers (no copy of the gradient).
const computer: LeaseComputer = {
  prepare: (spec: RunSpec, captions?: Float32Array) => local.prepare(spec, captions),
  async train(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples) {
    const r = await local.train(lease, params, buffers, data);
    return Comlink.transfer(r, [r.grads.buffer, r.stats.buffer]);
  },
  evaluate: (lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples) => local.evaluate(lease, params, buffers, data),
};

Comlink.expose(computer, nodeEndpoint(parentPort!));
