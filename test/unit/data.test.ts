import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { downloadFile, loadCifar10, resolveCifar10Path } from '../../cli/dataset.js';
import {
  CIFAR10_CLASSES,
  IMAGE_BYTES,
  RECORD_BYTES,
  assembleCifar10,
  parseCifarBatch,
  type Cifar10,
  type CifarSplit,
} from '../../shared/data/cifar.js';
import { CIFAR10_NORMALIZATION, SEED_NORMALIZATION, fillBatch, type Augmentation } from '../../shared/data/normalize.js';
import { epochOrder, exampleRng, mulberry32, permutation } from '../../shared/data/shuffle.js';
import { TarReader, type TarEntry } from '../../shared/data/tar.js';
import { BATCH_NAMES, concatBytes, PER_BATCH, pixel, fixtureFiles, makeBatch, writeFolder } from '../support/cifar-fixture';
import { REAL_CIFAR10, skipWithout } from '../support/prerequisites';

const WITHOUT_REAL_CIFAR10 = skipWithout(REAL_CIFAR10);

// ---------- fixtures: a hand-written ustar writer and synthetic CIFAR batches ----------

const utf8 = new TextEncoder();

function tarHeader(name: string, size: number, type: string): Uint8Array {
  const h = new Uint8Array(512);
  const put = (text: string, offset: number): void => h.set(utf8.encode(text), offset);
  put(name.slice(0, 100), 0);
  put('0000644\0', 100);
  put('0000000\0', 108);
  put('0000000\0', 116);
  put(`${size.toString(8).padStart(11, '0')}\0`, 124);
  put('00000000000\0', 136);
  put(type, 156);
  put('ustar\0', 257);
  put('00', 263);
  put('        ', 148);
  const sum = h.reduce((a, b) => a + b, 0);
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

function tarEntry(name: string, data: Uint8Array, type = '0'): Uint8Array {
  const padding = new Uint8Array((512 - (data.length % 512)) % 512);
  return concatBytes([tarHeader(name, data.length, type), data, padding]);
}

/** A pax record's length prefix counts itself, so find the fixed point. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = body.length;
  while (`${length}${body}`.length !== length) length = `${length}${body}`.length;
  return `${length}${body}`;
}

function tarArchive(entries: Uint8Array[]): Uint8Array {
  return concatBytes([...entries, new Uint8Array(1024)]);
}

function fixtureTar(files: Map<string, Uint8Array>): Uint8Array {
  return tarArchive([
    tarEntry('cifar-10-batches-bin/', new Uint8Array(0), '5'),
    ...[...files].map(([name, data]) => tarEntry(`cifar-10-batches-bin/${name}`, data)),
  ]);
}

/** Byte-exact equality of two data sets, without a slow element-wise deep compare. */
function expectSameSplit(actual: CifarSplit, expected: CifarSplit): void {
  expect(actual.count).toBe(expected.count);
  expect(Buffer.compare(actual.labels, expected.labels)).toBe(0);
  expect(Buffer.compare(actual.images, expected.images)).toBe(0);
}

function expectSameData(actual: Cifar10, expected: Cifar10): void {
  expectSameSplit(actual.train, expected.train);
  expectSameSplit(actual.test, expected.test);
  expect(actual.classes).toEqual(expected.classes);
}

/** A [0,1) source that replays `values`, for choosing augmentation parameters exactly. */
function scripted(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length];
}

/** The rng value that makes fillBatch draw shift `d` for padCrop `pad`. */
const shiftDraw = (d: number, pad = 4): number => (d + pad + 0.5) / (2 * pad + 1);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'edgetrain-data-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---------- tar ----------

