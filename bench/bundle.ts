// `npm run bench -- bundle [--outdir DIR] [--quick]`: both deployable scripts against Cloudflare's
// limits. For each (the API script, wrangler.toml; the gradient script, workers/gradient/wrangler.toml)
// it runs `wrangler deploy --dry-run` (offline, no account) into a temp dir (or DIR/<script>, kept) and
// `wrangler check startup`, then prints one JSON object per line: each uploaded module (the .js bundle,
// the ORT .wasm), the script's total against the size limits, and its start-up profile (median of 3
// runs; 1 with --quick) against the start-up limit.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { median } from '../shared/stats';
import { STARTUP_LIMIT_MS, profileStartup, type StartupProfile } from './startup';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Cloudflare's Worker size limits, after gzip compression: Workers Free 3 MB, Workers Paid 10 MB
 * (https://developers.cloudflare.com/workers/platform/limits/#worker-size).
 */
const LIMIT_FREE_GZIP = 3 * 1024 * 1024;
const LIMIT_PAID_GZIP = 10 * 1024 * 1024;

/** The deployable scripts: name (wrangler.toml's `name`) → config. */
const SCRIPTS = [
  { script: 'edgetrain', config: 'wrangler.toml' },
  { script: 'edgetrain-gradient', config: 'workers/gradient/wrangler.toml' },
] as const;

/**
 * wrangler, offline: no telemetry POST (WRANGLER_SEND_METRICS) and no npm "newer version" check before
 * the banner (WRANGLER_HIDE_BANNER). A dry run needs no account, API token or network either way.
 */
export const WRANGLER_OFFLINE_ENV = { WRANGLER_SEND_METRICS: 'false', WRANGLER_HIDE_BANNER: 'true', FORCE_COLOR: '0' } as const;

/** What wrangler writes to --outdir but does not upload. */
const notUploaded = (name: string) => name === 'README.md' || extname(name) === '.map';

const gzip = (bytes: Uint8Array) => gzipSync(bytes, { level: 9 }).byteLength;

async function dryRun(config: string, outdir: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(join(ROOT, 'node_modules/.bin/wrangler'), ['deploy', '-c', config, '--dry-run', '--outdir', outdir], {
      cwd: ROOT,
      env: { ...process.env, ...WRANGLER_OFFLINE_ENV },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 180_000,
    });
    return stdout;
  } catch (e) {
    const { stdout = '', stderr = '' } = e as { stdout?: string; stderr?: string };
    throw new Error(`wrangler deploy -c ${config} --dry-run failed:\n${stdout}${stderr}`, { cause: e });
  }
}

/** Sizes of one script's upload: a row per module, then its total against the limits. */
async function sizes(script: string, config: string, outdir: string, print: (row: object) => void): Promise<void> {
  const stdout = await dryRun(config, outdir);
  // wrangler's own figure (gzip of all modules at zlib's default level), for comparison.
  const reported = stdout.replace(/\x1b\[[0-9;]*m/g, '').match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  const names = (await readdir(outdir)).filter((n) => !notUploaded(n));
  // The main module first, then the rest (the .wasm) by name.
  names.sort((a, b) => Number(extname(b) === '.js') - Number(extname(a) === '.js') || a.localeCompare(b));
  if (!names.some((n) => extname(n) === '.js')) throw new Error(`no .js bundle for ${script} in ${outdir}: ${names.join(', ')}`);
  const contents: Buffer[] = [];
  for (const file of names) {
    const bytes = await readFile(join(outdir, file));
    contents.push(bytes);
    print({ bench: 'bundle', script, file, rawBytes: bytes.byteLength, gzipBytes: gzip(bytes) });
  }
  // Like wrangler, the total compresses all modules together (within a few KiB of the per-file sum).
  const all = Buffer.concat(contents);
  const totalGzipBytes = gzip(all);
  const js = contents[0].toString('utf8');
  print({
    bench: 'bundle',
    script,
    config,
    totalRawBytes: all.byteLength,
    totalGzipBytes,
    totalGzipMiB: +(totalGzipBytes / 2 ** 20).toFixed(2),
    ...(reported ? { wranglerRawKiB: Number(reported[1]), wranglerGzipKiB: Number(reported[2]) } : {}),
    // No ORT: no .wasm module and no onnxruntime-web code in the bundle.
    withoutOrt: !names.some((n) => extname(n) === '.wasm') && !js.includes('onnxruntime'),
    limitFreeGzip: LIMIT_FREE_GZIP,
    limitPaidGzip: LIMIT_PAID_GZIP,
    fitsFree: totalGzipBytes <= LIMIT_FREE_GZIP,
    fitsPaid: totalGzipBytes <= LIMIT_PAID_GZIP,
  });
}

/** The script's start-up, profiled `runs` times by `wrangler check startup`; medians. */
async function startup(script: string, config: string, dir: string, runs: number, print: (row: object) => void): Promise<void> {
  const profiles: StartupProfile[] = [];
  for (let i = 0; i < runs; i++) profiles.push(await profileStartup(ROOT, config, dir, WRANGLER_OFFLINE_ENV));
  const activeMs = +median(profiles.map((p) => p.activeMs)).toFixed(1);
  const windowMs = +median(profiles.map((p) => p.windowMs)).toFixed(1);
  print({
    bench: 'bundle',
    script,
    startup: 'wrangler check startup (local workerd, V8 CPU profile)',
    runs,
    activeMs,
    windowMs,
    activeRunsMs: profiles.map((p) => +p.activeMs.toFixed(1)),
    limitStartupMs: STARTUP_LIMIT_MS,
    fitsStartup: windowMs <= STARTUP_LIMIT_MS,
  });
}

export async function benchBundle(args: string[], print: (row: object) => void): Promise<void> {
  const i = args.indexOf('--outdir');
  const keep = i >= 0 ? args[i + 1] : undefined;
  if (i >= 0 && !keep) throw new Error('--outdir needs a directory');
  const runs = args.includes('--quick') ? 1 : 3;
  const base = keep ? resolve(keep) : await mkdtemp(join(tmpdir(), 'edgetrain-bundle-'));
  try {
    for (const { script, config } of SCRIPTS) {
      const outdir = join(base, script);
      await mkdir(outdir, { recursive: true });
      await sizes(script, config, outdir, print);
      await startup(script, config, outdir, runs, print);
    }
  } finally {
    if (!keep) await rm(base, { recursive: true, force: true });
  }
}
