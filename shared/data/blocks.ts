// A dataset as content-addressed blocks of records in CIFAR-10's binary layout (1 label byte + 3072
// pixel bytes), the unit a worker fetches from R2 and caches. Pure: hashing uses Web Crypto.
import { CIFAR10_CLASSES, IMAGE_BYTES, RECORD_BYTES, recordCount, type Cifar10, type CifarSplit } from './cifar';

export const MANIFEST_FORMAT = 1;

export interface DatasetBlock {
  /** SHA-256 of the block's bytes, hex: its R2 key and its integrity check. */
  readonly sha256: string;
  readonly count: number;
}

export interface SplitManifest {
  readonly count: number;
  readonly blocks: readonly DatasetBlock[];
}

export interface DatasetManifest {
  readonly format: typeof MANIFEST_FORMAT;
  /** SHA-256 of the canonical JSON of everything else: the dataset's identity. */
  readonly id: string;
  readonly name: string;
  readonly classes: readonly string[];
  /** Records per block (the last block of a split may hold fewer). */
  readonly blockImages: number;
  readonly train: SplitManifest;
  readonly test: SplitManifest;
}

export type Split = 'train' | 'test';

/**
 * A fetched block kept as it came (records of 1 label byte + 3072 pixel bytes): examples are gathered
 * straight from these bytes, so a worker never holds the block twice (fetched and parsed).
 */
export interface RecordBlock {
  readonly records: Uint8Array;
  readonly count: number;
}

