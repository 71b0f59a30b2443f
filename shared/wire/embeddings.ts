// A set of embedding vectors as stored in KV: which encoder made them, rows × dim float32, checksum.
import { FrameReader, FrameWriter, floatsBytes, stringBytes } from './frame';

export interface EmbeddingSet {
  readonly encoder: string;
  readonly rows: number;
  readonly dim: number;
  /** rows × dim, row-major. */
  readonly data: Float32Array;
}

export const EMBEDDINGS_MAGIC = 'ETEM';
export const EMBEDDINGS_FORMAT = 1;

/** Bytes of the frame of `rows` × `dim` vectors by `encoder`. */
export const embeddingsBytes = (encoder: string, rows: number, dim: number) => 12 + stringBytes(encoder) + 8 + floatsBytes(rows * dim);

export function encodeEmbeddings(e: EmbeddingSet): Uint8Array<ArrayBuffer> {
  if (e.data.length !== e.rows * e.dim) throw new RangeError(`embeddings: ${e.data.length} values for ${e.rows} × ${e.dim}`);
  const w = new FrameWriter(EMBEDDINGS_MAGIC, EMBEDDINGS_FORMAT, stringBytes(e.encoder) + 8 + floatsBytes(e.data.length));
  w.string(e.encoder);
  w.u32(e.rows);
  w.u32(e.dim);
  w.floats(e.data);
  return w.finish();
}

export function decodeEmbeddings(bytes: Uint8Array): EmbeddingSet {
  const r = new FrameReader(bytes, EMBEDDINGS_MAGIC, EMBEDDINGS_FORMAT, 'embeddings frame');
  const e: EmbeddingSet = { encoder: r.string(), rows: r.u32(), dim: r.u32(), data: r.floats() };
  r.end();
  if (e.data.length !== e.rows * e.dim) throw new RangeError(`embeddings frame: ${e.data.length} values for ${e.rows} × ${e.dim}`);
  return e;
}
