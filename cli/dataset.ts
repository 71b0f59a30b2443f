/**
 * Finds, downloads and loads CIFAR-10 on Node: from a .tar.gz (gunzipped and untarred in-process, streaming)
 * or an extracted folder. Parsing and validation live in shared/data; this file only does the I/O.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { createGunzip } from 'node:zlib';
import { META_FILE, TEST_FILE, TRAIN_FILES, assembleCifar10, type Cifar10 } from '../shared/data/cifar.js';
import { TarReader } from '../shared/data/tar.js';

export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
export const CIFAR10_ENV = 'EDGETRAIN_CIFAR10';
const ARCHIVE_NAME = 'cifar-10-binary.tar.gz';
const FOLDER_NAME = 'cifar-10-batches-bin';
/** Where the project's development data sits relative to the repository root (the usual cwd). */
/** The project's copy beside the repository (relative to the working folder). */
export const SHARED_ARCHIVE = path.join('..', 'shared', 'data', ARCHIVE_NAME);
const DEFAULT_CACHE_DIR = path.join('.edgetrain', 'data');
const WANTED = new Set<string>([...TRAIN_FILES, TEST_FILE, META_FILE]);

export interface LoadCifar10Options {
  /** A .tar.gz/.tgz/.tar archive or a folder holding cifar-10-batches-bin/ or the .bin files themselves. */
  path?: string;
  /** Where a downloaded archive is kept; default .edgetrain/data (relative to the cwd). */
  cacheDir?: string;
  log?: (line: string) => void;
}

export type Cifar10Origin = 'option' | 'env' | 'shared' | 'cache' | 'download';

export interface ResolvedCifar10Path {
  /** Absolute path; for origin 'download', where the archive will be downloaded to. */
  path: string;
  origin: Cifar10Origin;
}

/** Which copy loadCifar10 would use: opts.path, $EDGETRAIN_CIFAR10, ../shared/data, the cache, or a download. */
export function resolveCifar10Path(opts: LoadCifar10Options = {}): ResolvedCifar10Path {
  if (opts.path) return { path: path.resolve(opts.path), origin: 'option' };
  const fromEnv = process.env[CIFAR10_ENV];
  if (fromEnv) return { path: path.resolve(fromEnv), origin: 'env' };
  const shared = path.resolve(SHARED_ARCHIVE);
  if (existsSync(shared)) return { path: shared, origin: 'shared' };
  const cached = path.resolve(opts.cacheDir ?? DEFAULT_CACHE_DIR, ARCHIVE_NAME);
  return { path: cached, origin: existsSync(cached) ? 'cache' : 'download' };
}

/** Loaded datasets by absolute path, so a second load in the same process costs nothing. */
const loaded = new Map<string, Promise<Cifar10>>();

export function loadCifar10(opts: LoadCifar10Options = {}): Promise<Cifar10> {
  const log = opts.log ?? (() => {});
  const { path: file, origin } = resolveCifar10Path(opts);
  let pending = loaded.get(file);
  if (!pending) {
    pending = (async () => {
      if (origin === 'download') await downloadFile(CIFAR10_URL, file, CIFAR10_MD5, log);
      return readCifar10(file, origin, log);
    })();
    loaded.set(file, pending);
    pending.catch(() => loaded.delete(file));
  }
  return pending;
}

async function readCifar10(file: string, origin: Cifar10Origin, log: (line: string) => void): Promise<Cifar10> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(file)).isDirectory();
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
    const from = origin === 'env' ? ` (from $${CIFAR10_ENV})` : '';
    throw new Error(`CIFAR-10 not found: ${file} does not exist${from}`);
  }
  const started = performance.now();
  const files = isDirectory ? await readFolder(file) : await readArchive(file);
  const data = assembleCifar10(files, file);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  log(`CIFAR-10 from ${file}: ${data.train.count} train + ${data.test.count} test images in ${seconds} s`);
  return data;
}

