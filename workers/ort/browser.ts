// onnxruntime-web in a browser (a Web Worker or a page), on WebGPU or on WASM.
//
// Two builds of ORT, each loaded on demand: 'wasm' is `onnxruntime-web/wasm` (ort-wasm-simd-threaded,
// the same wasm binary Node and workerd run, so CPU results are the same bits), 'webgpu' is
// `onnxruntime-web/webgpu` (ort-wasm-simd-threaded.asyncify: ORT's WebGPU execution provider, with
// the CPU provider for the nodes WebGPU does not implement, and for those it would accept but cannot
// run: see webGpuProvider). Bundled with the
// `onnxruntime-web-use-extern-wasm` condition, ORT imports its Emscripten glue (.mjs) and fetches its
// .wasm from `wasmPaths`, where the page's server puts them (cli/cluster/browser.ts). One thread: no
// SharedArrayBuffer, so no cross-origin isolation is needed; no proxy worker (this already runs in one).
import type { OrtApi, SessionOptions } from '../../shared/onnx/session';
import { onnxNodes } from '../../shared/onnx/proto-read';

export type BrowserEp = 'webgpu' | 'wasm';

type OrtWeb = typeof import('onnxruntime-web');

/** The ORT files each execution provider's build fetches from `wasmPaths`. */
export const ORT_BROWSER_FILES: Record<BrowserEp, readonly string[]> = {
  wasm: ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'],
  webgpu: ['ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'],
};

const loaded = new Map<BrowserEp, Promise<OrtApi>>();

/**
 * ORT for one execution provider (idempotent per provider). Every session created through the
 * returned API runs on `ep` (`executionProviders` is merged into its options; the caller's own
 * options win). `wasmPaths`: the URL prefix (ending in '/') the ORT files are served under.
 */
export function loadOrtBrowser(ep: BrowserEp, wasmPaths: string): Promise<OrtApi> {
  if (ep !== 'webgpu' && ep !== 'wasm') throw new Error(`loadOrtBrowser: unknown execution provider '${String(ep)}' (expected 'webgpu' or 'wasm')`);
  let api = loaded.get(ep);
  if (!api) {
    api = load(ep, wasmPaths);
    api.catch(() => loaded.delete(ep));
    loaded.set(ep, api);
  }
  return api;
}

async function load(ep: BrowserEp, wasmPaths: string): Promise<OrtApi> {
  const ort = (ep === 'webgpu' ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web/wasm')) as unknown as OrtWeb;
  ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  const base = ort.InferenceSession;
  // create(model, options?) | create(buffer, byteOffset, byteLength?, options?): the EP goes into the
  // options argument (the last one when it is an options object), as loadOrt('native') does threads.
  const create = (...args: unknown[]): unknown => {
    const defaults: SessionOptions = { executionProviders: [ep === 'webgpu' ? webGpuProvider(modelBytes(args)) : 'wasm'] };
    const last = args[args.length - 1];
    const hasOptions = args.length > 1 && typeof last === 'object' && last !== null && !ArrayBuffer.isView(last) && !(last instanceof ArrayBuffer);
    if (hasOptions) args[args.length - 1] = { ...defaults, ...last };
    else if (args.length === 2 && typeof last === 'number') args.push(undefined, defaults);
    else args.push(defaults);
    return (base.create as (...a: unknown[]) => unknown)(...args);
  };
  const InferenceSession = Object.assign(Object.create(base) as object, { create }) as OrtApi['InferenceSession'];
  return { InferenceSession, Tensor: ort.Tensor };
}

/** The model bytes of an InferenceSession.create call (a URL string gives none). */
function modelBytes(args: unknown[]): Uint8Array | undefined {
  const [first, offset, length] = args;
  if (first instanceof Uint8Array) return first;
  if (first instanceof ArrayBuffer) return typeof offset === 'number' ? new Uint8Array(first, offset, typeof length === 'number' ? length : undefined) : new Uint8Array(first);
  return undefined;
}

/**
 * The WebGPU execution provider, with the nodes its kernels accept but cannot compute kept on the CPU
 * provider (`forceCpuNodeNames`; ORT otherwise assigns them to WebGPU and fails at run time):
 *  - MaxPool with its Indices output (the max-pool gradient rule scatters at the argmax indices):
 *    "pool.cc ComputeInternal: The Indices output is not supported yet" in 1.30.
 */
export function webGpuProvider(model: Uint8Array | undefined): { name: 'webgpu'; forceCpuNodeNames?: string[] } {
  if (!model) return { name: 'webgpu' };
  const forced = onnxNodes(model)
    .filter((n) => n.opType === 'MaxPool' && (n.outputs[1] ?? '') !== '')
    .map((n) => n.name);
  return forced.length ? { name: 'webgpu', forceCpuNodeNames: forced } : { name: 'webgpu' };
}
