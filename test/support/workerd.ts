// Runs workers/ort/probe-worker.ts inside workerd (Miniflare) for tests and benchmarks.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, version as esbuildVersion, type Plugin } from 'esbuild';
import { Miniflare } from 'miniflare';
import { decodeOutputs, encodeRunRequest } from '../../shared/onnx/feeds-codec';
import type { Feed } from '../../shared/onnx/session';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ENTRY = join(ROOT, 'workers/ort/probe-worker.ts');
const CACHE_DIR = join(tmpdir(), 'edgetrain-ort-workerd');
const BUNDLE_NAME = 'probe-worker.mjs';
export const COMPATIBILITY_DATE = '2026-04-01';

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

interface BundleMeta {
  esbuild: string;
  /** Absolute input path → sha256 of its contents. */
  inputs: Record<string, string>;
  /** Module name (relative to the bundle) → absolute path of the .wasm file. */
  wasm: Record<string, string>;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function cachedBundle(): { code: string; meta: BundleMeta } | undefined {
  const metaPath = join(CACHE_DIR, 'meta.json');
  const bundlePath = join(CACHE_DIR, BUNDLE_NAME);
  if (!existsSync(metaPath) || !existsSync(bundlePath)) return undefined;
  try {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as BundleMeta;
    if (meta.esbuild !== esbuildVersion) return undefined;
    for (const [path, hash] of Object.entries(meta.inputs)) if (!existsSync(path) || sha256(path) !== hash) return undefined;
    for (const path of Object.values(meta.wasm)) if (!existsSync(path)) return undefined;
    return { code: readFileSync(bundlePath, 'utf8'), meta };
  } catch {
    return undefined;
  }
}

/** Bundles the probe worker (cached in the temp dir while its inputs are unchanged). */
export async function bundleProbeWorker(): Promise<{ code: string; wasm: Record<string, string>; cached: boolean }> {
  const hit = cachedBundle();
  if (hit) return { code: hit.code, wasm: hit.meta.wasm, cached: true };

  const wasm: Record<string, string> = {};
  // `.wasm` imports stay imports of a sibling module, handed to Miniflare as CompiledWasm (as wrangler does).
  const wasmPlugin: Plugin = {
    name: 'compiled-wasm',
    setup(b) {
      b.onResolve({ filter: /\.wasm$/ }, (args) => {
        const path = createRequire(join(args.resolveDir, 'noop.js')).resolve(args.path);
        const name = basename(path);
        if (wasm[name] && wasm[name] !== path) throw new Error(`two different wasm files named ${name}`);
        wasm[name] = path;
        return { path: `./${name}`, external: true };
      });
    },
  };
  const result = await build({
    entryPoints: [ENTRY],
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    plugins: [wasmPlugin],
    metafile: true,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0].text;
  const inputs: Record<string, string> = {};
  for (const input of Object.keys(result.metafile.inputs)) {
    const path = resolve(ROOT, input);
    if (existsSync(path)) inputs[path] = sha256(path);
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  writeFileSync(join(CACHE_DIR, BUNDLE_NAME), code);
  writeFileSync(join(CACHE_DIR, 'meta.json'), JSON.stringify({ esbuild: esbuildVersion, inputs, wasm } satisfies BundleMeta));
  return { code, wasm, cached: false };
}

/** Starts workerd with the probe worker; `run` posts one graph + feeds and decodes the outputs. */
export async function startOrtWorkerd(): Promise<OrtWorkerd> {
  const { code, wasm } = await bundleProbeWorker();
  const mf = new Miniflare({
    modulesRoot: CACHE_DIR,
    modules: [
      { type: 'ESModule', path: join(CACHE_DIR, BUNDLE_NAME), contents: code },
      ...Object.entries(wasm).map(([name, path]) => ({
        type: 'CompiledWasm' as const,
        path: join(CACHE_DIR, name),
        contents: new Uint8Array(readFileSync(path)),
      })),
    ],
    compatibilityDate: COMPATIBILITY_DATE,
  });
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