/** Reads the wanted files of a folder; absent ones are left for assembleCifar10 to report. */
async function readFolder(dir: string): Promise<Map<string, Uint8Array>> {
  const nested = path.join(dir, FOLDER_NAME);
  const root = existsSync(nested) ? nested : dir;
  const files = new Map<string, Uint8Array>();
  for (const name of WANTED) {
    try {
      const buf = await readFile(path.join(root, name));
      files.set(name, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
    }
  }
  return files;
}

/** Streams the archive through gunzip (for .gz/.tgz) and the tar reader, keeping the wanted files by base name. */
async function readArchive(file: string): Promise<Map<string, Uint8Array>> {
  const gzipped = /\.(tgz|gz)$/i.test(file);
  if (!gzipped && !/\.tar$/i.test(file)) {
    throw new Error(`${file}: expected a folder, a .tar.gz/.tgz or a .tar file`);
  }
  const files = new Map<string, Uint8Array>();
  const tar = new TarReader();
  try {
    await pipeline(
      createReadStream(file, { highWaterMark: 1 << 20 }),
      gzipped ? createGunzip({ chunkSize: 1 << 20 }) : new PassThrough(),
      async (chunks: AsyncIterable<Uint8Array>) => {
        for await (const chunk of chunks) {
          for (const entry of tar.push(chunk)) {
            const base = entry.name.slice(entry.name.lastIndexOf('/') + 1);
            if (WANTED.has(base)) files.set(base, entry.data);
          }
        }
      },
    );
    tar.end();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const zlib = errorCode(err)?.startsWith('Z_') ?? false;
    throw new Error(`${file}: ${zlib ? `corrupt or truncated gzip data (${message})` : message}`, { cause: err });
  }
  return files;
}

/** Downloads `url` to `dest` via `dest.part`, checking its MD5; the partial file is deleted on any failure. */
export async function downloadFile(
  url: string,
  dest: string,
  /** Checked when given (the CIFAR-10 archive); hub files have no published MD5. */
  md5: string | undefined,
  log: (line: string) => void = () => {},
): Promise<void> {
  await mkdir(path.dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  log(`downloading ${url} to ${dest}`);
  try {
    const response = await fetch(url);
    if (!response.ok || !response.body) {
      throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
    }
    const progress = progressLine(path.basename(dest), Number(response.headers.get('content-length')) || 0);
    const hash = createHash('md5');
    await pipeline(
      Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>),
      async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          progress.advance(chunk.length);
          yield chunk;
        }
      },
      createWriteStream(part),
    );
    progress.finish();
    const actual = hash.digest('hex');
    if (md5 !== undefined && actual !== md5) {
      throw new Error(`${url}: MD5 mismatch (expected ${md5}, got ${actual}); the download was deleted`);
    }
    await rename(part, dest);
  } catch (err) {
    await rm(part, { force: true });
    throw err;
  }
}

/** Download progress on stderr (percent and MB): redrawn in place on a terminal, else a line now and then. */
function progressLine(label: string, total: number): { advance(bytes: number): void; finish(): void } {
  const tty = process.stderr.isTTY === true;
  const intervalMs = tty ? 250 : 5000;
  let received = 0;
  let shown = -1;
  let lastShown = 0;
  const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
  const show = (): void => {
    shown = received;
    const amount =
      total > 0 ? `${Math.floor((100 * received) / total)}% (${mb(received)}/${mb(total)} MB)` : `${mb(received)} MB`;
    process.stderr.write(tty ? `\rdownloading ${label}: ${amount}  ` : `downloading ${label}: ${amount}\n`);
  };
  return {
    advance(bytes) {
      received += bytes;
      const now = performance.now();
      if (now - lastShown >= intervalMs) {
        lastShown = now;
        show();
      }
    },
    finish() {
      if (shown !== received) show();
      if (tty) process.stderr.write('\n');
    },
  };
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : undefined;
}
