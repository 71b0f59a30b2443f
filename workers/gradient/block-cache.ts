// Dataset blocks kept in the isolate, least recently used first out, within a byte budget.
import { blocksFor, decodeBlock, gatherExamples, type DatasetManifest, type RecordBlock, type Split } from '../../shared/data/blocks';
import { RECORD_BYTES, type CifarSplit } from '../../shared/data/cifar';

export class BlockCache {
  private readonly blocks = new Map<string, RecordBlock>();
  private bytes = 0;
  fetched = 0;
  hits = 0;

  constructor(private readonly budgetBytes: number) {}

  /** Examples `indices` of a split, gathered in order; fetches the blocks they need. */
  async examples(manifest: DatasetManifest, split: Split, indices: readonly number[], fetchBlock: (sha256: string) => Promise<Uint8Array>): Promise<CifarSplit> {
    const needed = blocksFor(manifest, split, indices);
    const keep = new Set(needed.map((b) => b.sha256));
    for (const block of needed) {
      const cached = this.blocks.get(block.sha256);
      if (cached) {
        this.hits++;
        this.blocks.delete(block.sha256);
        this.blocks.set(block.sha256, cached);
        continue;
      }
      // Room first: the fetched bytes are what the cache keeps, so the evicted ones can go before they arrive.
      this.evict(keep, bytesOf(block.count));
      const records = await decodeBlock(await fetchBlock(block.sha256), block);
      this.fetched++;
      this.blocks.set(block.sha256, records);
      this.bytes += records.records.byteLength;
    }
    return gatherExamples(manifest, split, indices, (sha) => this.blocks.get(sha)!);
  }

  /** Drops the oldest blocks until `incoming` more bytes fit the budget, never one this lease needs. */
  private evict(keep: ReadonlySet<string>, incoming: number): void {
    for (const [sha, block] of this.blocks) {
      if (this.bytes + incoming <= this.budgetBytes) return;
      if (keep.has(sha)) continue;
      this.blocks.delete(sha);
      this.bytes -= block.records.byteLength;
    }
  }
}

const bytesOf = (records: number) => records * RECORD_BYTES;