describe('TarReader', () => {
  const longName = `deep/${'x'.repeat(120)}/long.bin`;
  const archive = tarArchive([
    tarEntry('top/', new Uint8Array(0), '5'),
    tarEntry('top/a.txt', utf8.encode('hello')),
    tarEntry('top/empty', new Uint8Array(0)),
    tarEntry('top/block.bin', new Uint8Array(512).fill(7)),
    tarEntry('././@LongLink', utf8.encode(`${longName}\0`), 'L'),
    tarEntry(longName.slice(0, 100), new Uint8Array(1000).fill(3)),
    tarEntry('PaxHeaders/p', utf8.encode(paxRecord('mtime', '1.5') + paxRecord('path', 'top/from-pax.txt')), 'x'),
    tarEntry('top/truncated-name', utf8.encode('pax')),
    tarEntry('top/link', new Uint8Array(0), '2'),
  ]);
  const expected: [string, number][] = [
    ['top/a.txt', 5],
    ['top/empty', 0],
    ['top/block.bin', 512],
    [longName, 1000],
    ['top/from-pax.txt', 3],
  ];

  function readInChunks(bytes: Uint8Array, sizes: number[] | number): TarEntry[] {
    const reader = new TarReader();
    const entries: TarEntry[] = [];
    let at = 0;
    for (let i = 0; at < bytes.length; i++) {
      const size = typeof sizes === 'number' ? sizes : sizes[i % sizes.length];
      entries.push(...reader.push(bytes.subarray(at, at + size)));
      at += size;
    }
    reader.end();
    expect(reader.done).toBe(true);
    return entries;
  }

  it('reads files, applies GNU long names and pax paths, skips directories and links', () => {
    const entries = readInChunks(archive, archive.length);
    expect(entries.map((e) => [e.name, e.data.length])).toEqual(expected);
    expect(new TextDecoder().decode(entries[0].data)).toBe('hello');
    expect(entries[3].data.every((b) => b === 3)).toBe(true);
  });

  it.each([1, 7, 511, 512, 513, 1024, 4099])('gives the same entries when fed %i bytes at a time', (size) => {
    const entries = readInChunks(archive, size);
    expect(entries.map((e) => [e.name, e.data.length])).toEqual(expected);
    expect(entries[2].data.every((b) => b === 7)).toBe(true);
  });

  it('gives the same entries for a split at every byte position', () => {
    const signature = (entries: TarEntry[]): string =>
      entries.map((e) => `${e.name}:${e.data.length}:${e.data.reduce((a, b) => a + b, 0)}`).join(' ');
    const whole = signature(readInChunks(archive, archive.length));
    const failures: number[] = [];
    for (let cut = 1; cut < archive.length; cut++) {
      if (signature(readInChunks(archive, [cut, archive.length])) !== whole) failures.push(cut);
    }
    expect(failures).toEqual([]);
  });

  it('ignores bytes after the end-of-archive marker and accepts an archive without one', () => {
    const padded = concatBytes([archive, new Uint8Array(10240), utf8.encode('junk')]);
    expect(readInChunks(padded, 4096).map((e) => e.name)).toEqual(expected.map(([n]) => n));
    const unterminated = tarEntry('only.txt', utf8.encode('x'));
    const reader = new TarReader();
    expect(reader.push(unterminated).map((e) => e.name)).toEqual(['only.txt']);
    expect(() => reader.end()).not.toThrow();
  });

  it('names the entry an archive is truncated in', () => {
    const bytes = tarArchive([tarEntry('a.txt', utf8.encode('a')), tarEntry('dir/big.bin', new Uint8Array(3000))]);
    const reader = new TarReader();
    reader.push(bytes.subarray(0, 1024 + 512 + 1000));
    expect(() => reader.end()).toThrow('tar: archive is truncated inside entry "dir/big.bin" (1000 of 3000 bytes)');

    const inHeader = new TarReader();
    inHeader.push(bytes.subarray(0, 1024 + 100));
    expect(() => inHeader.end()).toThrow(/truncated inside the header after entry "a\.txt"/);
  });

  it('names the entry whose header checksum is wrong', () => {
    const bytes = tarArchive([tarEntry('a.txt', utf8.encode('a')), tarEntry('b.txt', utf8.encode('b'))]);
    bytes[1024 + 10] ^= 1; // inside b.txt's name field
    expect(() => new TarReader().push(bytes)).toThrow(/bad header checksum for entry "b\.txt.*" at byte 1024 \(after entry "a\.txt"\)/);
  });
});

// ---------- CIFAR records ----------

