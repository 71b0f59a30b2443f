// ORT in Node: onnxruntime-web (the same wasm the workers run) or onnxruntime-node (native CPU).
import type { OrtApi } from '../../shared/onnx/session';
import { instanceMemories } from './wasm-memory';

export type OrtRuntime = 'web' | 'native';

let web: { threads: number; api: Promise<OrtApi> } | undefined;
const native = new Map<number, Promise<OrtApi>>();

function checkThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`loadOrt: threads must be a positive integer, got ${threads}`);
}

/**
 * Loads ORT for Node. 'web': onnxruntime-web with `env.wasm.numThreads = threads` (a process-wide
 * setting fixed once the wasm starts, so a later call asking for another count throws). 'native':
 * onnxruntime-node (optional dependency), every session created through the returned API defaulting
 * to `intraOpNumThreads = threads`, `interOpNumThreads = 1`.
 */
export function loadOrt(runtime: OrtRuntime, threads = 1): Promise<OrtApi> {
  checkThreads(threads);
  if (runtime === 'web') {
    if (web && web.threads !== threads) {
      throw new Error(`loadOrt('web'): onnxruntime-web is already loaded with ${web.threads} thread(s); it cannot switch to ${threads} in this process`);
    }
    web ??= { threads, api: loadWeb(threads) };
    return web.api;
  }
  if (runtime === 'native') {
    let api = native.get(threads);
    if (!api) {
      api = loadNative(threads);
      native.set(threads, api);
      api.catch(() => native.delete(threads));
    }
    return api;
  }
  throw new Error(`loadOrt: unknown runtime '${String(runtime)}' (expected 'web' or 'native')`);
}

const wasmMemories = new Set<WebAssembly.Memory>();

/**
 * Notes the linear memory of every wasm instance created from now on (imported or exported), so
 * benchmarks can report ORT's heap — the largest of them; other modules (undici's HTTP parser) are
 * tiny. The call itself is passed through unchanged.
 */
function watchWasmMemory(): void {
  const original = WebAssembly.instantiate;
  WebAssembly.instantiate = function (this: unknown, source: unknown, imports?: WebAssembly.Imports) {
    const result = (original as (...a: unknown[]) => Promise<unknown>).call(WebAssembly, source, imports);
    return result.then((r) => {
      const instance = r instanceof WebAssembly.Instance ? r : (r as { instance: WebAssembly.Instance }).instance;
      for (const m of instanceMemories(imports, instance)) wasmMemories.add(m);
      return r;
    });
  } as typeof WebAssembly.instantiate;
}

/** Bytes of onnxruntime-web's wasm heap in this process (undefined before its first session). */
export function ortWebHeapBytes(): number | undefined {
  const sizes = [...wasmMemories].map((m) => m.buffer.byteLength);
  return sizes.length ? Math.max(...sizes) : undefined;
}

async function loadWeb(threads: number): Promise<OrtApi> {
  watchWasmMemory();
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  return { InferenceSession: ort.InferenceSession, Tensor: ort.Tensor };
}

type NativeOrt = OrtApi;

async function loadNative(threads: number): Promise<OrtApi> {
  let ort: NativeOrt;
  try {
    // A variable specifier keeps bundlers and tsc from requiring the optional package.
    const name = 'onnxruntime-node';
    const mod = (await import(/* @vite-ignore */ name)) as Partial<NativeOrt> & { default?: NativeOrt };
    ort = mod.InferenceSession ? (mod as NativeOrt) : mod.default!;
  } catch (e) {
    throw new Error(
      `onnxruntime-node is not installed or failed to load (${e instanceof Error ? e.message : String(e)}); ` +
        'it is an optional dependency: install it with `npm install onnxruntime-node@1.30.0` (or use the "web" runtime)',
    );
  }
  const defaults = { intraOpNumThreads: threads, interOpNumThreads: 1 };
  const base = ort.InferenceSession;
  // create(model, options?) | create(buffer, byteOffset, byteLength?, options?): merge the thread
  // defaults into the options argument (the last one when it is an options object).
  const create = (...args: unknown[]): unknown => {
    const last = args[args.length - 1];
    const hasOptions = args.length > 1 && typeof last === 'object' && last !== null && !ArrayBuffer.isView(last) && !(last instanceof ArrayBuffer);
    if (hasOptions) args[args.length - 1] = { ...defaults, ...last };
    else if (args.length === 2 && typeof last === 'number') args.push(undefined, defaults); // (buffer, byteOffset)
    else args.push(defaults);
    return (base.create as (...a: unknown[]) => unknown)(...args);
  };
  const InferenceSession = Object.assign(Object.create(base) as object, { create }) as OrtApi['InferenceSession'];
  return { InferenceSession, Tensor: ort.Tensor };
}
