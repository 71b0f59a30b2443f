// Dataset blocks kept in the isolate, least recently used first out, within a byte budget.
import { blocksFor, decodeBlock, gatherExamples, type DatasetManifest, type Split } from '../../shared/data/blocks';
import type { CifarSplit } from '../../shared/data/cifar';
import { IMAGE_BYTES } from '../../shared/data/cifar';

export class BlockCache {
  private readonly blocks = new Map<string, CifarSplit>();
  private bytes = 0;
  fetched = 0;
  hits = 0;

  constructor(private readonly budgetBytes: number) {}

  /** Examples `indices` of a split, gathered in order; fetches the blocks they need. */
  async examples(manifest: DatasetManifest, split: Split, indices: readonly number[], fetchBlock: (sha256: string) => Promise<Uint8Array>): Promise<CifarSplit> {
    for (const block of blocksFor(manifest, split, indices)) {
      const cached = this.blocks.get(block.sha256);
      if (cached) {
        this.hits++;
        this.blocks.delete(block.sha256);
        this.blocks.set(block.sha256, cached);
        continue;
      }
      const records = await decodeBlock(await fetchBlock(block.sha256), block);
      this.fetched++;
      this.blocks.set(block.sha256, records);
      this.bytes += records.count * (IMAGE_BYTES + 1);
      this.evict(block.sha256);
    }
    return gatherExamples(manifest, split, indices, (sha) => this.blocks.get(sha)!);
  }

  /** Drops the oldest blocks over budget, never the one just added. */
  private evict(keep: string): void {
    for (const [sha, records] of this.blocks) {
      if (this.bytes <= this.budgetBytes) return;
      if (sha === keep) continue;
      this.blocks.delete(sha);
      this.bytes -= records.count * (IMAGE_BYTES + 1);
    }
  }
}
