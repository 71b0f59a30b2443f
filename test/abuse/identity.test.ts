// The abuse suite, identity and the lease/answer routes: what a hostile or careless client can do with
// ids, credentials and answer bodies, against the real API and coordinator in Miniflare. Each test
// names a finding and the answer the API must give.
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import type { LocalCoordinator } from '../../cli/cluster/local';
import { signingKey, workerCredential, workerToken } from '../../shared/auth';
import type { Lease, RunRequest, RunSpec, RunStatus, WorkerIdentity } from '../../shared/protocol';
import { ApiClient, ApiError } from '../../workers/gradient/client';
import { useFixtureCoordinator } from '../support/fixture-dataset';
import { evalFrame, gradientFrame, leaseOrFail, refusal, statusAndReason } from '../support/hand-worker';

const DATASET = 'fixture';
/** Two shards of 32 per step, two steps, one evaluation. */
const TINY: RunRequest = { dataset: DATASET, trainLimit: 128, batch: 64, evalBatch: 50, epochs: 1, cluster: { microBatch: 32, leaseMs: 60_000 } };

let coordinator: LocalCoordinator;
/** The operator's client. */
let api: ApiClient;

useFixtureCoordinator((local) => ({ coordinator, api } = local));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function createRun(overrides: RunRequest = {}): Promise<{ runId: string; workerToken: string; spec: RunSpec }> {
  const created = await api.createRun({ ...TINY, ...overrides, cluster: { ...TINY.cluster, ...overrides.cluster } });
  return { runId: created.runId, workerToken: created.workerToken, spec: await api.spec(created.runId) };
}

async function post(path: string, headers: Record<string, string>, body?: BodyInit): Promise<{ status: number; body: { error?: string; reason?: string } & Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${coordinator.url}${path}`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function mint(runId: string, token: string): Promise<WorkerIdentity> {
  const r = await post(`/v1/runs/${runId}/workers`, bearer(token));
  if (r.status !== 201) throw new Error(`mint: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as unknown as WorkerIdentity;
}

const workerRows = async (runId: string) => (await api.status(runId)).workers.map((w) => w.worker).sort();

interface RawResult {
  /** 0 when the connection was reset before an answer came. */
  status: number;
  body: string;
  /** Body bytes handed to the socket before the answer (or the reset). */
  sent: number;
  ms: number;
}

/**
 * POSTs `total` body bytes in `chunk`-byte writes (waiting for the socket to drain, or `everyMs` between
 * writes), stopping as soon as an answer arrives. Without `contentLength`, the body is sent chunked.
 */
function rawPost(path: string, headers: Record<string, string>, o: { total: number; chunk: number; everyMs?: number; contentLength?: number | null }): Promise<RawResult> {
  const url = new URL(`${coordinator.url}${path}`);
  const length = o.contentLength === undefined ? o.total : o.contentLength;
  return new Promise((resolve) => {
    let sent = 0;
    let answered = false;
    const t0 = Date.now();
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...headers, ...(length === null ? {} : { 'content-length': String(length) }) } });
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: text, sent, ms: Date.now() - t0 });
        req.destroy();
      });
    });
    req.on('error', () => {
      if (!answered) resolve({ status: 0, body: '', sent, ms: Date.now() - t0 });
    });
    const buf = Buffer.alloc(o.chunk, 7);
    void (async () => {
      while (!answered && !req.destroyed && sent < o.total) {
        const n = Math.min(o.chunk, o.total - sent);
        const flushed = req.write(buf.subarray(0, n));
        sent += n;
        if (o.everyMs) await sleep(o.everyMs);
        else if (!flushed) await new Promise<void>((r) => {
            const go = () => {
              req.off('drain', go);
              req.off('close', go);
              r();
            };
            req.on('drain', go);
            req.on('close', go);
          });
      }
      if (!answered && !req.destroyed) req.end();
    })();
  });
}

