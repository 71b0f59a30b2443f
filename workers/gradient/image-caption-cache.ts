// Per-image caption vectors of a lease, gathered from content-addressed chunks kept in the isolate.
import type { Split } from '../../shared/data/blocks';
import type { ImageCaptionIndex } from '../../shared/text/image-captions';
import { decodeEmbeddings } from '../../shared/wire/embeddings';

/**
 * Chunks (2,048 × 768 floats ≈ 6 MiB each) are kept within a byte budget, oldest out first, at least
 * the one in use; a block-local batch touches three or four.
 */
export class ImageCaptionCache {
  private readonly chunks = new Map<string, Float32Array>();
  private bytes = 0;

  constructor(
    private readonly index: ImageCaptionIndex,
    private readonly budgetBytes: number,
  ) {}

  /** [indices.length, dim] caption vectors of records `indices` of a split; fetches the chunks it lacks. */
  async rows(split: Split, indices: readonly number[], fetchChunk: (hash: string) => Promise<Uint8Array>): Promise<Float32Array> {
    const s = this.index[split];
    const dim = this.index.dim;
    const out = new Float32Array(indices.length * dim);
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i];
      if (!Number.isInteger(r) || r < 0 || r >= s.count) throw new Error(`${split} record ${r} has no caption (the set covers 0..${s.count - 1})`);
      const chunk = await this.chunk(s.chunks[Math.floor(r / s.chunkRows)], fetchChunk);
      const at = (r % s.chunkRows) * dim;
      out.set(chunk.subarray(at, at + dim), i * dim);
    }
    return out;
  }

  private async chunk(hash: string, fetchChunk: (hash: string) => Promise<Uint8Array>): Promise<Float32Array> {
    let data = this.chunks.get(hash);
    if (data) {
      this.chunks.delete(hash);
    } else {
      const set = decodeEmbeddings(await fetchChunk(hash));
      if (set.dim !== this.index.dim || set.encoder !== this.index.encoder) throw new Error(`caption chunk ${hash}: ${set.encoder} ${set.dim}-d, the set is ${this.index.encoder} ${this.index.dim}-d`);
      data = set.data.slice();
      for (const [old, kept] of this.chunks) {
        if (this.bytes + data.byteLength <= this.budgetBytes) break;
        this.chunks.delete(old);
        this.bytes -= kept.byteLength;
      }
      this.bytes += data.byteLength;
    }
    this.chunks.set(hash, data);
    return data;
  }
}
