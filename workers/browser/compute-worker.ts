// The browser worker's compute: a Web Worker running the same LocalComputer as every other worker,
// with onnxruntime-web on WebGPU or WASM, behind comlink — the browser twin of workers/node/thread.ts.
// The page's main thread keeps the work loop, its I/O and the lease heartbeats.
import * as Comlink from 'comlink';
import type { Lease, RunSpec } from '../../shared/protocol';
import { LocalComputer, type LeaseComputer } from '../gradient/lease-computer';
import type { LeaseExamples } from '../gradient/gradient-engine';
import { loadOrtBrowser, type BrowserEp } from '../ort/browser';

export interface ComputeInit {
  readonly ep: BrowserEp;
  /** URL prefix (ending in '/') the ORT .mjs/.wasm files are served under. */
  readonly wasmPaths: string;
}

export interface ComputeInfo {
  readonly ep: BrowserEp;
  /** The WebGPU adapter this worker sees (vendor / architecture), for 'webgpu'. */
  readonly adapter?: string;
}

/** What the Web Worker exposes: a LeaseComputer, once `init` has chosen the execution provider. */
export interface BrowserCompute extends LeaseComputer {
  init(o: ComputeInit): Promise<ComputeInfo>;
}

interface GpuLike {
  requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string } } | null>;
}

let local: LocalComputer | undefined;

function computer(): LocalComputer {
  if (!local) throw new Error('browser compute: init() first');
  return local;
}

const compute: BrowserCompute = {
  async init({ ep, wasmPaths }) {
    if (local) throw new Error('browser compute: already initialised (one execution provider per Web Worker)');
    let adapter: string | undefined;
    if (ep === 'webgpu') {
      const gpu = (navigator as Navigator & { gpu?: GpuLike }).gpu;
      if (!gpu) throw new Error('WebGPU: navigator.gpu is not available in this Web Worker');
      const a = await gpu.requestAdapter();
      if (!a) throw new Error('WebGPU: navigator.gpu.requestAdapter() returned no adapter in this Web Worker');
      adapter = [a.info?.vendor, a.info?.architecture, a.info?.description].filter(Boolean).join(' / ') || 'unknown adapter';
    }
    // Loads ORT now, so that a build that cannot start fails here rather than on the first lease.
    await loadOrtBrowser(ep, wasmPaths);
    local = new LocalComputer(() => loadOrtBrowser(ep, wasmPaths));
    return { ep, ...(adapter ? { adapter } : {}) };
  },
  prepare: (spec: RunSpec, captions?: Float32Array) => computer().prepare(spec, captions),
  // Results go back as transfers (no copy of the gradient).
  async train(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples) {
    const r = await computer().train(lease, params, buffers, data);
    return Comlink.transfer(r, [r.grads.buffer, r.stats.buffer]);
  },
  evaluate: (lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples) => computer().evaluate(lease, params, buffers, data),
};

Comlink.expose(compute);
