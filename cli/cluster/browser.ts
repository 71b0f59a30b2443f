// The browser worker page (workers/browser/): bundled for the browser with esbuild, served with
// onnxruntime-web's .mjs/.wasm files next to it. The bundle is cached in .edgetrain/browser-worker/
// while its inputs (every source file esbuild read, the page, ORT's files) are unchanged.
//
//   npx tsx cli/cluster/browser.ts [--port N]   builds, serves, prints the page's URL
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, version as esbuildVersion } from 'esbuild';
import { ORT_BROWSER_FILES } from '../../workers/ort/browser';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Where the built page lives. */
export const BROWSER_WORKER_DIR = join(ROOT, '.edgetrain', 'browser-worker');
const PAGE = join(ROOT, 'workers/browser/index.html');
const ENTRIES = { main: join(ROOT, 'workers/browser/main.ts'), compute: join(ROOT, 'workers/browser/compute-worker.ts') };

interface BrowserBundleMeta {
  esbuild: string;
  /** Absolute input path → sha256 of its contents. */
  inputs: Record<string, string>;
  /** ORT file name → byte size of the copy (copies are checked by size against node_modules). */
  ort: Record<string, number>;
  /** Files of the bundle, relative to its folder. */
  files: string[];
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function ortDist(): string {
  return join(ROOT, 'node_modules/onnxruntime-web/dist');
}

const ortFiles = () => [...new Set(Object.values(ORT_BROWSER_FILES).flat())];

function upToDate(dir: string): boolean {
  const metaPath = join(dir, 'meta.json');
  if (!existsSync(metaPath)) return false;
  try {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as BrowserBundleMeta;
    if (meta.esbuild !== esbuildVersion) return false;
    for (const [path, hash] of Object.entries(meta.inputs)) if (!existsSync(path) || sha256(path) !== hash) return false;
    for (const name of ortFiles()) {
      const source = join(ortDist(), name);
      if (meta.ort[name] !== statSync(source).size || !existsSync(join(dir, name)) || statSync(join(dir, name)).size !== meta.ort[name]) return false;
    }
    return meta.files.every((f) => existsSync(join(dir, f)));
  } catch {
    return false;
  }
}

/**
 * Builds the browser worker page into .edgetrain/browser-worker/ (index.html, main.js, compute.js,
 * chunks/, ORT's .mjs and .wasm files) unless the cached build is current; returns the folder.
 */
export async function buildBrowserWorker(): Promise<string> {
  const dir = BROWSER_WORKER_DIR;
  if (upToDate(dir)) return dir;
  const result = await build({
    entryPoints: ENTRIES,
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    outdir: dir,
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    // ORT imports its Emscripten glue (.mjs) from env.wasm.wasmPaths instead of embedding it.
    conditions: ['onnxruntime-web-use-extern-wasm'],
    minify: true,
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'silent',
  });
  mkdirSync(dir, { recursive: true });
  // Old outputs go (chunk names carry hashes); the ORT copies stay when they still match.
  const keep = new Set([...ortFiles(), 'meta.json']);
  for (const entry of readdirSync(dir)) if (!keep.has(entry)) rmSync(join(dir, entry), { recursive: true, force: true });
  const files: string[] = [];
  for (const out of result.outputFiles) {
    const rel = relative(dir, out.path);
    mkdirSync(dirname(out.path), { recursive: true });
    writeFileSync(out.path, out.contents);
    files.push(rel);
  }
  copyFileSync(PAGE, join(dir, 'index.html'));
  files.push('index.html');
  const ort: Record<string, number> = {};
  for (const name of ortFiles()) {
    const source = join(ortDist(), name);
    const target = join(dir, name);
    const size = statSync(source).size;
    if (!existsSync(target) || statSync(target).size !== size) {
      copyFileSync(source, `${target}.tmp`);
      renameSync(`${target}.tmp`, target);
    }
    ort[name] = size;
    files.push(name);
  }
  const inputs: Record<string, string> = { [PAGE]: sha256(PAGE) };
  for (const input of Object.keys(result.metafile.inputs)) {
    const path = resolve(ROOT, input);
    if (existsSync(path)) inputs[path] = sha256(path);
  }
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ esbuild: esbuildVersion, inputs, ort, files } satisfies BrowserBundleMeta));
  return dir;
}

/** Bytes of each file of a built page (relative path → size), for reports. */
export function browserBundleSizes(dir = BROWSER_WORKER_DIR): Record<string, number> {
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as BrowserBundleMeta;
  return Object.fromEntries(meta.files.map((f) => [f, statSync(join(dir, f)).size]));
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
};

export interface BrowserWorkerServer {
  /** The page: http://127.0.0.1:<port>/ (append `#api=…&run=…&token=…&ep=…`). */
  readonly url: string;
  close(): Promise<void>;
}

/** Builds the page (or reuses the cached build) and serves it on 127.0.0.1 (port 0: a free one). */
export async function serveBrowserWorker(opts: { port?: number; dir?: string } = {}): Promise<BrowserWorkerServer> {
  const dir = resolve(opts.dir ?? (await buildBrowserWorker()));
  const server = createServer((req, res) => {
    const send = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'GET or HEAD only');
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      return send(400, 'bad path');
    }
    if (path.endsWith('/')) path += 'index.html';
    const file = resolve(dir, `.${path}`);
    if (!file.startsWith(dir + sep) || path.includes('\0') || file === join(dir, 'meta.json')) return send(404, 'not found');
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile()) return send(404, 'not found');
      size = st.size;
    } catch {
      return send(404, 'not found');
    }
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': String(size),
      // The page and its scripts change with each build; ORT's files only with its version.
      'cache-control': /\.(wasm|mjs)$/.test(file) ? 'public, max-age=3600' : 'no-cache',
      'x-content-type-options': 'nosniff',
    });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

