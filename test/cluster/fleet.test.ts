// The supervised fleet through the real API Worker and coordinator in Miniflare, with the work queue
// real too (Miniflare's, which like Cloudflare refuses more than 100 messages per sendBatch) and its
// messages recorded instead of consumed: the test acts as the chains' invocations by hand (claims,
// leases, handovers, silence), so every decision of the coordinator can be checked exactly. The whole
// fleet with real consumer processes is in cloudflare-profile.test.ts.
//
// Each test has a workerd of its own and is retried once: workerd 2026-04-26 at times stops answering
// (its thread spins in V8's incremental sweeper; see test/cluster/deployed-topology.test.ts), and a
// retry in a fresh process tells that apart from a coordinator that is wrong every time.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { QueuedMessage } from '../../cli/cluster/queue-broker';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import type { ChainMessage, ChainTicket, RunCreated, RunRequest } from '../../shared/protocol';
import { credentialClaims } from '../../shared/auth';
import { ApiClient } from '../../workers/gradient/client';
import { gradientFrame, refusal, statusAndReason, waitFor } from '../support/hand-worker';
import { prepareFixtureDataset } from '../support/fixture-dataset';

const TINY: RunRequest = { dataset: 'fixture', trainLimit: 128, batch: 64, evalBatch: 50, epochs: 1, cluster: { microBatch: 32, leaseMs: 1000 } };
const MAX_CONCURRENCY = 250;

let coordinator: LocalCoordinator;
let api: ApiClient;
const recorded: QueuedMessage<ChainMessage>[] = [];

beforeEach(async () => {
  coordinator = await startCoordinator({
    workQueue: {
      relay: async (request) => {
        recorded.push(...((await request.json()) as QueuedMessage<ChainMessage>[]));
        return new Response('ok');
      },
      maxConcurrency: MAX_CONCURRENCY,
    },
  });
  api = new ApiClient(coordinator.url, { token: coordinator.token });
  await prepareFixtureDataset(api);
});

afterEach(async () => {
  await coordinator?.dispose();
});

const messagesOf = (runId: string) => recorded.filter((m) => m.body.runId === runId);

async function createRun(workers: number): Promise<RunCreated> {
  return api.createRun({ ...TINY, cluster: { ...TINY.cluster, workers } });
}

/** Waits for `count` messages of a run, and returns them. */
const awaitMessages = (runId: string, count: number, timeoutMs = 5000) =>
  waitFor(async () => messagesOf(runId), (m) => m.length >= count, timeoutMs, `${count} queue messages of run ${runId}`);

/** The chain as one invocation of `message` (attempt `attempts`) sees it. */
function invocation(message: QueuedMessage<ChainMessage>, attempts = message.attempts, nonce = crypto.randomUUID().replaceAll('-', '').slice(0, 16)) {
  const client = new ApiClient(coordinator.url, { token: message.body.token });
  const ticket: ChainTicket = { generation: message.body.generation, invocation: `${message.id}/${attempts}/${nonce}` };
  return { client, ticket, runId: message.body.runId };
}