export async function sha256Hex(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const digest = await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Records [first, first + count) of a split in the official layout. */
export function encodeRecords(split: CifarSplit, first: number, count: number): Uint8Array {
  const out = new Uint8Array(count * RECORD_BYTES);
  for (let r = 0; r < count; r++) {
    out[r * RECORD_BYTES] = split.labels[first + r];
    out.set(split.images.subarray((first + r) * IMAGE_BYTES, (first + r + 1) * IMAGE_BYTES), r * RECORD_BYTES + 1);
  }
  return out;
}

const manifestBody = (m: Omit<DatasetManifest, 'id'>) =>
  JSON.stringify({ format: m.format, name: m.name, classes: m.classes, blockImages: m.blockImages, train: m.train, test: m.test });

/** Cuts a dataset into blocks; returns the manifest and the blocks by hash. */
export async function buildDatasetBlocks(data: Cifar10, name: string, blockImages: number): Promise<{ manifest: DatasetManifest; blocks: Map<string, Uint8Array> }> {
  if (!Number.isInteger(blockImages) || blockImages < 1) throw new Error(`blockImages: ${blockImages} must be a positive integer`);
  const blocks = new Map<string, Uint8Array>();
  const cut = async (split: CifarSplit): Promise<SplitManifest> => {
    const list: DatasetBlock[] = [];
    for (let first = 0; first < split.count; first += blockImages) {
      const count = Math.min(blockImages, split.count - first);
      const bytes = encodeRecords(split, first, count);
      const sha256 = await sha256Hex(bytes);
      blocks.set(sha256, bytes);
      list.push({ sha256, count });
    }
    return { count: split.count, blocks: list };
  };
  const body = { format: MANIFEST_FORMAT, name, classes: data.classes, blockImages, train: await cut(data.train), test: await cut(data.test) } as const;
  return { manifest: { ...body, id: await sha256Hex(manifestBody(body)) }, blocks };
}

/** Checks a manifest read back from storage or a request: shape, counts and its id. */
export async function checkManifest(value: unknown): Promise<DatasetManifest> {
  const m = value as DatasetManifest;
  const fail = (why: string): never => {
    throw new Error(`dataset manifest: ${why}`);
  };
  if (typeof m !== 'object' || m === null) fail('not an object');
  if (m.format !== MANIFEST_FORMAT) fail(`format ${String(m.format)} is not ${MANIFEST_FORMAT}`);
  if (typeof m.name !== 'string' || !m.name) fail('name must be a non-empty string');
  if (!Array.isArray(m.classes) || m.classes.length < 2 || m.classes.length > CIFAR10_CLASSES.length * 100) fail('classes must list the class names');
  if (!Number.isInteger(m.blockImages) || m.blockImages < 1) fail('blockImages must be a positive integer');
  for (const split of ['train', 'test'] as const) {
    const s = m[split];
    if (!s || !Array.isArray(s.blocks)) fail(`${split}.blocks must be an array`);
    let total = 0;
    s.blocks.forEach((b, i) => {
      if (typeof b?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(b.sha256)) fail(`${split}.blocks[${i}].sha256 must be 64 hex digits`);
      const last = i === s.blocks.length - 1;
      if (!Number.isInteger(b.count) || b.count < 1 || b.count > m.blockImages || (!last && b.count !== m.blockImages)) fail(`${split}.blocks[${i}].count ${b.count} does not fit blockImages ${m.blockImages}`);
      total += b.count;
    });
    if (total !== s.count || total < 1) fail(`${split}.count ${s.count} does not equal the sum of its blocks (${total})`);
  }
  const id = await sha256Hex(manifestBody(m));
  if (m.id !== id) fail(`id ${String(m.id)} does not match its content (${id})`);
  return m;
}

/** Which block holds example `index` of a split, and where inside it. */
export function blockOf(manifest: DatasetManifest, split: Split, index: number): { block: DatasetBlock; offset: number } {
  const s = manifest[split];
  if (!Number.isInteger(index) || index < 0 || index >= s.count) throw new Error(`${split} example ${index} is outside 0..${s.count - 1}`);
  return { block: s.blocks[Math.floor(index / manifest.blockImages)], offset: index % manifest.blockImages };
}

/** Copies examples `indices` of a split out of its blocks into a compact split (example i at i). */
export function gatherExamples(manifest: DatasetManifest, split: Split, indices: ArrayLike<number>, block: (sha256: string) => RecordBlock): CifarSplit {
  const out: CifarSplit = { images: new Uint8Array(indices.length * IMAGE_BYTES), labels: new Uint8Array(indices.length), count: indices.length };
  for (let i = 0; i < indices.length; i++) {
    const { block: b, offset } = blockOf(manifest, split, indices[i]);
    const { records } = block(b.sha256);
    const at = offset * RECORD_BYTES;
    out.labels[i] = records[at];
    out.images.set(records.subarray(at + 1, at + RECORD_BYTES), i * IMAGE_BYTES);
  }
  return out;
}

/** The distinct blocks that examples `indices` of a split live in. */
export function blocksFor(manifest: DatasetManifest, split: Split, indices: ArrayLike<number>): DatasetBlock[] {
  const seen = new Map<string, DatasetBlock>();
  for (let i = 0; i < indices.length; i++) {
    const { block } = blockOf(manifest, split, indices[i]);
    seen.set(block.sha256, block);
  }
  return [...seen.values()];
}

/** Checks a fetched block (hash, record count, labels) and keeps its bytes as they are, without a copy. */
export async function decodeBlock(bytes: Uint8Array, expected: DatasetBlock): Promise<RecordBlock> {
  const name = `dataset block ${expected.sha256}`;
  const actual = await sha256Hex(bytes);
  if (actual !== expected.sha256) throw new Error(`${name}: content hashes to ${actual}`);
  const count = recordCount(bytes, name);
  if (count !== expected.count) throw new Error(`${name}: ${count} records, manifest says ${expected.count}`);
  for (let r = 0; r < count; r++) {
    const label = bytes[r * RECORD_BYTES];
    if (label >= CIFAR10_CLASSES.length) throw new Error(`${name}: record ${r} has label ${label}, expected 0..${CIFAR10_CLASSES.length - 1}`);
  }
  return { records: bytes, count };
}
