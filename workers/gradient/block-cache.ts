// Dataset blocks kept in the isolate, least recently used first out, within a byte budget.
import { blocksFor, decodeBlock, gatherExamples, type DatasetBlock, type DatasetManifest, type RecordBlock, type Split } from '../../shared/data/blocks';
import { RECORD_BYTES, type CifarSplit } from '../../shared/data/cifar';

/** Examples to gather: `indices` of one split of one dataset. */
export interface ExampleRequest {
  readonly manifest: DatasetManifest;
  readonly split: Split;
  readonly indices: readonly number[];
}

export class BlockCache {
  private readonly blocks = new Map<string, RecordBlock>();
  private bytes = 0;
  fetched = 0;
  hits = 0;

  constructor(private readonly budgetBytes: number) {}

  /** Examples `indices` of a split, gathered in order; fetches the blocks they need. */
  async examples(manifest: DatasetManifest, split: Split, indices: readonly number[], fetchBlock: (sha256: string) => Promise<Uint8Array>): Promise<CifarSplit> {
    return (await this.gather([{ manifest, split, indices }], fetchBlock))[0];
  }

  /**
   * The examples of each request (a lease's source and DANN target examples: blocks of two datasets),
   * gathered in order. No block any of them needs is evicted for another's: blocks are content
   * addressed, so the datasets share one budget and one key space.
   */
  async gather(requests: readonly ExampleRequest[], fetchBlock: (sha256: string) => Promise<Uint8Array>): Promise<CifarSplit[]> {
    const needed = new Map<string, DatasetBlock>();
    for (const r of requests) for (const block of blocksFor(r.manifest, r.split, r.indices)) needed.set(block.sha256, block);
    const keep = new Set(needed.keys());
    for (const block of needed.values()) {
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
    return requests.map((r) => gatherExamples(r.manifest, r.split, r.indices, (sha) => this.blocks.get(sha)!));
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