describe('the supervised fleet', { retry: 1, timeout: 75_000 }, () => {
  it('cluster.workers 150 fans out in two sendBatch calls of at most 100, one message per chain', async () => {
    const run = await createRun(150);
    const messages = await awaitMessages(run.runId, 150);
    expect(messages).toHaveLength(150);
    expect(new Set(messages.map((m) => m.body.chain)).size).toBe(150);
    // Each chain's message carries its own credential, for its own id and run (not the run's worker token).
    expect(messages.every((m) => m.body.generation === 1 && credentialClaims(m.body.token)?.workerId === m.body.chain && credentialClaims(m.body.token)?.runId === run.runId)).toBe(true);
    const status = await api.status(run.runId);
    expect(status.fleet?.target).toBe(150);
    expect(status.fleet?.chains).toHaveLength(150);
    await api.cancel(run.runId);
  });

  it("more workers than the queue's concurrency are refused at creation, naming the field and the limit", async () => {
    const e = await refusal(createRun(MAX_CONCURRENCY + 1));
    expect(statusAndReason(e)).toEqual({ status: 400, reason: 'config' });
    expect(e.body.issues?.[0]?.path).toBe('cluster.workers');
    expect(e.body.error).toContain(`at most ${MAX_CONCURRENCY} consumer invocations`);
  });

  it('a duplicated chain message yields no extra chain; a retry takes over; the superseded invocation is told to stop', async () => {
    const run = await createRun(2);
    const [m0] = await awaitMessages(run.runId, 2);
    const first = invocation(m0);
    expect(await first.client.claimChain(run.runId, first.ticket)).toEqual({ type: 'go' });
    // The claim resent by the same invocation is fine; a second delivery of the same message is not.
    expect(await first.client.claimChain(run.runId, first.ticket)).toEqual({ type: 'go' });
    const duplicate = invocation(m0);
    expect(await duplicate.client.claimChain(run.runId, duplicate.ticket)).toMatchObject({ type: 'stop', reason: 'duplicate' });
    expect(await duplicate.client.lease(run.runId, duplicate.ticket)).toMatchObject({ type: 'stop', reason: 'superseded' });
    expect((await first.client.lease(run.runId, first.ticket)).type).toBe('lease');
    // The queue's retry of the message (a higher attempt: the first attempt failed) takes the chain over.
    const retry = invocation(m0, m0.attempts + 1);
    expect(await retry.client.claimChain(run.runId, retry.ticket)).toEqual({ type: 'go' });
    expect(await first.client.lease(run.runId, first.ticket)).toMatchObject({ type: 'stop', reason: 'superseded' });
    // A worker calling itself a chain without a ticket is refused the chain's work.
    expect(await new ApiClient(coordinator.url, { token: m0.body.token }).lease(run.runId)).toMatchObject({ type: 'stop' });
    // Handing over sends exactly one message: the chain's next generation.
    expect(await retry.client.handOver(run.runId, retry.ticket)).toEqual({ handedOver: true });
    expect(await first.client.handOver(run.runId, first.ticket)).toEqual({ handedOver: false });
    const messages = await awaitMessages(run.runId, 3);
    expect(messages).toHaveLength(3);
    expect(messages[2].body).toMatchObject({ chain: m0.body.chain, generation: 2 });
    expect(await retry.client.claimChain(run.runId, retry.ticket)).toMatchObject({ type: 'stop', reason: 'superseded' });
    const status = await api.status(run.runId);
    expect(status.fleet?.chains).toHaveLength(2);
    expect(status.workers.map((w) => w.worker)).toEqual([m0.body.chain]);
    await api.cancel(run.runId);
  });

  it('the fleet is restored after every chain dies: silent chains are sent again, dead letters at once', async () => {
    const run = await createRun(2);
    const [m0, m1] = await awaitMessages(run.runId, 2);
    for (const m of [m0, m1]) {
      const inv = invocation(m);
      expect(await inv.client.claimChain(run.runId, inv.ticket)).toEqual({ type: 'go' });
      expect((await inv.client.lease(run.runId, inv.ticket)).type).toBe('lease');
    }
    // Both invocations die without a word. Chain 1's message is also dead-lettered (every retry
    // failed): the coordinator hears of it through the API Worker's dead-letter consumer.
    const apiWorker = await coordinator.mf.getWorker('edgetrain');
    const dead = await apiWorker.queue('edgetrain-work-dlq', [{ id: m1.id, timestamp: new Date(m1.timestamp), attempts: 3, body: m1.body }]);
    expect(dead.outcome).toBe('ok');
    const afterDlq = await api.status(run.runId);
    expect(afterDlq.fleet?.chains.map((c) => [c.chain, c.generation, c.restarts])).toEqual([
      [m0.body.chain, 1, 0],
      [m1.body.chain, 2, 1],
    ]);
    // Silent past leaseMs + the margin: the alarm sends chain 0's next generation too (after its delay).
    const messages = await awaitMessages(run.runId, 4, 45_000);
    const restarted = messages.slice(2).map((m) => [m.body.chain, m.body.generation]);
    expect(restarted).toEqual(expect.arrayContaining([[m0.body.chain, 2], [m1.body.chain, 2]]));
    const status = await api.status(run.runId);
    expect(status.fleet?.restarts).toBe(2);
    expect(status.fleet?.chains.map((c) => c.generation)).toEqual([2, 2]);
    // The restarted chains work again; the dead invocations, were they only slow, are told to stop.
    const revived = invocation(messages.find((m) => m.body.chain === m0.body.chain && m.body.generation === 2)!);
    expect(await revived.client.claimChain(run.runId, revived.ticket)).toEqual({ type: 'go' });
    expect((await revived.client.lease(run.runId, revived.ticket)).type).not.toBe('stop');
    await api.cancel(run.runId);
  }, 60_000);

  it('a coordinator reset mid-run (as a deploy does) is answered 503 + Retry-After and retried, not fatal', async () => {
    const run = await createRun(1);
    const spec = await api.spec(run.runId);
    const a = new ApiClient(coordinator.url, { token: run.workerToken, retryForMs: 20_000 });
    const b = new ApiClient(coordinator.url, { token: run.workerToken, retryForMs: 20_000 });
    const leaseA = await a.lease(run.runId);
    const leaseB = await b.lease(run.runId);
    if (leaseA.type !== 'lease' || leaseB.type !== 'lease') throw new Error('expected two leases');
    // Both shards are out: a third worker's lease request long-polls inside the coordinator when the reset comes.
    const { credential } = await new ApiClient(coordinator.url, { token: run.workerToken }).identity(run.runId);
    const polling = fetch(`${coordinator.url}/v1/runs/${run.runId}/leases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      body: '{}',
    });
    await new Promise((r) => setTimeout(r, 300));
    const reset = await fetch(`${coordinator.url}/v1/runs/${run.runId}/reset`, { method: 'POST', headers: { authorization: `Bearer ${coordinator.token}` } });
    expect(reset.status).toBe(202);
    const interrupted = await polling;
    expect(interrupted.status).toBe(503);
    expect(interrupted.headers.get('retry-after')).toBe('1');
    expect(((await interrupted.json()) as { reason: string }).reason).toBe('retryable');
    // The leases survived in the object's storage: both answers count and the step is applied.
    expect(await a.submitGradient(leaseA.lease, gradientFrame(leaseA.lease, spec, 0.01))).toMatchObject({ accepted: true });
    expect(await b.submitGradient(leaseB.lease, gradientFrame(leaseB.lease, spec, 0.01))).toMatchObject({ accepted: true, version: 1 });
    expect((await api.status(run.runId)).state).toBe('training');
    await api.cancel(run.runId);
  });
});
