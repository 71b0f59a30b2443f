// Runs workers/ort/probe-worker.ts inside workerd (Miniflare) for tests and benchmarks.
import { Miniflare } from 'miniflare';
import { COMPATIBILITY_DATE, bundleModules, bundleWorker } from './bundle';
import { decodeOutputs, encodeRunRequest } from '../../shared/onnx/feeds-codec';
import type { Feed } from '../../shared/onnx/session';


export interface WorkerdRun {
  outputs: Record<string, Feed>;
  /** Round trip measured in Node: encode, dispatch, session.run in workerd, decode. */
  ms: number;
  /** The worker's own x-run-ms around session.run (workerd's clock has 1 ms steps). */
  workerMs: number;
  /** Whether the worker reused its session for these model bytes. */
  sessionCached: boolean;
}

export interface OrtWorkerd {
  run(model: Uint8Array, feeds: Record<string, Feed>): Promise<WorkerdRun>;
  /** ORT's wasm heap size in workerd and whether navigator.gpu exists there. */
  heap(): Promise<{ wasmHeapBytes?: number; webgpu: boolean }>;
  dispose(): Promise<void>;
}

/** Bundles the probe worker (cached while its inputs are unchanged). */
const bundleProbeWorker = () => bundleWorker('workers/ort/probe-worker.ts', 'probe-worker');

/** Starts workerd with the probe worker; `run` posts one graph + feeds and decodes the outputs. */
export async function startOrtWorkerd(): Promise<OrtWorkerd> {
  const mf = new Miniflare({ ...bundleModules(await bundleProbeWorker()), compatibilityDate: COMPATIBILITY_DATE });
  await mf.ready;

  return {
    async run(model, feeds) {
      const t0 = performance.now();
      const res = await mf.dispatchFetch('http://probe/run', { method: 'POST', body: encodeRunRequest({ model, feeds }) });
      if (!res.ok) throw new Error(`probe worker: HTTP ${res.status}: ${await res.text()}`);
      const outputs = decodeOutputs(new Uint8Array(await res.arrayBuffer()));
      return {
        outputs,
        ms: performance.now() - t0,
        workerMs: Number(res.headers.get('x-run-ms')),
        sessionCached: res.headers.get('x-session-cached') === '1',
      };
    },
    async heap() {
      const res = await mf.dispatchFetch('http://probe/heap');
      if (!res.ok) throw new Error(`probe worker: HTTP ${res.status}: ${await res.text()}`);
      return (await res.json()) as { wasmHeapBytes?: number; webgpu: boolean };
    },
    dispose: () => mf.dispose(),
  };
}