describe('parseCifarBatch', () => {
  it('places labels and the R, G, B planes of each record', () => {
    const split = parseCifarBatch(makeBatch(100, 3), 'x.bin');
    expect(split.count).toBe(3);
    expect([...split.labels]).toEqual([0, 1, 2]);
    expect(split.images.length).toBe(3 * IMAGE_BYTES);
    for (const [r, c, p] of [[0, 0, 0], [1, 1, 5], [2, 2, 1023], [2, 0, 517]]) {
      expect(split.images[r * IMAGE_BYTES + c * 1024 + p]).toBe(pixel(100 + r, c, p));
    }
  });

  it('names the file, the size and the truncated record', () => {
    const bytes = makeBatch(0, PER_BATCH).subarray(0, PER_BATCH * RECORD_BYTES - 1);
    expect(() => parseCifarBatch(bytes, 'data_batch_3.bin')).toThrow(
      'data_batch_3.bin: 61459 bytes is not a whole number of 3073-byte records (record 19 is truncated)',
    );
    expect(() => parseCifarBatch(new Uint8Array(0), 'empty.bin')).toThrow('empty.bin: 0 bytes');
  });

  it('names the file, the record and the bad label', () => {
    const bytes = makeBatch(0, PER_BATCH);
    bytes[5 * RECORD_BYTES] = 12;
    expect(() => parseCifarBatch(bytes, 'test_batch.bin')).toThrow('test_batch.bin: record 5 has label 12, expected 0..9');
  });
});

