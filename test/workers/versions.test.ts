// Parameter versions in R2 and the update log (coordinator/version-store.ts), through the real Worker
// bundle in Miniflare with persisted state: each version is written once under its tag and read by
// workers from R2; old versions are deleted; every step is durable through the log, and a restarted
// coordinator replays it over the last full state to the very same parameters and Adam moments.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import type { RunRequest, RunSpec } from '../../shared/protocol';
import { paramsPrefix } from '../../shared/storage-keys';
import { ApiClient } from '../../workers/gradient/client';
import { gradientFrame, leaseOrFail, refusal, statusAndReason } from '../support/hand-worker';
import { prepareFixtureDataset } from '../support/fixture-dataset';

const DATASET = 'fixture';
/** One lease per step, so a step is one lease and one answer; 250 steps per epoch (no evaluation here). */
const ONE_SHARD: RunRequest = { dataset: DATASET, batch: 2, evalBatch: 50, epochs: 1, optimizer: { kind: 'adam', lr: 1e-2 }, cluster: { microBatch: 2, leaseMs: 5000 } };
/** Past the full-state interval (32), so the test covers a rewrite, the log's truncation and a replay after it. */
const STEPS = 35;

let dir: string;
let token: string;
let coordinator: LocalCoordinator;
let api: ApiClient;

const start = async () => {
  coordinator = await startCoordinator({ persistDir: dir, token });
  api = new ApiClient(coordinator.url, { token: coordinator.token });
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'edgetrain-versions-'));
  token = `test-${crypto.randomUUID()}`;
  await start();
  await prepareFixtureDataset(api);
});

afterAll(async () => {
  await coordinator?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function keysUnder(prefix: string): Promise<string[]> {
  const bucket = await coordinator.mf.getR2Bucket('DATA');
  return (await bucket.list({ prefix })).objects.map((o) => o.key);
}

/** Step `k`'s gradient: distinct per step and per parameter, so a skipped or repeated update shows. */
const gradientOf = (k: number) => (i: number) => Math.sin(k * 7.1 + i * 0.37) * 0.05;

async function trainSteps(runId: string, spec: RunSpec, from: number, to: number): Promise<void> {
  for (let k = from; k < to; k++) {
    const lease = await leaseOrFail(api, runId);
    expect(lease.step).toBe(k);
    await api.submitGradient(lease, gradientFrame(lease, spec, gradientOf(k)));
  }
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('parameter versions in R2 and the update log', () => {
  it('writes each version once under its tag, serves it by tag from R2, and deletes the one before', async () => {
    const { runId } = await api.createRun(ONE_SHARD);
    const spec = await api.spec(runId);
    const first = await leaseOrFail(api, runId);
    expect(await keysUnder(paramsPrefix(runId))).toEqual([`${paramsPrefix(runId)}00000000-${first.paramsTag}.etpv`]);
    const byTag = await api.params(runId, 0, first.paramsTag);
    const byCoordinator = await api.params(runId, 0);
    expect(bits(byTag.params).equals(bits(byCoordinator.params))).toBe(true);
    await api.submitGradient(first, gradientFrame(first, spec, gradientOf(0)));
    const second = await leaseOrFail(api, runId);
    expect(second.paramsTag).not.toBe(first.paramsTag);
    // Deletion runs after the step's answer; give it a moment.
    await new Promise((r) => setTimeout(r, 200));
    expect(await keysUnder(paramsPrefix(runId))).toEqual([`${paramsPrefix(runId)}00000001-${second.paramsTag}.etpv`]);
    // Without a tag the coordinator says which version is current; version 0 is no longer it.
    expect(statusAndReason(await refusal(api.params(runId, 0)))).toEqual({ status: 410, reason: 'stale' });
    expect(statusAndReason(await refusal(api.params(runId, 1, first.paramsTag)))).toEqual({ status: 404, reason: 'tag' });
    const malformed = await fetch(`${coordinator.url}/v1/runs/${runId}/params/1?tag=zz`, { headers: { authorization: `Bearer ${coordinator.token}` } });
    expect(malformed.status).toBe(400);
    await api.cancel(runId);
  });

  it('makes every step durable through the log: a restarted coordinator replays it to the same parameters and Adam moments', async () => {
    const restarted = (await api.createRun(ONE_SHARD)).runId;
    const straight = (await api.createRun(ONE_SHARD)).runId;
    const spec = await api.spec(restarted);
    await trainSteps(restarted, spec, 0, STEPS);
    // The full state was rewritten at step 32; the replay below covers the steps after it.
    const before = await api.params(restarted, STEPS);

    await coordinator.dispose();
    await start();
    expect((await api.status(restarted)).step).toBe(STEPS);
    const after = await api.params(restarted, STEPS);
    expect(bits(after.params).equals(bits(before.params))).toBe(true);

    // The next update depends on Adam's moments: equal to a run that never restarted only if they were restored.
    await trainSteps(restarted, spec, STEPS, STEPS + 1);
    await trainSteps(straight, spec, 0, STEPS + 1);
    const [a, b] = await Promise.all([api.params(restarted, STEPS + 1), api.params(straight, STEPS + 1)]);
    expect(bits(a.params).equals(bits(b.params))).toBe(true);
    await Promise.all([api.cancel(restarted), api.cancel(straight)]);
  });
});