/** A lease and the raw headers its answer goes with. */
async function leaseWithHeaders(client: ApiClient, runId: string): Promise<{ lease: Lease & { maxBytes: number }; headers: Record<string, string> }> {
  const lease = (await leaseOrFail(client, runId)) as Lease & { maxBytes: number };
  const { credential } = await client.identity(runId);
  return { lease, headers: { ...bearer(credential), 'x-lease-token': lease.token, 'content-type': 'application/octet-stream' } };
}

describe('abuse: worker identity and the lease/answer routes', () => {
  it('a worker id is minted by the coordinator, never chosen by the caller: POST /workers → 201 {workerId, credential, expiresAt}; x-worker-id naming another → 400', async () => {
    const run = await createRun();
    const before = Date.now();
    const me = await mint(run.runId, run.workerToken);
    expect(me.workerId).toMatch(/^w-[0-9a-f]{16}$/);
    expect(me.credential.startsWith(`etc.${run.runId}.${me.workerId}.`)).toBe(true);
    // Six hours, as docs/api.md says.
    expect(me.expiresAt - before).toBeGreaterThan(6 * 3_600_000 - 60_000);
    expect(me.expiresAt - before).toBeLessThanOrEqual(6 * 3_600_000 + 60_000);
    const leased = await post(`/v1/runs/${run.runId}/leases`, { ...bearer(me.credential), 'content-type': 'application/json' }, '{}');
    expect(leased.status).toBe(200);
    expect(await workerRows(run.runId)).toEqual([me.workerId]);
    const renamed = await post(`/v1/runs/${run.runId}/leases`, { ...bearer(me.credential), 'content-type': 'application/json', 'x-worker-id': 'someone-else' }, '{}');
    expect([renamed.status, renamed.body.reason]).toEqual([400, 'worker-id']);
    expect(renamed.body.error).toContain(me.workerId);
    expect(renamed.body.error).toContain('someone-else');
    // The body's old `worker` field is refused by name.
    const named = await post(`/v1/runs/${run.runId}/leases`, { ...bearer(me.credential), 'content-type': 'application/json' }, JSON.stringify({ worker: 'w1' }));
    expect(named.status).toBe(400);
    expect(JSON.stringify(named.body)).toContain('worker');
  });

  it("the run's worker token (or the API token) on the lease, heartbeat, gradient, eval, claim and handover routes → 403 credential-required naming the mint route", async () => {
    const run = await createRun();
    const lease = '00000000-0000-4000-8000-000000000000';
    const routes = [`leases`, `leases/${lease}/heartbeat`, `leases/${lease}/gradient`, `leases/${lease}/eval`, `chains/chain-0/claim`, `chains/chain-0/handover`, 'workers/renew'];
    for (const token of [run.workerToken, coordinator.token]) {
      for (const route of routes) {
        const r = await post(`/v1/runs/${run.runId}/${route}`, { ...bearer(token), 'x-worker-id': 'w1', 'x-lease-token': 'x', 'content-type': 'application/json' }, '{}');
        expect([route, r.status, r.body.reason]).toEqual([route, 403, 'credential-required']);
        expect(r.body.error).toContain(`POST /v1/runs/${run.runId}/workers`);
      }
    }
    expect(await workerRows(run.runId)).toEqual([]);
  });

  it('a credential counts only for its run and while it lives: another run’s → 403; expired credential or worker token → 401 expired; ?ttlHours= sets the worker token’s expiry', async () => {
    const a = await createRun();
    const b = await createRun();
    const ofB = await mint(b.runId, b.workerToken);
    const cross = await post(`/v1/runs/${a.runId}/leases`, { ...bearer(ofB.credential), 'content-type': 'application/json' }, '{}');
    expect([cross.status, cross.body.reason]).toEqual([403, 'forbidden']);
    const key = await signingKey(coordinator.token);
    const stale = await workerCredential(key, { runId: a.runId, workerId: 'w-0123456789abcdef', expiresAt: Date.now() - 1000 });
    const r1 = await post(`/v1/runs/${a.runId}/leases`, { ...bearer(stale), 'content-type': 'application/json' }, '{}');
    expect([r1.status, r1.body.reason]).toEqual([401, 'expired']);
    const oldToken = await workerToken(key, a.runId, Date.now() - 1000);
    const r2 = await post(`/v1/runs/${a.runId}/workers`, bearer(oldToken));
    expect([r2.status, r2.body.reason]).toEqual([401, 'expired']);
    const res = await fetch(`${coordinator.url}/v1/runs/${a.runId}/worker-token?ttlHours=2`, { headers: bearer(coordinator.token) });
    const { token, expiresAt } = (await res.json()) as { token: string; expiresAt: number };
    expect(Math.abs(expiresAt - (Date.now() + 2 * 3_600_000))).toBeLessThan(60_000);
    expect(token).toBe(`etw.${a.runId}.${expiresAt}.${token.split('.').pop()}`);
    expect((await mint(a.runId, token)).workerId).toMatch(/^w-/);
  });

  it('2,000 lease attempts with made-up credentials and ids → all refused, and not one worker row added', async () => {
    const run = await createRun();
    const honest = await mint(run.runId, run.workerToken);
    const key = await signingKey(coordinator.token);
    const hex = () => crypto.randomUUID().replaceAll('-', '').slice(0, 16);
    const attempts: (() => Promise<{ status: number; reason?: string }>)[] = [];
    const lease = (headers: Record<string, string>) => post(`/v1/runs/${run.runId}/leases`, { ...headers, 'content-type': 'application/json' }, '{}').then((r) => ({ status: r.status, reason: r.body.reason }));
    for (let i = 0; i < 2000; i++) {
      const k = i % 4;
      if (k === 0) attempts.push(() => lease({ ...bearer(run.workerToken), 'x-worker-id': `w-${hex()}` }));
      // A forged signature on a made-up id.
      else if (k === 1) attempts.push(() => lease(bearer(`etc.${run.runId}.w-${hex()}.${Date.now() + 3_600_000}.${'A'.repeat(43)}`)));
      // The body naming a worker, as clients did before identities were minted.
      else if (k === 2) attempts.push(() => post(`/v1/runs/${run.runId}/leases`, { ...bearer(run.workerToken), 'content-type': 'application/json' }, JSON.stringify({ worker: `w-${hex()}` })).then((r) => ({ status: r.status, reason: r.body.reason })));
      // Validly signed for an id the coordinator never minted (what a leaked API token could sign): its table decides.
      else attempts.push(async () => lease(bearer(await workerCredential(key, { runId: run.runId, workerId: `w-${hex()}`, expiresAt: Date.now() + 3_600_000 }))));
    }
    const results: { status: number; reason?: string }[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < attempts.length) results.push(await attempts[next++]());
    }));
    expect(results).toHaveLength(2000);
    expect(results.filter((r) => r.status < 400 || r.status >= 500)).toEqual([]);
    const reasons = new Set(results.map((r) => r.reason));
    expect(reasons).toEqual(new Set(['credential-required', 'forbidden', 'unknown-worker']));
    expect(await workerRows(run.runId)).toEqual([honest.workerId]);
  });

  it('minting past cluster.maxWorkers → 429 too-many-workers with Retry-After, and an excluded identity keeps its slot (its renewal → 403 excluded)', async () => {
    const run = await createRun({ cluster: { maxWorkers: 2 } });
    const cheat = new ApiClient(coordinator.url, { token: run.workerToken });
    const second = await mint(run.runId, run.workerToken);
    // Three undecodable answers in a row exclude the cheat.
    for (let i = 0; i < 3; i++) {
      const lease = await leaseOrFail(cheat, run.runId);
      const bad = gradientFrame(lease, run.spec, 1);
      bad[bad.length >> 1] ^= 0x40;
      expect(statusAndReason(await refusal(cheat.submitGradient(lease, bad))).status).toBe(400);
    }
    expect(statusAndReason(await refusal(cheat.lease(run.runId)))).toEqual({ status: 403, reason: 'excluded' });
    const over = await post(`/v1/runs/${run.runId}/workers`, bearer(run.workerToken));
    expect([over.status, over.body.reason]).toEqual([429, 'too-many-workers']);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(3_600);
    const renew = await post(`/v1/runs/${run.runId}/workers/renew`, bearer((await cheat.identity(run.runId)).credential));
    expect([renew.status, renew.body.reason]).toEqual([403, 'excluded']);
    expect((await workerRows(run.runId)).sort()).toEqual([cheat.workerId!, second.workerId].sort());
  });

  it('renewing a live credential gives the same id a later expiry', async () => {
    const run = await createRun();
    const me = await mint(run.runId, run.workerToken);
    await sleep(20);
    const r = await post(`/v1/runs/${run.runId}/workers/renew`, bearer(me.credential));
    expect(r.status).toBe(200);
    const renewed = r.body as unknown as WorkerIdentity;
    expect(renewed.workerId).toBe(me.workerId);
    expect(renewed.expiresAt).toBeGreaterThan(me.expiresAt);
    expect(renewed.credential).not.toBe(me.credential);
    expect((await post(`/v1/runs/${run.runId}/leases`, { ...bearer(renewed.credential), 'content-type': 'application/json' }, '{}')).status).toBe(200);
  });

  it('minting is rate limited per run: a burst past 32 → 429 rate-limited', async () => {
    const run = await createRun({ cluster: { maxWorkers: 1000 } });
    const statuses = await Promise.all(Array.from({ length: 48 }, () => post(`/v1/runs/${run.runId}/workers`, bearer(run.workerToken)).then((r) => `${r.status} ${r.body.reason ?? ''}`.trim())));
    expect(statuses.filter((s) => s === '201').length).toBeGreaterThanOrEqual(32);
    expect(statuses.filter((s) => s === '201').length).toBeLessThan(48);
    expect(new Set(statuses.filter((s) => s !== '201'))).toEqual(new Set(['429 rate-limited']));
  });

  it('a cancelled run refuses minting → 409 finished', async () => {
    const run = await createRun();
    await api.cancel(run.runId);
    const r = await post(`/v1/runs/${run.runId}/workers`, bearer(run.workerToken));
    expect([r.status, r.body.reason]).toEqual([409, 'finished']);
    expect(await workerRows(run.runId)).toEqual([]);
  });

  it('one worker holds at most 2 open leases: its third lease request → 429 too-many-leases', async () => {
    const run = await createRun({ trainLimit: 256, batch: 128 });
    const hog = new ApiClient(coordinator.url, { token: run.workerToken });
    await leaseOrFail(hog, run.runId);
    await leaseOrFail(hog, run.runId);
    const third = await refusal(hog.lease(run.runId));
    expect(statusAndReason(third)).toEqual({ status: 429, reason: 'too-many-leases' });
    // Another worker still gets the free shards.
    expect((await leaseOrFail(new ApiClient(coordinator.url, { token: run.workerToken }), run.runId)).shard).toBeGreaterThanOrEqual(2);
  });

  it('hoarders up to the id bound cannot stall a run: an honest worker finishes every step and the evaluation', async () => {
    // Four shards per step; the hoarders could hold six leases if ids or leases per id were unbounded more.
    const run = await createRun({ trainLimit: 256, batch: 128, cluster: { maxWorkers: 4, leaseMs: 1500 } });
    const honest = new ApiClient(coordinator.url, { token: run.workerToken });
    await honest.identity(run.runId);
    const hoarders: ApiClient[] = [];
    for (;;) {
      const h = new ApiClient(coordinator.url, { token: run.workerToken });
      const refused = await h.identity(run.runId).then(() => undefined, (e: unknown) => e as ApiError);
      if (refused) {
        expect(statusAndReason(refused)).toEqual({ status: 429, reason: 'too-many-workers' });
        break;
      }
      hoarders.push(h);
    }
    expect(hoarders).toHaveLength(3);
    let stop = false;
    const hoarding = hoarders.map(async (h) => {
      while (!stop) {
        const r = await h.lease(run.runId).catch((e: unknown) => e);
        if (r instanceof ApiError) await sleep(r.status === 429 ? 50 : 200);
        else if ((r as { type?: string }).type === 'done') return;
      }
    });
    const t0 = Date.now();
    let state: string | undefined;
    try {
      while (Date.now() - t0 < 90_000) {
        const reply = await honest.lease(run.runId);
        if (reply.type === 'done') {
          state = reply.state;
          break;
        }
        if (reply.type !== 'lease') continue;
        const l = reply.lease;
        const answer = l.kind === 'train' ? honest.submitGradient(l, gradientFrame(l, run.spec, 0.001)) : honest.submitEval(l, evalFrame(l, l.indices.length * 2.3, 1));
        await answer.catch((e: unknown) => {
          if (!(e instanceof ApiError) || e.status !== 409) throw e;
        });
      }
    } finally {
      stop = true;
      await Promise.all(hoarding);
    }
    const status: RunStatus = await api.status(run.runId);
    expect([state, status.state, status.step, status.testLoss !== null]).toEqual(['completed', 'completed', 2, true]);
  }, 150_000);

  it('a 60 MB gradient post with a bogus lease token is refused before its body is read', async () => {
    const run = await createRun();
    const client = new ApiClient(coordinator.url, { token: run.workerToken });
    const { lease, headers } = await leaseWithHeaders(client, run.runId);
    const total = 60 * 1024 * 1024;
    const r = await rawPost(`/v1/runs/${run.runId}/leases/${lease.leaseId}/gradient`, { ...headers, 'x-lease-token': `${Date.now() + 60_000}.${total}.${'A'.repeat(43)}` }, { total, chunk: 256 * 1024 });
    // The refusal may come as an answer or as a reset connection; either way the body was not taken in.
    if (r.status !== 0) expect([r.status, JSON.parse(r.body).reason]).toEqual([403, 'forbidden']);
    expect(r.sent).toBeLessThan(total / 4);
  }, 60_000);

  it("an answer larger than its lease's frame (by Content-Length, or sent chunked) → 413 too-large, nothing of it kept, the lease intact", async () => {
    const run = await createRun();
    const client = new ApiClient(coordinator.url, { token: run.workerToken });
    const { lease, headers } = await leaseWithHeaders(client, run.runId);
    expect(lease.maxBytes).toBeGreaterThanOrEqual(gradientFrame(lease, run.spec, 0).byteLength);
    const path = `/v1/runs/${run.runId}/leases/${lease.leaseId}/gradient`;
    const declared = await rawPost(path, headers, { total: lease.maxBytes + 1, chunk: 64 * 1024 });
    expect([declared.status, JSON.parse(declared.body).reason]).toEqual([413, 'too-large']);
    const chunked = await rawPost(path, headers, { total: 4 * lease.maxBytes, chunk: 64 * 1024, contentLength: null });
    expect([chunked.status, JSON.parse(chunked.body).reason]).toEqual([413, 'too-large']);
    // The lease is intact: its real answer still counts.
    expect(await client.submitGradient(lease, gradientFrame(lease, run.spec, 0.001))).toMatchObject({ accepted: true });
  }, 60_000);

  it('an answer body trickling in is cut off at its deadline → 408 body-timeout', async () => {
    const run = await createRun({ cluster: { leaseMs: 200 } });
    const client = new ApiClient(coordinator.url, { token: run.workerToken });
    const { lease, headers } = await leaseWithHeaders(client, run.runId);
    const frame = gradientFrame(lease, run.spec, 0.001);
    const r = await rawPost(`/v1/runs/${run.runId}/leases/${lease.leaseId}/gradient`, headers, { total: frame.byteLength, chunk: 1, everyMs: 500 });
    expect([r.status, JSON.parse(r.body).reason]).toEqual([408, 'body-timeout']);
    // The deadline is the lease's remaining time, at least 10 s (docs/api.md).
    expect(r.ms).toBeGreaterThanOrEqual(9_500);
    expect(r.ms).toBeLessThan(20_000);
  }, 60_000);
});
