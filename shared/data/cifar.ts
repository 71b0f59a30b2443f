/**
 * CIFAR-10 in its official binary layout: records of 1 label byte followed by the 32×32 R, G and B
 * planes (row-major). Parsing splits records into one contiguous CHW image buffer and a label array.
 */

export const CIFAR10_CLASSES: readonly string[] = Object.freeze([
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
]);

export const IMAGE_SIZE = 32;
export const IMAGE_BYTES = 3 * IMAGE_SIZE * IMAGE_SIZE; // 3072
export const RECORD_BYTES = 1 + IMAGE_BYTES; // 3073

export const TRAIN_FILES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
] as const;
export const TEST_FILE = 'test_batch.bin';
export const META_FILE = 'batches.meta.txt';

export interface CifarSplit {
  /** count × 3072 bytes: per image the R, G, B planes of 32×32, row-major. */
  images: Uint8Array;
  /** count labels, each < CIFAR10_CLASSES.length. */
  labels: Uint8Array;
  count: number;
}

export interface Cifar10 {
  train: CifarSplit;
  test: CifarSplit;
  classes: string[];
}

/** Parses one batch file; `fileName` only names the file in error messages. */
export function parseCifarBatch(bytes: Uint8Array, fileName: string): CifarSplit {
  const split = emptySplit(recordCount(bytes, fileName));
  parseInto(bytes, fileName, split, 0);
  return split;
}

/**
 * Builds the dataset from batch files keyed by base name (`data_batch_1.bin` … `data_batch_5.bin`,
 * `test_batch.bin`, optionally `batches.meta.txt`). `source` (a path or URL) prefixes error messages.
 */
export function assembleCifar10(files: ReadonlyMap<string, Uint8Array>, source: string): Cifar10 {
  const missing = [...TRAIN_FILES, TEST_FILE].filter((name) => !files.has(name));
  if (missing.length > 0) {
    const found = [...files.keys()].sort().join(', ') || 'nothing';
    throw new Error(`${source}: missing CIFAR-10 file(s) ${missing.join(', ')} (found: ${found})`);
  }
  const label = (name: string): string => `${source}: ${name}`;

  // Train batches are parsed straight into one buffer rather than parsed and then concatenated.
  const counts = TRAIN_FILES.map((name) => recordCount(files.get(name)!, label(name)));
  const train = emptySplit(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  TRAIN_FILES.forEach((name, i) => {
    parseInto(files.get(name)!, label(name), train, at);
    at += counts[i];
  });

  const test = parseCifarBatch(files.get(TEST_FILE)!, label(TEST_FILE));
  const meta = files.get(META_FILE);
  const classes = meta ? parseClassNames(meta, label(META_FILE)) : [...CIFAR10_CLASSES];
  return { train, test, classes };
}

/** The first `count` examples of a split, without a copy (the whole split when it has no more). */
export function firstExamples(split: CifarSplit, count: number): CifarSplit {
  if (count >= split.count) return split;
  return { images: split.images.subarray(0, count * IMAGE_BYTES), labels: split.labels.subarray(0, count), count };
}

function emptySplit(count: number): CifarSplit {
  return { images: new Uint8Array(count * IMAGE_BYTES), labels: new Uint8Array(count), count };
}

export function recordCount(bytes: Uint8Array, fileName: string): number {
  const whole = Math.floor(bytes.length / RECORD_BYTES);
  if (bytes.length === 0) {
    throw new Error(`${fileName}: 0 bytes, expected at least one ${RECORD_BYTES}-byte record`);
  }
  if (bytes.length % RECORD_BYTES !== 0) {
    throw new Error(
      `${fileName}: ${bytes.length} bytes is not a whole number of ${RECORD_BYTES}-byte records ` +
        `(record ${whole} is truncated)`,
    );
  }
  return whole;
}

/** Writes the records of `bytes` into `split` starting at record `first`; validates labels. */
function parseInto(bytes: Uint8Array, fileName: string, split: CifarSplit, first: number): void {
  const count = bytes.length / RECORD_BYTES;
  const classCount = CIFAR10_CLASSES.length;
  for (let r = 0; r < count; r++) {
    const src = r * RECORD_BYTES;
    const label = bytes[src];
    if (label >= classCount) {
      throw new Error(`${fileName}: record ${r} has label ${label}, expected 0..${classCount - 1}`);
    }
    split.labels[first + r] = label;
    split.images.set(bytes.subarray(src + 1, src + RECORD_BYTES), (first + r) * IMAGE_BYTES);
  }
}

function parseClassNames(bytes: Uint8Array, fileName: string): string[] {
  const names = new TextDecoder()
    .decode(bytes)
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length !== CIFAR10_CLASSES.length) {
    throw new Error(`${fileName}: expected ${CIFAR10_CLASSES.length} class names, found ${names.length}`);
  }
  return names;
}
