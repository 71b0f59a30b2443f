// onnxruntime-web inside workerd (Cloudflare Workers).
//
// workerd forbids compiling WebAssembly from bytes at run time and has no `import.meta.url`, so ORT
// cannot fetch and compile its wasm itself. The bundler hands us the wasm precompiled (a `.wasm`
// import is a WebAssembly.Module under wrangler, and under Miniflare's CompiledWasm modules), and we
// make ORT instantiate that module:
//  - `env.wasm.wasmBinary` is set to a sentinel (the 8-byte wasm header). A wasmBinary makes ORT use
//    the Emscripten glue embedded in the `onnxruntime-web/wasm` bundle (no dynamic import of the
//    .mjs) and skip every URL/fetch path; Emscripten then calls WebAssembly.instantiate(sentinel).
//  - WebAssembly.instantiate is wrapped narrowly: called with exactly the sentinel bytes it
//    instantiates the precompiled module instead; every other call goes to the original.
// One thread (no SharedArrayBuffer workers in workerd), no proxy worker, no WebGPU.
import * as ortWasm from 'onnxruntime-web/wasm';
import ortWasmModule from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
import { instanceMemories } from './wasm-memory';

export type OrtWeb = typeof import('onnxruntime-web');

/** The wasm magic and version: an empty module's header, never a real ORT binary. */
const SENTINEL = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);

let loading: Promise<OrtWeb> | undefined;
let hooked = false;
let wasmMemory: WebAssembly.Memory | undefined;

function isSentinel(source: unknown): boolean {
  let bytes: Uint8Array | undefined;
  if (source instanceof Uint8Array) bytes = source;
  else if (source instanceof ArrayBuffer) bytes = new Uint8Array(source);
  else if (ArrayBuffer.isView(source)) bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (!bytes || bytes.byteLength !== SENTINEL.byteLength) return false;
  return bytes.every((b, i) => b === SENTINEL[i]);
}

function hookInstantiate(module: WebAssembly.Module): void {
  if (hooked) return;
  hooked = true;
  const original = WebAssembly.instantiate;
  const instantiate = function (this: unknown, source: unknown, imports?: WebAssembly.Imports) {
    if (!isSentinel(source)) return (original as (...a: unknown[]) => unknown).call(WebAssembly, source, imports);
    return original.call(WebAssembly, module, imports).then((instance) => {
      wasmMemory = instanceMemories(imports, instance)[0];
      return { instance, module };
    });
  };
  WebAssembly.instantiate = instantiate as typeof WebAssembly.instantiate;
}

/**
 * onnxruntime-web configured for workerd (idempotent: every call returns the same module). The
 * wasm runtime itself starts on the first InferenceSession.create.
 */
export function loadOrtWorkerd(): Promise<OrtWeb> {
  loading ??= (async () => {
    if (!(ortWasmModule instanceof WebAssembly.Module)) {
      throw new Error(
        'loadOrtWorkerd: importing ort-wasm-simd-threaded.wasm did not give a WebAssembly.Module; bundle it as a CompiledWasm module (wrangler does by default; with esbuild mark *.wasm external)',
      );
    }
    hookInstantiate(ortWasmModule);
    const ort = ortWasm as unknown as OrtWeb;
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmBinary = SENTINEL.slice();
    return ort;
  })().catch((e: unknown) => {
    loading = undefined;
    throw e;
  });
  return loading;
}

/** Bytes of ORT's wasm linear memory, once the runtime has started (undefined before). */
export function ortWasmHeapBytes(): number | undefined {
  return wasmMemory?.buffer.byteLength;
}
