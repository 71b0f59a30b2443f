// Dataset preparation: CIFAR-10 (or a shifted domain of it, --shift) → content-addressed blocks uploaded through the API (local or deployed),
// then the named manifest. Blocks already stored are skipped, so running it again uploads nothing.
import type { Cifar10 } from '../shared/data/cifar';
import { buildDatasetBlocks, type DatasetManifest } from '../shared/data/blocks';
import { CORRUPTION_FAMILIES, corruptCifar10, parseDomainShift, shiftedDatasetName, type DomainShift } from '../shared/data/corruptions';
import { ApiClient } from '../workers/gradient/client';
import { UsageError, intFlag, numberFlag, parseFlags } from './args';
import type { Command } from './command';
import { connect } from './connect';
import { loadCifar10 } from './dataset';
import { EXIT } from './errors';

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

/**
 * CIFAR-10 with a corruption applied to both splits (a shifted target domain), uploaded as a dataset of
 * its own, by default named after the shift (`cifar10-fog-3`).
 */
export function prepareShiftedDataset(api: ApiClient, data: Cifar10, shift: DomainShift, seed = 0, name = shiftedDatasetName('cifar10', shift, seed), blockImages = DEFAULT_BLOCK_IMAGES, log?: (s: string) => void): Promise<PrepareReport> {
  return prepareDataset(api, corruptCifar10(data, shift, seed), name, blockImages, log);
}

export const PREPARE_USAGE = `edgetrain prepare [options]   upload CIFAR-10 as content-addressed blocks (once; a re-run uploads nothing)
  --url URL              a deployed edgetrain API (default: the local cluster's state, see --state)
  --state DIR            local cluster state (default .edgetrain/state)
  --data PATH            CIFAR-10 .tar.gz or folder (default $EDGETRAIN_CIFAR10, ../shared/data, cache, download)
  --name NAME (cifar10)  --block-images N (${DEFAULT_BLOCK_IMAGES})
  --shift FAMILY:SEVERITY  a shifted domain instead: both splits corrupted (CIFAR-10-C style), stored as
                         NAME-FAMILY-SEVERITY (cifar10-fog-3); severity 1 … 5, families:
                         ${CORRUPTION_FAMILIES.join(', ')}
  --shift-seed N (0)     seeds the random corruptions (noise, fog); each image draws from its own generator
                         (a seed other than 0 is part of the name: cifar10-fog-3-seed7)`;

const FLAGS = {
  url: { type: 'string' },
  state: { type: 'string' },
  data: { type: 'string' },
  name: { type: 'string' },
  'block-images': { type: 'string' },
  shift: { type: 'string' },
  'shift-seed': { type: 'string' },
} as const;

/** A shift flag (`--shift`, `--target`: FAMILY:SEVERITY) and its seed flag, or undefined when not given. */
export function shiftFromFlags(flag: string, raw: string | undefined, seedFlag: string, rawSeed: string | undefined): { shift: DomainShift; seed: number } | undefined {
  if (raw === undefined) {
    if (rawSeed !== undefined) throw new UsageError(`--${seedFlag}: only with --${flag}`);
    return undefined;
  }
  let shift: DomainShift;
  try {
    shift = parseDomainShift(raw);
  } catch (e) {
    throw new UsageError(`--${flag}: ${(e as Error).message}`);
  }
  return { shift, seed: intFlag(seedFlag, rawSeed, 0) };
}

export async function runPrepare(argv: string[], log: (s: string) => void = console.log): Promise<PrepareReport> {
  const flags = parseFlags(argv, FLAGS, 'prepare');
  const blockImages = numberFlag('block-images', flags['block-images'], DEFAULT_BLOCK_IMAGES);
  const shifted = shiftFromFlags('shift', flags.shift, 'shift-seed', flags['shift-seed']);
  const name = flags.name ?? 'cifar10';
  const data = await loadCifar10({ path: flags.data, log });
  const { api, close } = await connect(flags);
  try {
    const report = shifted ? await prepareShiftedDataset(api, data, shifted.shift, shifted.seed, shiftedDatasetName(name, shifted.shift, shifted.seed), blockImages) : await prepareDataset(api, data, name, blockImages);
    log(`dataset ${report.manifest.name} = ${report.manifest.id}: ${report.uploaded} block(s) uploaded (${(report.bytes / 1e6).toFixed(1)} MB), ${report.skipped} already stored`);
    return report;
  } finally {
    await close();
  }
}

export const prepareCommand: Command = { usage: PREPARE_USAGE, run: async (argv, ctx) => (await runPrepare(argv, ctx.out.line), EXIT.ok) };
