// Bundles a Worker entry the way wrangler does (esbuild, `.wasm` imports as precompiled modules,
// `cloudflare:*` external) for Miniflare; cached in the temp dir while its inputs are unchanged.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, version as esbuildVersion, type Plugin } from 'esbuild';
import type { WorkerOptions } from 'miniflare';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const COMPATIBILITY_DATE = '2026-04-01';

export interface WorkerBundle {
  readonly dir: string;
  readonly file: string;
  readonly code: string;
  /** Module name (relative to the bundle) → absolute path of the .wasm file. */
  readonly wasm: Record<string, string>;
  readonly cached: boolean;
}

interface BundleMeta {
  esbuild: string;
  /** Absolute input path → sha256 of its contents. */
  inputs: Record<string, string>;
  wasm: Record<string, string>;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function cachedBundle(dir: string, file: string): WorkerBundle | undefined {
  const metaPath = join(dir, 'meta.json');
  if (!existsSync(metaPath) || !existsSync(file)) return undefined;
  try {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as BundleMeta;
    if (meta.esbuild !== esbuildVersion) return undefined;
    for (const [path, hash] of Object.entries(meta.inputs)) if (!existsSync(path) || sha256(path) !== hash) return undefined;
    for (const path of Object.values(meta.wasm)) if (!existsSync(path)) return undefined;
    return { dir, file, code: readFileSync(file, 'utf8'), wasm: meta.wasm, cached: true };
  } catch {
    return undefined;
  }
}

/**
 * Bundles `entry` (relative to the project root) into `<tmp>/edgetrain-bundles/<checkout>/<name>/`:
 * one cache per checkout, since the cache is validated against this checkout's files (two clones
 * side by side must not serve each other's bundles).
 */
export async function bundleWorker(entry: string, name: string): Promise<WorkerBundle> {
  const dir = join(tmpdir(), 'edgetrain-bundles', createHash('sha256').update(ROOT).digest('hex').slice(0, 12), name);
  const file = join(dir, `${name}.mjs`);
  const hit = cachedBundle(dir, file);
  if (hit) return hit;

  const wasm: Record<string, string> = {};
  const wasmPlugin: Plugin = {
    name: 'compiled-wasm',
    setup(b) {
      b.onResolve({ filter: /\.wasm$/ }, (args) => {
        const path = createRequire(join(args.resolveDir, 'noop.js')).resolve(args.path);
        const moduleName = basename(path);
        if (wasm[moduleName] && wasm[moduleName] !== path) throw new Error(`two different wasm files named ${moduleName}`);
        wasm[moduleName] = path;
        return { path: `./${moduleName}`, external: true };
      });
    },
  };
  const result = await build({
    entryPoints: [join(ROOT, entry)],
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['cloudflare:*'],
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
  mkdirSync(dir, { recursive: true });
  // Written aside and renamed into place: processes bundling at once never read half a file.
  const atomically = (path: string, text: string) => {
    const part = `${path}.${process.pid}.part`;
    writeFileSync(part, text);
    renameSync(part, path);
  };
  atomically(file, code);
  atomically(join(dir, 'meta.json'), JSON.stringify({ esbuild: esbuildVersion, inputs, wasm } satisfies BundleMeta));
  return { dir, file, code, wasm, cached: false };
}

/** The Miniflare module options of a bundle: the script plus its wasm as CompiledWasm modules. */
export function bundleModules(bundle: WorkerBundle): Pick<WorkerOptions, 'modules' | 'modulesRoot'> {
  return {
    modulesRoot: bundle.dir,
    modules: [
      { type: 'ESModule', path: bundle.file, contents: bundle.code },
      ...Object.entries(bundle.wasm).map(([name, path]) => ({
        type: 'CompiledWasm' as const,
        path: join(bundle.dir, name),
        contents: new Uint8Array(readFileSync(path)),
      })),
    ],
  };
}