describe('assembleCifar10', () => {
  it('joins the five train batches in order and reads class names', () => {
    const data = assembleCifar10(fixtureFiles(), 'fixture');
    expect(data.train.count).toBe(5 * PER_BATCH);
    expect(data.test.count).toBe(PER_BATCH);
    expect(data.classes).toEqual([...CIFAR10_CLASSES]);
    const last = 5 * PER_BATCH - 1;
    expect(data.train.labels[last]).toBe(last % 10);
    expect(data.train.images[last * IMAGE_BYTES + 2 * 1024 + 9]).toBe(pixel(last, 2, 9));
    expect(data.test.images[7]).toBe(pixel(1000, 0, 7));
  });

  it('holds the batches parsed one by one, in order', () => {
    const files = fixtureFiles();
    const { train } = assembleCifar10(files, 'fixture');
    BATCH_NAMES.forEach((n, b) => {
      const part = { images: train.images.subarray(b * PER_BATCH * IMAGE_BYTES, (b + 1) * PER_BATCH * IMAGE_BYTES), labels: train.labels.subarray(b * PER_BATCH, (b + 1) * PER_BATCH), count: PER_BATCH };
      expectSameSplit(part, parseCifarBatch(files.get(n)!, n));
    });
  });

  it('names every missing file and the source', () => {
    const files = fixtureFiles();
    files.delete('data_batch_2.bin');
    files.delete('test_batch.bin');
    expect(() => assembleCifar10(files, 'my.tar.gz')).toThrow(
      /^my\.tar\.gz: missing CIFAR-10 file\(s\) data_batch_2\.bin, test_batch\.bin \(found: /,
    );
  });

  it('prefixes record errors with the source and file', () => {
    const files = fixtureFiles();
    files.set('data_batch_4.bin', files.get('data_batch_4.bin')!.subarray(0, 100));
    expect(() => assembleCifar10(files, 'src')).toThrow('src: data_batch_4.bin: 100 bytes is not a whole number');
  });
});

// ---------- normalisation and augmentation ----------

/** One image: all `background`, except `value` at (channel, y, x). */
function oneImage(background: number, marks: [number, number, number, number][] = []): CifarSplit {
  const images = new Uint8Array(IMAGE_BYTES).fill(background);
  for (const [c, y, x, value] of marks) images[c * 1024 + y * 32 + x] = value;
  return { images, labels: Uint8Array.of(7), count: 1 };
}

/** Positions (c, y, x) of `out` (one image) holding `value`. */
function positionsOf(out: Float32Array, value: number): [number, number, number][] {
  const found: [number, number, number][] = [];
  out.forEach((v, i) => {
    if (v === value) found.push([Math.floor(i / 1024), Math.floor((i % 1024) / 32), i % 32]);
  });
  return found;
}

describe('fillBatch', () => {
  const out = new Float32Array(IMAGE_BYTES);
  const labels = new BigInt64Array(1);
  const norm = (v: number, c: number): number => Math.fround((v / 255 - CIFAR10_NORMALIZATION.mean[c]) / CIFAR10_NORMALIZATION.std[c]);

  it('normalises per channel and writes int64 labels', () => {
    const split: CifarSplit = {
      images: concatBytes([oneImage(0, [[0, 0, 0, 255], [1, 3, 4, 128], [2, 31, 31, 255]]).images, new Uint8Array(IMAGE_BYTES).fill(255)]),
      labels: Uint8Array.of(3, 9),
      count: 2,
    };
    const batchOut = new Float32Array(2 * IMAGE_BYTES);
    const batchLabels = new BigInt64Array(2);
    fillBatch(split, [1, 0], batchOut, batchLabels, CIFAR10_NORMALIZATION);
    expect([...batchLabels]).toEqual([9n, 3n]);
    expect(batchOut[0]).toBe(norm(255, 0));
    const second = batchOut.subarray(IMAGE_BYTES);
    expect(second[0]).toBe(norm(255, 0));
    expect(second[1]).toBe(norm(0, 0));
    expect(second[1024 + 3 * 32 + 4]).toBe(norm(128, 1));
    expect(second[2 * 1024 + 1023]).toBe(norm(255, 2));
    expect(second[2 * 1024]).toBeCloseTo((0 - 0.4465) / 0.2606, 5);

    fillBatch(split, [1, 0], batchOut, batchLabels, SEED_NORMALIZATION);
    expect(batchOut[0]).toBe(1);
    expect(batchOut[IMAGE_BYTES + 1]).toBe(-1);
  });

  it('shifts by the drawn crop offset and pads with 0 (the mean)', () => {
    const split = oneImage(0, [[1, 10, 5, 255]]);
    // dy = +2, dx = −3: out[y][x] = in[y + 2][x − 3], so in(10, 5) lands at (8, 8).
    const augment: Augmentation = { rng: () => scripted([shiftDraw(2), shiftDraw(-3), 0.9]), padCrop: 4, flip: true };
    fillBatch(split, [0], out, labels, CIFAR10_NORMALIZATION, augment);
    expect(positionsOf(out, norm(255, 1))).toEqual([[1, 8, 8]]);
    // Rows 30–31 (source rows 32–33) and columns 0–2 (source −3…−1) are padding: 32×2 + 30×3 per channel.
    expect(positionsOf(out, 0).length).toBe(3 * (2 * 32 + 30 * 3));
    expect(out[0 * 1024 + 30 * 32 + 10]).toBe(0);
    expect(out[2 * 1024 + 5 * 32 + 2]).toBe(0);
    expect(out[2 * 1024 + 5 * 32 + 3]).toBe(norm(0, 2));
  });

  it('mirrors columns when the flip is drawn', () => {
    const split = oneImage(0, [[0, 10, 5, 255]]);
    fillBatch(split, [0], out, labels, CIFAR10_NORMALIZATION, { rng: () => scripted([0.1]), padCrop: 0, flip: true });
    expect(positionsOf(out, norm(255, 0))).toEqual([[0, 10, 26]]);
    fillBatch(split, [0], out, labels, CIFAR10_NORMALIZATION, { rng: () => scripted([0.1]), padCrop: 0, flip: false });
    expect(positionsOf(out, norm(255, 0))).toEqual([[0, 10, 5]]);
  });

  it('crops, then mirrors', () => {
    const split = oneImage(0, [[2, 10, 5, 255]]);
    const augment: Augmentation = { rng: () => scripted([shiftDraw(2), shiftDraw(-3), 0.2]), padCrop: 4, flip: true };
    fillBatch(split, [0], out, labels, CIFAR10_NORMALIZATION, augment);
    expect(positionsOf(out, norm(255, 2))).toEqual([[2, 8, 31 - 8]]);
    // The padded columns 0–2 of the crop are now columns 29–31.
    expect(out[2 * 1024 + 5 * 32 + 29]).toBe(0);
    expect(out[2 * 1024 + 5 * 32 + 28]).toBe(norm(0, 2));
  });

  it('rejects wrong output sizes and out-of-range indices', () => {
    const split = oneImage(0);
    expect(() => fillBatch(split, [0, 0], out, labels, SEED_NORMALIZATION)).toThrow('out has 3072 floats');
    expect(() => fillBatch(split, [1], out, labels, SEED_NORMALIZATION)).toThrow('index 1 at batch position 0');
  });
});

// ---------- order, batches and shards ----------

describe('shuffle', () => {
  it('mulberry32 is deterministic and in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mulberry32(43)()).not.toBe(xs[0]);
  });

  it('permutation is a seeded permutation', () => {
    const p = permutation(1000, 7);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(permutation(1000, 7)).toEqual(p);
    expect(permutation(1000, 8)).not.toEqual(p);
    expect(permutation(0, 1).length).toBe(0);
  });

  it('epochOrder is fixed per (seed, epoch) and differs across epochs and seeds', () => {
    const e0 = epochOrder(500, 1, 0);
    expect(epochOrder(500, 1, 0)).toEqual(e0);
    expect(epochOrder(500, 1, 1)).not.toEqual(e0);
    expect(epochOrder(500, 2, 0)).not.toEqual(e0);
    expect([...epochOrder(500, 1, 3)].sort((x, y) => x - y)).toEqual([...Array(500).keys()]);
  });
});

