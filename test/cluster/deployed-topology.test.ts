// The deployed topology (wrangler.toml and workers/gradient/wrangler.toml) in one workerd: creating a
// run makes its coordinator send its chains' queue messages, the gradient script consumes them, each
// invocation claims its chain and loops over leases calling the API through its service binding (no
// API_URL) until its budget is spent, then the coordinator sends the chain's next message.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { assembleCifar10 } from '../../shared/data/cifar';
import { FINAL_STATES, type RunStatus } from '../../shared/protocol';
import { ApiClient } from '../../workers/gradient/client';
import { fixtureFiles } from '../support/cifar-fixture';

describe('the API script and the gradient script (its queue consumer, bound to it by a service binding), as deployed', () => {
  let coordinator: LocalCoordinator;
  let api: ApiClient;

  beforeAll(async () => {
    // A 1.5 s budget per invocation, so the run needs several invocations chained through the queue.
    coordinator = await startCoordinator({ queue: { budgetMs: 1500 } });
    api = new ApiClient(coordinator.url, { workerId: 'topology-test', token: coordinator.token });
    await prepareDataset(api, assembleCifar10(fixtureFiles(100), 'fixture'), 'fixture', 128);
  });

  afterAll(async () => {
    await coordinator?.dispose();
  });

  it('a run created over HTTP is trained to completion by queue-fanned invocations that hand over to each other', async () => {
    const created = await api.createRun({ dataset: 'fixture', epochs: 2, batch: 64, evalBatch: 50, trainLimit: 256, cluster: { microBatch: 32, workers: 2 } });
    let status: RunStatus = created;
    const deadline = Date.now() + 150_000;
    while (!FINAL_STATES.includes(status.state) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      status = await api.status(created.runId);
    }
    expect(status.state).toBe('completed');
    expect(status.step).toBe(8);
    const metrics = await api.metrics(created.runId);
    expect(metrics.steps).toHaveLength(8);
    expect(metrics.evals).toHaveLength(2);
    // Two chains, each working under one stable id across its invocations; a generation past 1 means
    // an invocation ran out of budget and the coordinator sent the chain's next message.
    expect(status.workers.map((w) => w.worker).sort()).toEqual(['chain-0', 'chain-1']);
    expect(status.fleet?.chains.map((c) => c.chain)).toEqual(['chain-0', 'chain-1']);
    expect(Math.max(...status.fleet!.chains.map((c) => c.generation))).toBeGreaterThan(1);
    expect(status.fleet?.restarts).toBe(0);
  }, 180_000);
});
