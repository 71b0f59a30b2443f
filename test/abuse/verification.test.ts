// Abuse suite: plausible wrong answers (a random gradient of normal size, fake evaluation results)
// against verification by duplicate leases and robust aggregation, through the real Worker bundle in
// Miniflare with hand-driven workers posting frames of known gradients. Every shard is verified here
// (verifyRate 1) so each scenario is deterministic; plain SGD (lr 0.5) makes each update exact.
import { describe, expect, it } from 'vitest';
import type { LocalCoordinator } from '../../cli/cluster/local';
import type { Lease, RunRequest, RunSpec, WorkerSummary } from '../../shared/protocol';
import { ApiClient } from '../../workers/gradient/client';
import { useFixtureCoordinator } from '../support/fixture-dataset';
import { evalFrame, gradientFrame, leaseOrFail, mismatches, namedWorkers, refusal, statusAndReason, waitFor } from '../support/hand-worker';

/** 2 steps per epoch of 2 shards; 100 test images in 2 eval shards of 50. */
const TINY: RunRequest = { dataset: 'fixture', trainLimit: 128, batch: 64, evalBatch: 50, epochs: 1, optimizer: { kind: 'sgd', lr: 0.5, momentum: 0 }, cluster: { microBatch: 32, leaseMs: 60_000 } };

let coordinator: LocalCoordinator;
let api: ApiClient;

useFixtureCoordinator((local) => ({ coordinator, api } = local));

const worker = namedWorkers(() => new ApiClient(coordinator.url, { token: coordinator.token }));
/** The id the coordinator minted for the test's worker `name` on run `runId`. */
const idOf = async (name: string, runId: string) => (await worker(name).identity(runId)).workerId;

async function createRun(cluster: RunRequest['cluster'], overrides: RunRequest = {}): Promise<{ runId: string; spec: RunSpec }> {
  const created = await api.createRun({ ...TINY, ...overrides, cluster: { ...TINY.cluster, ...cluster } });
  return { runId: created.runId, spec: await api.spec(created.runId) };
}

async function workerOf(runId: string, id: string): Promise<WorkerSummary> {
  const minted = await idOf(id, runId);
  const w = (await api.status(runId)).workers.find((x) => x.worker === minted);
  if (!w) throw new Error(`run ${runId} lists no worker ${id}`);
  return w;
}

/** A lease of `shard` for `client` (fails if it gets another). */
async function leaseOf(client: ApiClient, runId: string, shard: number): Promise<Lease> {
  const l = await leaseOrFail(client, runId);
  expect(l.shard).toBe(shard);
  return l;
}

const gradient = (client: ApiClient, l: Lease, spec: RunSpec, value: number | ((i: number) => number)) => client.submitGradient(l, gradientFrame(l, spec, value));

/** A random gradient of about the honest one's norm (values ±1, as the honest ones are 1). */
const randomGradient = (seed: number) => (i: number) => (Math.sin(i * 12.9898 + seed) * 43758.5453) % 1 < 0 ? -1 : 1;

