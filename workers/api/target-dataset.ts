// A run's target domain at creation: config.targetDataset looked up and held against the source
// dataset and the run, so that a run is refused before anything is stored rather than failing later.
import type { R2Bucket } from '@cloudflare/workers-types/index';
import type { DatasetManifest } from '../../shared/data/blocks';
import type { RunConfig } from '../../shared/protocol';
import { RunPlan } from '../../shared/training/plan';
import { findManifest } from './datasets';
import type { ErrorBody } from './respond';

export type TargetLookup = { readonly manifest?: DatasetManifest } | { readonly refusal: ErrorBody };

const refusal = (error: string, reason: string, message: string): { refusal: ErrorBody } => ({ refusal: { error, reason, issues: [{ path: 'targetDataset', message }] } });

/** The target's manifest (none when the run names no target), or why the run cannot have it. */
export async function findTargetDataset(bucket: R2Bucket, config: RunConfig, source: DatasetManifest): Promise<TargetLookup> {
  const name = config.targetDataset;
  if (name === undefined) return {};
  const manifest = await findManifest(bucket, name);
  if (!manifest) return refusal(`dataset '${name}' is not prepared: run \`edgetrain prepare\` with that name first`, 'dataset', 'not found');
  if (manifest.classes.length !== source.classes.length || manifest.classes.some((c, i) => c !== source.classes[i])) {
    const problem = `has classes [${manifest.classes.join(', ')}]; dataset '${config.dataset}' has [${source.classes.join(', ')}]: a target domain must name the same classes in the same order`;
    return refusal(`target dataset '${name}' ${problem}`, 'dataset', problem);
  }
  if (config.train.model.dann) {
    let images: number;
    try {
      images = new RunPlan(config.train, source.train.count).trainCount;
    } catch {
      // A config the plan refuses is the coordinator's to report, with its own message.
      return { manifest };
    }
    if (manifest.train.count < images) {
      const problem = `has ${manifest.train.count} train images, fewer than the ${images} source images a DANN epoch pairs them with (lower trainLimit, or prepare a larger target)`;
      return refusal(`target dataset '${name}' ${problem}`, 'dataset', problem);
    }
  }
  return { manifest };
}
