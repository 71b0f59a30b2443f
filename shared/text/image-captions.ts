// Per-image captions for the concat head: one caption per record of each split, embedded once and
// stored as content-addressed chunks plus an index. The index is written last, so a set becomes
// visible only when every chunk is stored; chunks from an interrupted run are reused by the next.
import { sha256Hex } from '../data/blocks';
import type { Split } from '../data/blocks';
import type { CaptionEncoder } from './encoder';
import type { EncoderSource } from './caption-store';

export const IMAGE_CAPTIONS_PREFIX = 'image-captions/';
export const CAPTION_CHUNKS_PREFIX = 'caption-chunks/';
/** Rows per chunk: 2,048 × 768 float32 ≈ 6 MiB, well under KV's 25 MiB value limit. */
export const CHUNK_ROWS = 2048;

export interface ImageCaptionSplit {
  readonly count: number;
  readonly chunkRows: number;
  /** Chunk hashes in record order; chunk i holds records [i·chunkRows, (i+1)·chunkRows). */
  readonly chunks: readonly string[];
}

export interface ImageCaptionIndex {
  readonly name: string;
  readonly encoder: string;
  readonly dim: number;
  readonly train: ImageCaptionSplit;
  readonly test: ImageCaptionSplit;
}

export const chunkHash = (encoderId: string, texts: readonly string[]) => sha256Hex(JSON.stringify([encoderId, texts]));
/** The set's address follows from its chunks' addresses, which follow from their texts. */
export const imageCaptionHash = (index: Omit<ImageCaptionIndex, 'name'>) =>
  sha256Hex(JSON.stringify([index.encoder, index.dim, index.train.chunkRows, index.train.chunks, index.test.chunkRows, index.test.chunks]));

/** Records 0..count−1 of a split, each with its caption; names every missing record (up to 10). */
export function captionsInOrder(captions: ReadonlyMap<number, string>, count: number, where: string): string[] {
  const missing: number[] = [];
  const texts = Array.from({ length: count }, (_, i) => {
    const t = captions.get(i);
    if (t === undefined) missing.push(i);
    return t ?? '';
  });
  if (missing.length) throw new Error(`${where}: ${missing.length} of ${count} records have no caption (records ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}); the concat head needs one per image`);
  return texts;
}

export interface ImageCaptionStore {
  /** The stored chunk's vector size, or undefined when it is not stored. */
  chunkDim(hash: string): Promise<number | undefined>;
  putChunk(hash: string, encoder: string, dim: number, texts: readonly string[], vectors: Float32Array): Promise<void>;
  hasIndex(hash: string): Promise<boolean>;
  putIndex(hash: string, index: ImageCaptionIndex): Promise<void>;
}

export interface ImageCaptionReport {
  readonly hash: string;
  readonly index: ImageCaptionIndex;
  readonly chunksEncoded: number;
  readonly chunksReused: number;
}

export async function precomputeImageCaptions(
  store: ImageCaptionStore,
  source: CaptionEncoder | EncoderSource,
  name: string,
  texts: Readonly<Record<Split, readonly string[]>>,
): Promise<ImageCaptionReport> {
  let encoder: CaptionEncoder | undefined = 'open' in source ? undefined : source;
  let dim = encoder?.dim ?? 0;
  let encoded = 0;
  let reused = 0;
  const split = async (all: readonly string[]): Promise<ImageCaptionSplit> => {
    const chunks: string[] = [];
    for (let first = 0; first < all.length; first += CHUNK_ROWS) {
      const part = all.slice(first, first + CHUNK_ROWS);
      const hash = await chunkHash(source.id, part);
      chunks.push(hash);
      const storedDim = await store.chunkDim(hash);
      if (storedDim !== undefined) {
        dim = storedDim;
        reused++;
        continue;
      }
      encoder ??= await (source as EncoderSource).open();
      dim = encoder.dim;
      const vectors = await encoder.encode(part);
      if (vectors.length !== part.length * dim || vectors.some((v) => !Number.isFinite(v))) throw new Error(`encoder ${source.id} gave bad vectors for records ${first}..${first + part.length - 1}`);
      await store.putChunk(hash, source.id, dim, part, vectors);
      encoded++;
    }
    return { count: all.length, chunkRows: CHUNK_ROWS, chunks };
  };
  const train = await split(texts.train);
  const test = await split(texts.test);
  const index: ImageCaptionIndex = { name, encoder: source.id, dim, train, test };
  const hash = await imageCaptionHash(index);
  if (!(await store.hasIndex(hash))) await store.putIndex(hash, index);
  return { hash, index, chunksEncoded: encoded, chunksReused: reused };
}
