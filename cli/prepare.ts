// Dataset preparation: CIFAR-10 → content-addressed blocks uploaded through the API (local or deployed),
// then the named manifest. Blocks already stored are skipped, so running it again uploads nothing.
import type { Cifar10 } from '../shared/data/cifar';
import { buildDatasetBlocks, type DatasetManifest } from '../shared/data/blocks';
import type { ApiClient } from '../workers/gradient/client';

/** Images per block: 5,000 records ≈ 15 MB, a shuffle block of the default order. */
export const DEFAULT_BLOCK_IMAGES = 5000;

export interface PrepareReport {
  readonly manifest: DatasetManifest;
  readonly uploaded: number;
  readonly skipped: number;
  readonly bytes: number;
}

export async function prepareDataset(api: ApiClient, data: Cifar10, name = 'cifar10', blockImages = DEFAULT_BLOCK_IMAGES, log?: (s: string) => void): Promise<PrepareReport> {
  const { manifest, blocks } = await buildDatasetBlocks(data, name, blockImages);
  let uploaded = 0;
  let skipped = 0;
  let bytes = 0;
  for (const [sha, block] of blocks) {
    if (await api.putBlock(sha, block as Uint8Array<ArrayBuffer>)) {
      uploaded++;
      bytes += block.byteLength;
    } else skipped++;
    log?.(`\r  dataset blocks: ${uploaded + skipped}/${blocks.size}`);
  }
  await api.putManifest(name, manifest);
  return { manifest, uploaded, skipped, bytes };
}