// ---------- loading from disk (Node) ----------

describe('loadCifar10', () => {
  it('loads the same data from a tarball, a nested folder and a flat folder', async () => {
    const files = fixtureFiles();
    const tarball = path.join(dir, 'cifar-10-binary.tar.gz');
    writeFileSync(tarball, gzipSync(fixtureTar(files)));
    const plainTar = path.join(dir, 'plain.tar');
    writeFileSync(plainTar, fixtureTar(files));
    writeFolder(path.join(dir, 'nested', 'cifar-10-batches-bin'), files);
    writeFolder(path.join(dir, 'flat'), files);

    const lines: string[] = [];
    const fromTar = await loadCifar10({ path: tarball, log: (s) => lines.push(s) });
    expect(lines.join('\n')).toContain(`CIFAR-10 from ${tarball}: 100 train + 20 test images`);
    expectSameData(fromTar, assembleCifar10(files, 'fixture'));
    expectSameData(await loadCifar10({ path: path.join(dir, 'nested') }), fromTar);
    expectSameData(await loadCifar10({ path: path.join(dir, 'flat') }), fromTar);
    expectSameData(await loadCifar10({ path: plainTar }), fromTar);
    expect(await loadCifar10({ path: tarball })).toBe(fromTar); // cached in-process
  });

  it('names a missing path', async () => {
    const missing = path.join(dir, 'nope.tar.gz');
    await expect(loadCifar10({ path: missing })).rejects.toThrow(`CIFAR-10 not found: ${missing} does not exist`);
  });

  it('names a corrupt gzip file', async () => {
    const bad = path.join(dir, 'corrupt.tar.gz');
    writeFileSync(bad, utf8.encode('this is not gzip data at all'));
    await expect(loadCifar10({ path: bad })).rejects.toThrow(`${bad}: corrupt or truncated gzip data`);
    const cut = path.join(dir, 'cut.tar.gz');
    const gz = gzipSync(fixtureTar(fixtureFiles()));
    writeFileSync(cut, gz.subarray(0, gz.length >> 1));
    await expect(loadCifar10({ path: cut })).rejects.toThrow(`${cut}: corrupt or truncated gzip data`);
  });

  it('names the file and record of a truncated batch inside a tarball', async () => {
    const files = fixtureFiles();
    files.set('data_batch_3.bin', files.get('data_batch_3.bin')!.subarray(0, 5 * RECORD_BYTES + 17));
    const tarball = path.join(dir, 'truncated-record.tar.gz');
    writeFileSync(tarball, gzipSync(fixtureTar(files)));
    await expect(loadCifar10({ path: tarball })).rejects.toThrow(
      `${tarball}: data_batch_3.bin: 15382 bytes is not a whole number of 3073-byte records (record 5 is truncated)`,
    );
  });

  it('names a batch file missing from a folder', async () => {
    const files = fixtureFiles();
    files.delete('data_batch_5.bin');
    const folder = path.join(dir, 'incomplete');
    writeFolder(folder, files);
    await expect(loadCifar10({ path: folder })).rejects.toThrow(`${folder}: missing CIFAR-10 file(s) data_batch_5.bin`);
  });

  it('resolves the explicit path first, then $EDGETRAIN_CIFAR10', () => {
    vi.stubEnv('EDGETRAIN_CIFAR10', 'from-env.tar.gz');
    try {
      expect(resolveCifar10Path({ path: 'x.tar.gz' })).toEqual({ path: path.resolve('x.tar.gz'), origin: 'option' });
      expect(resolveCifar10Path({})).toEqual({ path: path.resolve('from-env.tar.gz'), origin: 'env' });
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('downloadFile', () => {
  const body = gzipSync(fixtureTar(fixtureFiles()));
  const md5 = createHash('md5').update(body).digest('hex');
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createServer((_req, res) => {
      res.setHeader('content-length', body.length);
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cifar-10-binary.tar.gz`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('downloads via a .part file and checks the MD5', async () => {
    const dest = path.join(dir, 'cache', 'cifar-10-binary.tar.gz');
    await downloadFile(url, dest, md5);
    expect(existsSync(dest)).toBe(true);
    expect(existsSync(`${dest}.part`)).toBe(false);
    expect((await loadCifar10({ path: dest })).train.count).toBe(5 * PER_BATCH);
  });

  it('deletes the partial file on an MD5 mismatch', async () => {
    const dest = path.join(dir, 'bad-cache', 'cifar-10-binary.tar.gz');
    await expect(downloadFile(url, dest, '0'.repeat(32))).rejects.toThrow(`MD5 mismatch (expected ${'0'.repeat(32)}, got ${md5})`);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });
});

// ---------- the real data set ----------

describe('real CIFAR-10', () => {
  it.skipIf(WITHOUT_REAL_CIFAR10)('has 50,000 balanced train images, 10,000 test images and the measured channel means', async () => {
    const data = await loadCifar10({ path: REAL_CIFAR10.path });
    expect(data.train.count).toBe(50_000);
    expect(data.test.count).toBe(10_000);
    expect(data.classes).toEqual([...CIFAR10_CLASSES]);
    const perClass = new Array<number>(10).fill(0);
    for (const label of data.train.labels) perClass[label]++;
    expect(perClass).toEqual(new Array(10).fill(5_000));

    const sums = [0, 0, 0];
    const { images, count } = data.train;
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let p = i * IMAGE_BYTES + c * 1024, end = p + 1024; p < end; p++) s += images[p];
        sums[c] += s;
      }
    }
    const means = sums.map((s) => s / (count * 1024 * 255));
    means.forEach((m, c) => expect(Math.abs(m - CIFAR10_NORMALIZATION.mean[c])).toBeLessThan(0.002));
  });
});

// ---------- block-local shuffle and per-position augmentation streams ----------

describe('epochOrder with a block size, and exampleRng', () => {
  /** MurmurHash3's finaliser, as shuffle.ts hashes (seed, epoch): the pre-block formula of epochOrder. */
  const fmix32 = (h: number): number => {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  };
  const globalOrder = (n: number, seed: number, epoch: number) => permutation(n, fmix32(fmix32(seed) ^ Math.imul(epoch + 1, 0x9e3779b9)));
  const sorted = (a: ArrayLike<number>) => Array.from(a).sort((x, y) => x - y);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  /** The block of each position of `order`, run-length encoded: [block, length] per maximal run. */
  const blockRuns = (order: Uint32Array, block: number): [number, number][] => {
    const runs: [number, number][] = [];
    for (const i of order) {
      const b = Math.floor(i / block);
      if (runs.length && runs[runs.length - 1][0] === b) runs[runs.length - 1][1]++;
      else runs.push([b, 1]);
    }
    return runs;
  };

  it('block 0 (the default) is the global permutation it always was', () => {
    for (const [n, seed, epoch] of [
      [1000, 1, 0],
      [1000, 1, 5],
      [37, 123456, 2],
      [5000, 7, 9],
    ]) {
      const expected = globalOrder(n, seed, epoch);
      expect(epochOrder(n, seed, epoch)).toEqual(expected);
      expect(epochOrder(n, seed, epoch, 0)).toEqual(expected);
    }
  });

  it('a block of n or more is the global permutation too', () => {
    expect(epochOrder(100, 3, 1, 100)).toEqual(globalOrder(100, 3, 1));
    expect(epochOrder(100, 3, 1, 101)).toEqual(globalOrder(100, 3, 1));
    expect(epochOrder(100, 3, 1, 1_000_000)).toEqual(globalOrder(100, 3, 1));
    // ...and a block just under n is not.
    expect(epochOrder(100, 3, 1, 99)).not.toEqual(globalOrder(100, 3, 1));
  });

  it('is a permutation of 0..n−1 when n is not a multiple of the block', () => {
    for (const [n, block] of [
      [1003, 64],
      [10, 3],
      [129, 128],
      [50_001, 5000],
    ]) {
      expect(sorted(epochOrder(n, 11, 2, block))).toEqual(range(n));
    }
  });

  it('keeps every block in one contiguous run of positions, blocks in a shuffled order', () => {
    const n = 1003;
    const block = 64;
    const order = epochOrder(n, 5, 1, block);
    const runs = blockRuns(order, block);
    const blockCount = Math.ceil(n / block); // 16, the last one of 43
    // One run per block: no block is split or revisited.
    expect(runs.length).toBe(blockCount);
    expect(sorted(runs.map(([b]) => b))).toEqual(range(blockCount));
    for (const [b, length] of runs) expect(length).toBe(b === blockCount - 1 ? n - b * block : block);
    // The blocks are not left in storage order, and each block is shuffled within itself.
    expect(runs.map(([b]) => b)).not.toEqual(range(blockCount));
    let at = 0;
    for (const [b, length] of runs) {
      const members = Array.from(order.subarray(at, at + length));
      expect(sorted(members)).toEqual(range(length).map((i) => b * block + i));
      if (length > 2) expect(members).not.toEqual(sorted(members));
      at += length;
    }
  });

  it('a short last block still takes exactly its own positions', () => {
    // 10 = 3 + 3 + 3 + 1: the lone example 9 forms its own block somewhere in the order.
    for (let epoch = 0; epoch < 20; epoch++) {
      const order = epochOrder(10, 2, epoch, 3);
      const runs = blockRuns(order, 3);
      expect(runs.map(([, length]) => length).sort()).toEqual([1, 3, 3, 3]);
      expect(runs.find(([b]) => b === 3)).toEqual([3, 1]);
    }
  });

  it('is fixed per (seed, epoch, block) and differs across epochs, seeds and block sizes', () => {
    const a = epochOrder(1000, 1, 0, 100);
    expect(epochOrder(1000, 1, 0, 100)).toEqual(a);
    expect(epochOrder(1000, 1, 1, 100)).not.toEqual(a);
    expect(epochOrder(1000, 2, 0, 100)).not.toEqual(a);
    expect(epochOrder(1000, 1, 0, 50)).not.toEqual(a);
    // Block order itself changes between epochs (not only the shuffle inside the blocks).
    const blocksOf = (order: Uint32Array) => blockRuns(order, 100).map(([b]) => b);
    const blockOrders = new Set(range(10).map((epoch) => blocksOf(epochOrder(1000, 1, epoch, 100)).join(',')));
    expect(blockOrders.size).toBeGreaterThan(1);
  });

  it('rejects a negative or fractional block size', () => {
    expect(() => epochOrder(100, 1, 0, -1)).toThrow('block must be an integer >= 0, got -1');
    expect(() => epochOrder(100, 1, 0, 2.5)).toThrow('block must be an integer >= 0, got 2.5');
    expect(() => epochOrder(100, 1, 0, Number.NaN)).toThrow('block must be an integer >= 0');
  });

  it('exampleRng is a fixed stream per (seed, epoch, position)', () => {
    const draws = (rng: () => number, k = 8) => Array.from({ length: k }, () => rng());
    const base = draws(exampleRng(1, 0, 0));
    expect(draws(exampleRng(1, 0, 0))).toEqual(base);
    expect(base.every((x) => x >= 0 && x < 1)).toBe(true);
    // Independent of how many other streams were created or drawn in between.
    const other = exampleRng(1, 0, 1);
    other();
    other();
    expect(draws(exampleRng(1, 0, 0))).toEqual(base);
    // Each argument changes the stream.
    expect(draws(exampleRng(2, 0, 0))).not.toEqual(base);
    expect(draws(exampleRng(1, 1, 0))).not.toEqual(base);
    expect(draws(exampleRng(1, 0, 1))).not.toEqual(base);
  });

  it('exampleRng gives distinct streams to every position of an epoch and across neighbouring epochs and seeds', () => {
    const first = new Set<string>();
    for (let seed = 1; seed <= 2; seed++) {
      for (let epoch = 0; epoch < 3; epoch++) {
        for (let position = 0; position < 2000; position++) {
          const r = exampleRng(seed, epoch, position);
          first.add(`${r()},${r()}`);
        }
      }
    }
    expect(first.size).toBe(2 * 3 * 2000);
  });
});
