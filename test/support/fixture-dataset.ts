// The small generated CIFAR-10 (500 train / 100 test images) prepared as dataset 'fixture' in blocks
// of 128: what the coordinator, cluster and browser tests train on.
import { prepareDataset, type PrepareReport } from '../../cli/prepare';
import { assembleCifar10 } from '../../shared/data/cifar';
import type { ApiClient } from '../../workers/gradient/client';
import { fixtureFiles } from './cifar-fixture';

export const FIXTURE_DATASET = 'fixture';

export function prepareFixtureDataset(api: ApiClient): Promise<PrepareReport> {
  return prepareDataset(api, assembleCifar10(fixtureFiles(100), FIXTURE_DATASET), FIXTURE_DATASET, 128);
}