describe('verification by duplicate leases (Miniflare: real DO, KV, R2)', () => {
  it('a random gradient of normal size is caught: the shard goes to a third worker, the liar is excluded, the step applies the honest answers exactly', async () => {
    const { runId, spec } = await createRun({ verifyRate: 1 });
    const v0 = (await api.params(runId, 0)).params.slice();
    const [a, b, liar] = [worker('v-a'), worker('v-b'), worker('v-liar')];
    // Shard 0 goes to two workers at once; neither can tell it is checked.
    const la = await leaseOf(a, runId, 0);
    const lc = await leaseOf(liar, runId, 0);
    expect(await gradient(a, la, spec, 1)).toEqual({ accepted: true, version: 0 });
    expect(await gradient(liar, lc, spec, randomGradient(1))).toEqual({ accepted: true, version: 0 });
    // They disagree: a third worker decides. a and the liar answered shard 0 and get shard 1 instead.
    const lb = await leaseOf(b, runId, 0);
    expect(await gradient(b, lb, spec, 1)).toEqual({ accepted: true, version: 0 });
    const excluded = await workerOf(runId, 'v-liar');
    expect(excluded.excluded).toMatch(/answer to train shard 0 at step 0 differed from two other workers' \(verification\)/);
    expect(excluded.excludedAt).toBeGreaterThan(0);
    expect(statusAndReason(await refusal(liar.lease(runId)))).toEqual({ status: 403, reason: 'excluded' });
    // Shard 1: answered alike by a and b, the step applies the mean of the honest answers.
    const a1 = await leaseOf(a, runId, 1);
    const b1 = await leaseOf(b, runId, 1);
    expect(await gradient(a, a1, spec, 1)).toEqual({ accepted: true, version: 0 });
    expect(await gradient(b, b1, spec, 1)).toEqual({ accepted: true, version: 1 });
    expect(mismatches((await api.params(runId, 1)).params, (i) => v0[i] - 0.5)).toEqual([]);
    expect((await api.metrics(runId)).steps[0].workers).toEqual({ [await idOf('v-a', runId)]: 2 });
  });

  it("a liar's answers already counted in the open step are discarded: the step is taken again and applies only honest answers", async () => {
    const { runId, spec } = await createRun({ verifyRate: 1 });
    const v0 = (await api.params(runId, 0)).params.slice();
    const [a, b, liar] = [worker('d-a'), worker('d-b'), worker('d-liar')];
    // Shard 0: the liar answers first and honestly, a agrees: the liar's answer counts.
    const lc0 = await leaseOf(liar, runId, 0);
    const la0 = await leaseOf(a, runId, 0);
    await gradient(liar, lc0, spec, 1);
    await gradient(a, la0, spec, 1);
    // Shard 1: the liar lies; b disagrees; a decides.
    const lc1 = await leaseOf(liar, runId, 1);
    const lb1 = await leaseOf(b, runId, 1);
    await gradient(liar, lc1, spec, 7);
    await gradient(b, lb1, spec, 3);
    const la1 = await leaseOf(a, runId, 1);
    expect(await gradient(a, la1, spec, 3)).toEqual({ accepted: true, version: 0 });
    expect((await workerOf(runId, 'd-liar')).excluded).toMatch(/train shard 1 at step 0/);
    // Shard 1 stays counted (b and a agreed); shard 0, counted from the liar, is leased again to both.
    const again = [await leaseOrFail(a, runId), await leaseOrFail(b, runId)];
    expect(again.map((l) => l.shard)).toEqual([0, 0]);
    await gradient(a, again[0], spec, 1);
    expect(await gradient(b, again[1], spec, 1)).toEqual({ accepted: true, version: 1 });
    expect(mismatches((await api.params(runId, 1)).params, (i) => v0[i] - 0.5 * 2)).toEqual([]);
    expect((await api.metrics(runId)).steps[0].workers).not.toHaveProperty(await idOf('d-liar', runId));
  });

  it('fake evaluation answers (100 % correct) are caught and the reported accuracy is the honest one', async () => {
    const { runId, spec } = await createRun({ verifyRate: 1 });
    const [a, b, liar] = [worker('e-a'), worker('e-b'), worker('e-liar')];
    for (let step = 0; step < 2; step++) {
      for (const shard of [0, 1]) {
        const la = await leaseOf(a, runId, shard);
        const lb = await leaseOf(b, runId, shard);
        await gradient(a, la, spec, 1 + step * 2 + shard);
        await gradient(b, lb, spec, 1 + step * 2 + shard);
      }
    }
    expect(await api.status(runId)).toMatchObject({ phase: 'eval' });
    // Eval shard 0: the liar answers honestly first and a agrees (the liar's part counts); shard 1:
    // the liar claims every image right, b disagrees, a decides.
    const e0 = [await leaseOf(liar, runId, 0), await leaseOf(a, runId, 0)];
    await liar.submitEval(e0[0], evalFrame(e0[0], 60, 10));
    await a.submitEval(e0[1], evalFrame(e0[1], 60, 10));
    const e1 = [await leaseOf(liar, runId, 1), await leaseOf(b, runId, 1)];
    await liar.submitEval(e1[0], evalFrame(e1[0], 0.5, 50));
    await b.submitEval(e1[1], evalFrame(e1[1], 80, 20));
    const e1a = await leaseOf(a, runId, 1);
    await a.submitEval(e1a, evalFrame(e1a, 80, 20));
    expect((await workerOf(runId, 'e-liar')).excluded).toMatch(/eval shard 1 at step 2/);
    // Eval shard 0's part was the liar's: evaluated again, by a and b.
    const again = [await leaseOf(a, runId, 0), await leaseOf(b, runId, 0)];
    await a.submitEval(again[0], evalFrame(again[0], 60, 10));
    await b.submitEval(again[1], evalFrame(again[1], 60, 10));
    const status = await waitFor(() => api.status(runId), (s) => s.state === 'completed', 5000, 'the run to complete');
    expect(status.testAccuracy).toBeCloseTo(30 / 100, 10);
  });

  it('with a draw too rare to pick anything, an evaluation part claiming every image right among honest ones is verified anyway and its worker excluded', async () => {
    const { runId, spec } = await createRun({ verifyRate: 1e-9 }, { evalBatch: 20 });
    const [a, b, liar] = [worker('q-a'), worker('q-b'), worker('q-liar')];
    for (let step = 0; step < 2; step++) {
      for (const shard of [0, 1]) {
        const l = await leaseOf(a, runId, shard);
        await gradient(a, l, spec, 1 + step * 2 + shard);
      }
    }
    // Five eval shards of 20 images: three honest parts at 10 %, then 100 % from the liar.
    for (const shard of [0, 1, 2]) {
      const l = await leaseOf(a, runId, shard);
      await a.submitEval(l, evalFrame(l, 40, 2));
    }
    const fake = await leaseOf(liar, runId, 3);
    expect(await liar.submitEval(fake, evalFrame(fake, 0.1, 20))).toEqual({ accepted: true, version: 2 });
    const second = await leaseOf(b, runId, 3);
    await b.submitEval(second, evalFrame(second, 40, 2));
    const third = await leaseOf(a, runId, 3);
    await a.submitEval(third, evalFrame(third, 40, 2));
    expect((await workerOf(runId, 'q-liar')).excluded).toMatch(/eval shard 3 at step 2/);
    const last = await leaseOf(b, runId, 4);
    await b.submitEval(last, evalFrame(last, 40, 2));
    const status = await waitFor(() => api.status(runId), (s) => s.state === 'completed', 5000, 'the run to complete');
    expect(status.testAccuracy).toBeCloseTo(0.1, 10);
    expect(status.verification).toMatchObject({ suspectEvals: 1, disagreements: 1, liars: 1 });
  });

  it('verification and robust aggregation refuse aggregators, and a config over the coordinator memory budget', async () => {
    const bad = await refusal(api.createRun({ ...TINY, cluster: { ...TINY.cluster, verifyRate: 0.05, aggregators: 1 } }));
    expect(bad.status).toBe(400);
    expect(bad.body.issues).toEqual([{ path: 'cluster.aggregators', message: 'verifyRate 0.05 needs every shard\'s answer at the coordinator: use aggregators 0' }]);
    const median = await refusal(api.createRun({ ...TINY, cluster: { ...TINY.cluster, aggregation: 'median', aggregators: 2 } }));
    expect(median.body.issues?.[0].message).toMatch(/aggregation 'median' needs every shard's answer/);
    const big = await refusal(api.createRun({ ...TINY, trainLimit: 500, batch: 480, cluster: { microBatch: 4, verifyRate: 0.2 } }));
    expect({ status: big.status, reason: big.body.reason }).toEqual({ status: 400, reason: 'config' });
    expect(big.body.error).toMatch(/keeps up to 120 answers .* over its 48 MiB budget/);
  });
});

describe('robust aggregation (Miniflare)', () => {
  it('median over three shards: one wild gradient moves no parameter', async () => {
    const request: RunRequest = { ...TINY, batch: 96, cluster: { microBatch: 32, leaseMs: 60_000, aggregation: 'median' } };
    const created = await api.createRun(request);
    const { runId } = created;
    const spec = await api.spec(runId);
    const v0 = (await api.params(runId, 0)).params.slice();
    const [a, b, c] = [worker('m-a'), worker('m-b'), worker('m-c')];
    const leases = [await leaseOf(a, runId, 0), await leaseOf(b, runId, 1), await leaseOf(c, runId, 2)];
    await gradient(a, leases[0], spec, 1);
    await gradient(b, leases[1], spec, 1);
    expect(await gradient(c, leases[2], spec, (i) => (i % 2 ? 5 : -5))).toEqual({ accepted: true, version: 1 });
    expect(mismatches((await api.params(runId, 1)).params, (i) => v0[i] - 0.5)).toEqual([]);
  });
});
