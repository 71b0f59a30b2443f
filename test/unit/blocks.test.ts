// Content-addressed dataset blocks: building, manifest checks, example lookup and block decoding.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MANIFEST_FORMAT,
  blockOf,
  blocksFor,
  buildDatasetBlocks,
  checkManifest,
  decodeBlock,
  encodeRecords,
  gatherExamples,
  sha256Hex,
  type DatasetManifest,
} from '../../shared/data/blocks';
import { IMAGE_BYTES, RECORD_BYTES, assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { BATCH_NAMES, fixtureFiles, concatBytes } from '../support/cifar-fixture';

const hex = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** Byte-for-byte equality (vitest's deep equality is slow on megabyte arrays): length, then the first differing index. */
function expectBytes(actual: Uint8Array | undefined, expected: Uint8Array | undefined): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  expect(actual!.length).toBe(expected!.length);
  expect(actual!.findIndex((v, i) => v !== expected![i])).toBe(-1);
}

/** 500 train images (five files of 100) and 100 test images, each record distinct. */
const files = fixtureFiles(100);
const fixture = (): Cifar10 => assembleCifar10(files, 'fixture');
/** The train records exactly as the official files lay them out, concatenated. */
const trainBytes = concatBytes(BATCH_NAMES.map((name) => files.get(name)!));

const built = buildDatasetBlocks(fixture(), 'fixture', 128);
/** A manifest as untyped JSON, to be edited into invalid shapes. */
interface EditableSplit {
  count: unknown;
  blocks: { sha256: unknown; count: unknown }[];
}
interface EditableManifest {
  [field: string]: unknown;
  train: EditableSplit;
  test: EditableSplit;
}
/** A deep copy, as read back from storage. */
const copy = (m: DatasetManifest) => JSON.parse(JSON.stringify(m)) as EditableManifest;
/** Recomputes the id of an edited manifest, so that only the edit (not the id) can be what is rejected. */
const reId = async (m: Record<string, unknown>) => {
  const body = JSON.stringify({ format: m.format, name: m.name, classes: m.classes, blockImages: m.blockImages, train: m.train, test: m.test });
  return { ...m, id: await sha256Hex(body) };
};

describe('sha256Hex and encodeRecords', () => {
  it('hashes bytes and strings as SHA-256 hex', async () => {
    expect(await sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const bytes = new Uint8Array([0, 1, 2, 255]);
    expect(await sha256Hex(bytes)).toBe(hex(bytes));
  });

  it('encodes records in the official layout (label byte, then 3072 pixel bytes)', () => {
    const data = fixture();
    expectBytes(encodeRecords(data.train, 0, 500), trainBytes);
    expectBytes(encodeRecords(data.train, 130, 7), trainBytes.subarray(130 * RECORD_BYTES, 137 * RECORD_BYTES));
    expectBytes(encodeRecords(data.test, 0, 100), files.get('test_batch.bin'));
  });
});

describe('buildDatasetBlocks', () => {
  it('cuts each split into blocks of blockImages (last one short) whose hashes are of their bytes', async () => {
    const { manifest, blocks } = await built;
    expect(manifest.format).toBe(MANIFEST_FORMAT);
    expect(manifest.name).toBe('fixture');
    expect(manifest.blockImages).toBe(128);
    expect(manifest.classes).toEqual(fixture().classes);
    expect(manifest.train.count).toBe(500);
    expect(manifest.train.blocks.map((b) => b.count)).toEqual([128, 128, 128, 116]);
    expect(manifest.test.count).toBe(100);
    expect(manifest.test.blocks.map((b) => b.count)).toEqual([100]);

    const starts = [0, 128, 256, 384, 500];
    manifest.train.blocks.forEach((b, i) => {
      const expected = trainBytes.subarray(starts[i] * RECORD_BYTES, starts[i + 1] * RECORD_BYTES);
      expect(b.sha256).toBe(hex(expected));
      expectBytes(blocks.get(b.sha256), expected);
    });
    expect(manifest.test.blocks[0].sha256).toBe(hex(files.get('test_batch.bin')!));
    expectBytes(blocks.get(manifest.test.blocks[0].sha256), files.get('test_batch.bin'));
    expect(blocks.size).toBe(5);
  });

  it('gives the manifest an id that is the SHA-256 of its canonical JSON', async () => {
    const { manifest } = await built;
    const { id, ...body } = manifest;
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(id).toBe(hex(JSON.stringify({ format: body.format, name: body.name, classes: body.classes, blockImages: body.blockImages, train: body.train, test: body.test })));
    expect(await checkManifest(manifest)).toBe(manifest);
    expect(await checkManifest(copy(manifest))).toEqual(manifest);
  });

  it('is deterministic: the same data gives the same id; one changed pixel changes the id and that block only', async () => {
    const { manifest } = await built;
    const again = await buildDatasetBlocks(fixture(), 'fixture', 128);
    expect(again.manifest).toEqual(manifest);

    const changed = fixture();
    changed.train.images[300 * IMAGE_BYTES + 5] ^= 1; // image 300: block 2 (256..383)
    const m2 = (await buildDatasetBlocks(changed, 'fixture', 128)).manifest;
    expect(m2.id).not.toBe(manifest.id);
    expect(m2.train.blocks.map((b, i) => b.sha256 === manifest.train.blocks[i].sha256)).toEqual([true, true, false, true]);
    expect(m2.test).toEqual(manifest.test);
    await expect(checkManifest(m2)).resolves.toBe(m2);

    // A changed label, name or block size changes the id too.
    const relabeled = fixture();
    relabeled.test.labels[0] = 9;
    expect((await buildDatasetBlocks(relabeled, 'fixture', 128)).manifest.id).not.toBe(manifest.id);
    expect((await buildDatasetBlocks(fixture(), 'other', 128)).manifest.id).not.toBe(manifest.id);
    expect((await buildDatasetBlocks(fixture(), 'fixture', 100)).manifest.id).not.toBe(manifest.id);
  });

  it('rejects a block size that is not a positive integer', async () => {
    await expect(buildDatasetBlocks(fixture(), 'fixture', 0)).rejects.toThrow('blockImages: 0 must be a positive integer');
    await expect(buildDatasetBlocks(fixture(), 'fixture', 1.5)).rejects.toThrow('blockImages: 1.5 must be a positive integer');
  });
});

describe('checkManifest', () => {
  it('rejects a value that is not an object, or a wrong format', async () => {
    const { manifest } = await built;
    await expect(checkManifest(null)).rejects.toThrow('dataset manifest: not an object');
    await expect(checkManifest('manifest')).rejects.toThrow('dataset manifest: not an object');
    await expect(checkManifest(await reId({ ...copy(manifest), format: 2 }))).rejects.toThrow('dataset manifest: format 2 is not 1');
    await expect(checkManifest(await reId({ ...copy(manifest), name: '' }))).rejects.toThrow('name must be a non-empty string');
    await expect(checkManifest(await reId({ ...copy(manifest), classes: ['one'] }))).rejects.toThrow('classes must list the class names');
    await expect(checkManifest(await reId({ ...copy(manifest), blockImages: 0 }))).rejects.toThrow('blockImages must be a positive integer');
  });

  it('rejects a tampered id, and content changed under an unchanged id', async () => {
    const { manifest } = await built;
    const flipped = manifest.id.slice(0, -1) + (manifest.id.endsWith('0') ? '1' : '0');
    await expect(checkManifest({ ...copy(manifest), id: flipped })).rejects.toThrow(`id ${flipped} does not match its content (${manifest.id})`);
    const renamed = { ...copy(manifest), name: 'renamed' };
    await expect(checkManifest(renamed)).rejects.toThrow('does not match its content');
    const swapped = copy(manifest);
    swapped.train.blocks[0].sha256 = manifest.train.blocks[1].sha256;
    await expect(checkManifest(swapped)).rejects.toThrow('does not match its content');
    // The id is required.
    const { id: _id, ...noId } = copy(manifest);
    await expect(checkManifest(noId)).rejects.toThrow('id undefined does not match');
  });

  it('rejects counts that do not sum to the split count', async () => {
    const { manifest } = await built;
    const m = copy(manifest);
    await expect(checkManifest(await reId({ ...m, train: { ...m.train, count: 501 } }))).rejects.toThrow('train.count 501 does not equal the sum of its blocks (500)');
    await expect(checkManifest(await reId({ ...m, test: { count: 0, blocks: [] } }))).rejects.toThrow('test.count 0 does not equal the sum of its blocks (0)');
    await expect(checkManifest(await reId({ ...m, test: { count: 100 } }))).rejects.toThrow('test.blocks must be an array');
  });

  it('rejects a block hash that is not 64 lowercase hex digits', async () => {
    const { manifest } = await built;
    for (const sha256 of ['xyz', manifest.train.blocks[0].sha256.toUpperCase(), manifest.train.blocks[0].sha256.slice(1), 42]) {
      const m = copy(manifest);
      m.train.blocks[0].sha256 = sha256;
      await expect(checkManifest(await reId(m))).rejects.toThrow('train.blocks[0].sha256 must be 64 hex digits');
    }
  });

  it('rejects a short block that is not the last, and a block larger than blockImages', async () => {
    const { manifest } = await built;
    const short = copy(manifest);
    const blocks = short.train.blocks;
    blocks[1].count = 100;
    blocks[3].count = 144; // the sum stays 500
    await expect(checkManifest(await reId(short))).rejects.toThrow('train.blocks[1].count 100 does not fit blockImages 128');

    const big = copy(manifest);
    big.test.blocks[0].count = 129;
    await expect(checkManifest(await reId({ ...big, test: { ...big.test, count: 129 } }))).rejects.toThrow('test.blocks[0].count 129 does not fit blockImages 128');

    const empty = copy(manifest);
    empty.train.blocks[3].count = 0;
    await expect(checkManifest(await reId(empty))).rejects.toThrow('train.blocks[3].count 0 does not fit blockImages 128');
  });
});

describe('looking examples up in blocks', () => {
  it('blockOf maps an index to its block and offset, and rejects indices outside the split', async () => {
    const { manifest } = await built;
    const train = manifest.train.blocks;
    expect(blockOf(manifest, 'train', 0)).toEqual({ block: train[0], offset: 0 });
    expect(blockOf(manifest, 'train', 127)).toEqual({ block: train[0], offset: 127 });
    expect(blockOf(manifest, 'train', 128)).toEqual({ block: train[1], offset: 0 });
    expect(blockOf(manifest, 'train', 499)).toEqual({ block: train[3], offset: 115 });
    expect(blockOf(manifest, 'test', 99)).toEqual({ block: manifest.test.blocks[0], offset: 99 });
    expect(() => blockOf(manifest, 'train', 500)).toThrow('train example 500 is outside 0..499');
    expect(() => blockOf(manifest, 'test', 100)).toThrow('test example 100 is outside 0..99');
    expect(() => blockOf(manifest, 'train', -1)).toThrow('outside 0..499');
    expect(() => blockOf(manifest, 'train', 1.5)).toThrow('outside 0..499');
  });

  it('blocksFor lists the distinct blocks in first-use order', async () => {
    const { manifest } = await built;
    const t = manifest.train.blocks;
    expect(blocksFor(manifest, 'train', [0, 5, 127, 499, 128, 3, 400])).toEqual([t[0], t[3], t[1]]);
    expect(blocksFor(manifest, 'train', [256])).toEqual([t[2]]);
    expect(blocksFor(manifest, 'train', [])).toEqual([]);
    expect(blocksFor(manifest, 'test', [0, 50, 99])).toEqual([manifest.test.blocks[0]]);
    expect(() => blocksFor(manifest, 'test', [100])).toThrow('test example 100');
  });

  it('gatherExamples returns exactly the labels and pixels of the given indices, across block boundaries', async () => {
    const { manifest, blocks } = await built;
    const data = fixture();
    const fetched: string[] = [];
    const block = (sha256: string) => {
      fetched.push(sha256);
      const records = blocks.get(sha256)!;
      return { records, count: records.length / RECORD_BYTES };
    };
    const indices = [127, 128, 0, 499, 255, 256, 383, 384, 127];
    const out = gatherExamples(manifest, 'train', indices, block);
    expect(out.count).toBe(indices.length);
    expect(Array.from(out.labels)).toEqual(indices.map((i) => i % 10));
    indices.forEach((index, i) => {
      expect(out.labels[i]).toBe(data.train.labels[index]);
      expectBytes(out.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), data.train.images.subarray(index * IMAGE_BYTES, (index + 1) * IMAGE_BYTES));
    });
    expect(new Set(fetched)).toEqual(new Set(manifest.train.blocks.map((b) => b.sha256)));

    const test = gatherExamples(manifest, 'test', [99, 0], block);
    expect(Array.from(test.labels)).toEqual([data.test.labels[99], data.test.labels[0]]);
    expectBytes(test.images.subarray(0, IMAGE_BYTES), data.test.images.subarray(99 * IMAGE_BYTES, 100 * IMAGE_BYTES));
    expect(gatherExamples(manifest, 'train', [], block).count).toBe(0);
  });
});

describe('decodeBlock', () => {
  it('accepts a block whose bytes match its hash and count, keeping the fetched bytes without a copy', async () => {
    const { manifest, blocks } = await built;
    const last = manifest.train.blocks[3];
    const bytes = blocks.get(last.sha256)!;
    const block = await decodeBlock(bytes, last);
    expect(block.count).toBe(116);
    expect(block.records).toBe(bytes);
    const split = gatherExamples(manifest, 'train', Array.from({ length: 116 }, (_, i) => 384 + i), () => block);
    expectBytes(split.images, fixture().train.images.subarray(384 * IMAGE_BYTES, 500 * IMAGE_BYTES));
    expect(Array.from(split.labels)).toEqual(Array.from({ length: 116 }, (_, i) => (384 + i) % 10));
  });

  it('rejects a block with a label outside the classes', async () => {
    const records = new Uint8Array(2 * RECORD_BYTES);
    records[RECORD_BYTES] = 10;
    const b = { sha256: await sha256Hex(records), count: 2 };
    await expect(decodeBlock(records, b)).rejects.toThrow(`dataset block ${b.sha256}: record 1 has label 10, expected 0..9`);
  });

  it('rejects bytes that do not hash to the expected block', async () => {
    const { manifest, blocks } = await built;
    const b = manifest.train.blocks[0];
    const bytes = blocks.get(b.sha256)!.slice();
    bytes[1000] ^= 0xff;
    await expect(decodeBlock(bytes, b)).rejects.toThrow(`dataset block ${b.sha256}: content hashes to ${hex(bytes)}`);
    // The block of another index is another block.
    await expect(decodeBlock(blocks.get(manifest.train.blocks[1].sha256)!, b)).rejects.toThrow('content hashes to');
  });

  it('rejects a block whose record count differs from the manifest', async () => {
    const { manifest, blocks } = await built;
    const b = manifest.train.blocks[0];
    await expect(decodeBlock(blocks.get(b.sha256)!, { sha256: b.sha256, count: 127 })).rejects.toThrow(`dataset block ${b.sha256}: 128 records, manifest says 127`);
  });
});
