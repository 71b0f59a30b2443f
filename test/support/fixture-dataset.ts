// The small generated CIFAR-10 (500 train / 100 test images) prepared as dataset 'fixture' in blocks
// of 128: what the coordinator, cluster and browser tests train on.
import { prepareDataset, type PrepareReport } from '../../cli/prepare';
import { assembleCifar10 } from '../../shared/data/cifar';
import { afterAll, beforeAll } from 'vitest';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import { ApiClient } from '../../workers/gradient/client';
import { fixtureFiles } from './cifar-fixture';

export const FIXTURE_DATASET = 'fixture';

export function prepareFixtureDataset(api: ApiClient): Promise<PrepareReport> {
  return prepareDataset(api, assembleCifar10(fixtureFiles(100), FIXTURE_DATASET), FIXTURE_DATASET, 128);
}

/**
 * A test file's local coordinator with the fixture dataset: started before its tests (`ready` gets it
 * and the operator's client) and disposed of after them.
 */
export function useFixtureCoordinator(ready: (local: { coordinator: LocalCoordinator; api: ApiClient }) => void): void {
  let coordinator: LocalCoordinator | undefined;
  beforeAll(async () => {
    coordinator = await startCoordinator();
    const api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareFixtureDataset(api);
    ready({ coordinator, api });
  });
  afterAll(async () => {
    await coordinator?.dispose();
  });
}
