// The API Worker's static assets (wrangler.toml [assets]): the browser worker page under /worker/, so
// volunteers join from the deployment itself. Built from the CLI's page (./browser.ts) into
// dist/assets/, with ORT's WASM build only (its WebGPU build is over Cloudflare's per-file limit), the
// page told that its API is its own origin, and a _headers file.
//
//   npm run build:browser    (npx tsx cli/cluster/deploy-assets.ts)
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ORT_BROWSER_FILES } from '../../workers/ort/browser';
import { buildBrowserWorker } from './browser';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** wrangler.toml's `[assets] directory`. */
export const ASSETS_DIR = join(ROOT, 'dist', 'assets');
/** Where the page lives on the API's origin (not `/`, the dashboard, nor `/v1/*`, the API). */
export const PAGE_PATH = '/worker/';

/**
 * "Individual Static Asset file size: 25 MiB"
 * (https://developers.cloudflare.com/workers/platform/limits/#account-plan-limits).
 */
export const ASSET_FILE_LIMIT = 25 * 1024 * 1024;

/** ORT's WebGPU build (ort-wasm-simd-threaded.asyncify.wasm, 26.8 MB) is over the limit: WASM only. */
const SHIPPED_EPS = ['wasm'] as const;
const SKIPPED = new Set([...ORT_BROWSER_FILES.webgpu, 'meta.json']);

/**
 * COOP/COEP make the page cross-origin isolated (SharedArrayBuffer, which multi-threaded WASM needs);
 * the page reaches only its own origin, so require-corp costs it nothing.
 * Format: https://developers.cloudflare.com/workers/static-assets/headers/
 */
const HEADERS = `${PAGE_PATH}*
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
  X-Content-Type-Options: nosniff
`;

/** The page's settings, read by workers/browser/main.ts from these meta tags. */
const PAGE_META = `<meta name="edgetrain-api" content="same-origin" />\n    <meta name="edgetrain-eps" content="${SHIPPED_EPS.join(',')}" />\n    `;

/**
 * A run's join link on an API that serves the page: `<api>/worker/#run=…&token=…` (the page reaches
 * the API on its own origin). The fragment never reaches a server. Without a token the page asks for it.
 */
export function joinLink(api: string, runId: string, workerToken: string | undefined, ep?: 'auto' | 'webgpu' | 'wasm'): string {
  const fragment = new URLSearchParams({ run: runId, ...(workerToken ? { token: workerToken } : {}), ...(ep ? { ep } : {}) });
  return `${api.replace(/\/$/, '')}${PAGE_PATH}#${fragment}`;
}

/** Files over the per-file limit (relative path and size), none when all fit. */
export function oversized(dir: string, limit = ASSET_FILE_LIMIT): { file: string; bytes: number }[] {
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
  return walk(dir)
    .map((f) => ({ file: relative(dir, f), bytes: statSync(f).size }))
    .filter((f) => f.bytes > limit);
}

/** Builds dist/assets/ (or `out`) from the browser page; throws naming any file over the limit. */
export async function buildDeployAssets(out = ASSETS_DIR): Promise<string> {
  const page = await buildBrowserWorker();
  rmSync(out, { recursive: true, force: true });
  const target = join(out, PAGE_PATH);
  const copy = (from: string, to: string) => {
    for (const e of readdirSync(from, { withFileTypes: true })) {
      if (SKIPPED.has(e.name)) continue;
      mkdirSync(to, { recursive: true });
      if (e.isDirectory()) copy(join(from, e.name), join(to, e.name));
      else copyFileSync(join(from, e.name), join(to, e.name));
    }
  };
  copy(page, target);
  const html = readFileSync(join(target, 'index.html'), 'utf8');
  if (!html.includes('<meta charset="utf-8" />')) throw new Error('workers/browser/index.html: no <meta charset="utf-8" /> to put the page settings after');
  writeFileSync(join(target, 'index.html'), html.replace('<meta charset="utf-8" />\n    ', `<meta charset="utf-8" />\n    ${PAGE_META}`));
  writeFileSync(join(out, '_headers'), HEADERS);
  const big = oversized(out);
  if (big.length) {
    const list = big.map((f) => `${f.file} (${(f.bytes / 2 ** 20).toFixed(2)} MiB)`).join(', ');
    throw new Error(`static assets over Cloudflare's ${ASSET_FILE_LIMIT / 2 ** 20} MiB per-file limit: ${list}`);
  }
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildDeployAssets().then(
    (dir) => console.log(`browser worker page for the API's static assets: ${relative(ROOT, dir)}${PAGE_PATH}`),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exit(1);
    },
  );
}
