// A tiny Worker that runs one ONNX graph per request with onnxruntime-web in workerd.
//   POST /run   body: encodeRunRequest({ model, feeds }) → encodeOutputs(outputs)
//               headers: x-run-ms (session.run), x-create-ms (session creation, 0 when cached),
//               x-session-cached: 1|0. Errors: 400 (bad frame), 500 (ORT), text/plain message.
//   GET  /heap  → { wasmHeapBytes?: number } (ORT's wasm linear memory, once started)
// Note: workerd's clock is coarse (1 ms steps under Miniflare), and deployed Workers advance it only
// on I/O, so the ms headers read 0 there for pure compute; time from the caller when it matters.
import { decodeRunRequest, encodeOutputs, type RunRequest } from '../../shared/onnx/feeds-codec';
import { GraphSession } from '../../shared/onnx/session';
import { loadOrtWorkerd, ortWasmHeapBytes } from './workerd';

/** The last model's session, reused while the same bytes come back (benchmarks send one model). */
let cached: { key: string; model: Uint8Array; session: GraphSession } | undefined;

function modelKey(model: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model[i], 0x01000193);
  return `${model.length}:${(h >>> 0).toString(16)}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function sessionFor(model: Uint8Array): Promise<{ session: GraphSession; createMs: number; reused: boolean }> {
  const key = modelKey(model);
  if (cached && cached.key === key && sameBytes(cached.model, model)) return { session: cached.session, createMs: 0, reused: true };
  const ort = await loadOrtWorkerd();
  const t0 = performance.now();
  const session = await GraphSession.create(ort, model);
  const createMs = performance.now() - t0;
  const previous = cached;
  cached = { key, model, session };
  await previous?.session.release();
  return { session, createMs, reused: false };
}

const text = (status: number, message: string) => new Response(message, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });
const errorMessage = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function run(request: Request): Promise<Response> {
  let req: RunRequest;
  try {
    req = decodeRunRequest(new Uint8Array(await request.arrayBuffer()));
  } catch (e) {
    return text(400, errorMessage(e));
  }
  try {
    const { session, createMs, reused } = await sessionFor(req.model);
    const t0 = performance.now();
    const outputs = await session.runWithDims(req.feeds);
    const runMs = performance.now() - t0;
    return new Response(encodeOutputs(outputs), {
      headers: {
        'content-type': 'application/octet-stream',
        'x-run-ms': runMs.toFixed(3),
        'x-create-ms': createMs.toFixed(3),
        'x-session-cached': reused ? '1' : '0',
      },
    });
  } catch (e) {
    return text(500, errorMessage(e));
  }
}

export default {
  async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === '/run' && request.method === 'POST') return run(request);
    if (pathname === '/heap' && request.method === 'GET') {
      const bytes = ortWasmHeapBytes();
      const gpu = (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu;
      return Response.json({ ...(bytes === undefined ? {} : { wasmHeapBytes: bytes }), webgpu: gpu !== undefined });
    }
    return text(404, 'probe-worker: POST /run or GET /heap');
  },
};
