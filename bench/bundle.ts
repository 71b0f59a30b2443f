// `npm run bench -- bundle [--outdir DIR]`: the deployable Worker's upload size against Cloudflare's limits.
// Runs `wrangler deploy --dry-run` (offline, no account) into a temp dir (or DIR, kept), then prints one
// JSON object per line: each uploaded module (the .js bundle, the ORT .wasm), the total, and the limits.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Cloudflare's Worker size limits, after gzip compression: Workers Free 3 MB, Workers Paid 10 MB. */
const LIMIT_FREE_GZIP = 3 * 1024 * 1024;
const LIMIT_PAID_GZIP = 10 * 1024 * 1024;

/**
 * wrangler, offline: no telemetry POST (WRANGLER_SEND_METRICS) and no npm "newer version" check before
 * the banner (WRANGLER_HIDE_BANNER). A dry run needs no account, API token or network either way.
 */
export const WRANGLER_OFFLINE_ENV = { WRANGLER_SEND_METRICS: 'false', WRANGLER_HIDE_BANNER: 'true', FORCE_COLOR: '0' } as const;

/** What wrangler writes to --outdir but does not upload. */
const notUploaded = (name: string) => name === 'README.md' || extname(name) === '.map';

const gzip = (bytes: Uint8Array) => gzipSync(bytes, { level: 9 }).byteLength;

export async function benchBundle(args: string[], print: (row: object) => void): Promise<void> {
  const i = args.indexOf('--outdir');
  const keep = i >= 0 ? args[i + 1] : undefined;
  if (i >= 0 && !keep) throw new Error('--outdir needs a directory');
  const outdir = keep ? resolve(keep) : await mkdtemp(join(tmpdir(), 'edgetrain-bundle-'));
  try {
    let stdout: string;
    try {
      ({ stdout } = await promisify(execFile)(join(ROOT, 'node_modules/.bin/wrangler'), ['deploy', '--dry-run', '--outdir', outdir], {
        cwd: ROOT,
        env: { ...process.env, ...WRANGLER_OFFLINE_ENV },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 120_000,
      }));
    } catch (e) {
      const { stdout = '', stderr = '' } = e as { stdout?: string; stderr?: string };
      throw new Error(`wrangler deploy --dry-run failed:\n${stdout}${stderr}`, { cause: e });
    }
    // wrangler's own figure (gzip of all modules at zlib's default level), for comparison.
    const reported = stdout.replace(/\x1b\[[0-9;]*m/g, '').match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);

    const names = (await readdir(outdir)).filter((n) => !notUploaded(n));
    // The main module first, then the rest (the .wasm) by name.
    names.sort((a, b) => Number(extname(b) === '.js') - Number(extname(a) === '.js') || a.localeCompare(b));
    const contents: Buffer[] = [];
    for (const file of names) {
      const bytes = await readFile(join(outdir, file));
      contents.push(bytes);
      print({ bench: 'bundle', file, rawBytes: bytes.byteLength, gzipBytes: gzip(bytes) });
    }
    if (!names.some((n) => extname(n) === '.js')) throw new Error(`no .js bundle in ${outdir}: ${names.join(', ')}`);

    // Like wrangler, the total compresses all modules together (within a few KiB of the per-file sum).
    const all = Buffer.concat(contents);
    const totalRawBytes = all.byteLength;
    const totalGzipBytes = gzip(all);
    print({ bench: 'bundle', file: 'total', rawBytes: totalRawBytes, gzipBytes: totalGzipBytes });
    print({
      bench: 'bundle',
      totalRawBytes,
      totalGzipBytes,
      totalGzipMiB: +(totalGzipBytes / 2 ** 20).toFixed(2),
      ...(reported ? { wranglerRawKiB: Number(reported[1]), wranglerGzipKiB: Number(reported[2]) } : {}),
      limitFreeGzip: LIMIT_FREE_GZIP,
      limitPaidGzip: LIMIT_PAID_GZIP,
      fitsFree: totalGzipBytes <= LIMIT_FREE_GZIP,
      fitsPaid: totalGzipBytes <= LIMIT_PAID_GZIP,
    });
  } finally {
    if (!keep) await rm(outdir, { recursive: true, force: true });
  }
}
