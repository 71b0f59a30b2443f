// The abuse suite, HTTP API: careless and hostile callers against the real Worker bundle in Miniflare
// (KV, R2, the coordinator Durable Object), over real HTTP. Each test is one finding: what the caller
// sends, what the API must answer, and that nothing stored changed when it refuses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { sha256Hex, type DatasetManifest } from '../../shared/data/blocks';
import { assembleCifar10 } from '../../shared/data/cifar';
import type { RunCreated, RunRequest, RunSummary } from '../../shared/protocol';
import { RUN_INDEX_PREFIX, datasetNameKey, manifestKey, runIndexKey } from '../../shared/storage-keys';
import { CAPTIONS_PREFIX } from '../../shared/text/caption-store';
import { chunkHash, imageCaptionHash } from '../../shared/text/image-captions';
import { ApiClient } from '../../workers/gradient/client';
import { fixtureFiles } from '../support/cifar-fixture';
import { FIXTURE_DATASET, prepareFixtureDataset } from '../support/fixture-dataset';
import { errorBodyOf, inPool, send, type HttpRequest, type HttpResponse } from '../support/fuzz';

const RUN: RunRequest = { dataset: FIXTURE_DATASET, trainLimit: 128, batch: 64, evalBatch: 50, epochs: 1, cluster: { microBatch: 32, leaseMs: 600_000 } };

let coordinator: LocalCoordinator;
let api: ApiClient;
let manifest: DatasetManifest;
/** A run whose worker token and lease routes the tests use. */
let run: RunCreated;

const bearer = (token: string) => `Bearer ${token}`;
const call = (r: HttpRequest): Promise<HttpResponse> => send(coordinator.url, r);

/** Every KV key and R2 object: what a refused request must leave as it was. */
async function stored(): Promise<{ kv: string[]; r2: string[] }> {
  const kv: string[] = [];
  const namespace = await coordinator.mf.getKVNamespace('KV');
  for (let cursor: string | undefined, done = false; !done; ) {
    const page = await namespace.list({ cursor });
    kv.push(...page.keys.map((k) => k.name));
    done = page.list_complete;
    cursor = page.list_complete ? undefined : page.cursor;
  }
  const r2: string[] = [];
  const bucket = await coordinator.mf.getR2Bucket('DATA');
  for (let cursor: string | undefined, done = false; !done; ) {
    const page = await bucket.list({ cursor });
    r2.push(...page.objects.map((o) => o.key));
    done = !page.truncated;
    cursor = page.truncated ? page.cursor : undefined;
  }
  return { kv, r2 };
}

/** The status and JSON error body of a response, failing when the body is not an ErrorBody. */
function refusalOf(res: HttpResponse): { status: number; reason?: string; error: string; issues?: unknown[] } {
  const body = errorBodyOf(res);
  if (!body) throw new Error(`expected a JSON error body, got ${res.status} ${res.text.slice(0, 300)}`);
  expect(res.headers.get('content-type')).toContain('application/json');
  return { status: res.status, ...body };
}

/** Stores a two-caption chunk of 2-dimensional vectors (the client's own upload); its hash and encoder. */
async function storeCaptionChunk(): Promise<{ chunk: string; encoder: string }> {
  const encoder = 'abuse-encoder';
  const texts = ['a cat', 'a dog'];
  const chunk = await chunkHash(encoder, texts);
  await api.imageCaptionStore().putChunk(chunk, encoder, 2, texts, new Float32Array([0.5, -1, 2, 0.25]));
  return { chunk, encoder };
}

beforeAll(async () => {
  coordinator = await startCoordinator();
  api = new ApiClient(coordinator.url, { token: coordinator.token });
  manifest = (await prepareFixtureDataset(api)).manifest;
  // The fixture under the default dataset's name too: a body the API ignores then creates a default run.
  await api.putManifest('cifar10', manifest);
  run = await api.createRun(RUN);
});

afterAll(async () => {
  await coordinator?.dispose();
});

describe('abuse: the HTTP API', () => {
  it('JSON routes given a body that is not application/json (form-urlencoded, text/plain, none) → 415 content-type naming both types, no run created, nothing stored', async () => {
    // A worker identity's credential: the lease and chain routes take nothing else.
    const worker = { authorization: bearer((await api.mintWorker(run.runId)).credential) };
    const before = await stored();
    const api_ = { authorization: bearer(coordinator.token) };
    const hash = 'ab'.repeat(32);
    const routes: { method: string; path: string; headers: Record<string, string>; body: string }[] = [
      { method: 'POST', path: '/v1/runs', headers: api_, body: JSON.stringify({ ...RUN, epochs: 1 }) },
      { method: 'POST', path: '/v1/runs', headers: api_, body: 'epochs=1&dataset=fixture' },
      { method: 'POST', path: `/v1/runs/${run.runId}/leases`, headers: worker, body: JSON.stringify({ worker: 'chain-0' }) },
      { method: 'POST', path: `/v1/runs/${run.runId}/chains/chain-0/claim`, headers: worker, body: JSON.stringify({ generation: 1, invocation: 'm/1/0123abcd' }) },
      { method: 'POST', path: `/v1/runs/${run.runId}/chains/chain-0/handover`, headers: worker, body: JSON.stringify({ generation: 1, invocation: 'm/1/0123abcd' }) },
      { method: 'PUT', path: '/v1/datasets/another', headers: api_, body: JSON.stringify(manifest) },
      { method: 'PUT', path: `/v1/captions/${hash}`, headers: api_, body: '{}' },
      { method: 'PUT', path: `/v1/captions/chunks/${hash}`, headers: api_, body: '{}' },
      { method: 'PUT', path: `/v1/captions/images/${hash}`, headers: api_, body: '{}' },
      { method: 'POST', path: '/v1/captions', headers: api_, body: JSON.stringify({ name: 'x', classes: [['a'], ['b']] }) },
    ];
    const contentTypes = ['application/x-www-form-urlencoded', 'text/plain;charset=UTF-8', undefined, 'application/jsonp', 'multipart/form-data; boundary=x'];
    const wrong: string[] = [];
    for (const route of routes) {
      for (const type of contentTypes) {
        const headers = { ...route.headers, ...(type ? { 'content-type': type } : {}) };
        // fetch labels a string body text/plain when no type is given; a byte body goes without one.
        const body = type ? route.body : new TextEncoder().encode(route.body);
        const res = await call({ method: route.method, path: route.path, headers, body });
        const what = `${route.method} ${route.path} (${type ?? 'no content-type'})`;
        const r = errorBodyOf(res);
        if (res.status !== 415 || r?.reason !== 'content-type') wrong.push(`${what} → ${res.status} ${res.text.slice(0, 120)}`);
        else if (!r.error.includes('application/json') || !r.error.includes(type ? type.split(';')[0] : 'no content-type')) wrong.push(`${what}: the error does not name both types: ${r.error}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(await stored()).toEqual(before);
    // A JSON type with parameters is JSON: the request reaches validation.
    const charset = await call({ method: 'POST', path: '/v1/runs', headers: { ...api_, 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify({ ...RUN, epochs: 0 }) });
    expect(refusalOf(charset)).toMatchObject({ status: 400, reason: 'config', issues: [{ path: 'epochs' }] });
  });

  it('__proto__ (and constructor/prototype) keys anywhere in a JSON body → 400 naming where (e.g. model.__proto__), nothing stored', async () => {
    // Stored data that would otherwise take the key along: a manifest whose id covers it, and an image
    // caption index (its hash covers the chunk lists only) over a stored chunk.
    const { chunk, encoder } = await storeCaptionChunk();
    const split = `{"count":2,"chunkRows":2,"chunks":["${chunk}"]}`;
    const index = { name: 'proto', encoder, dim: 2, train: JSON.parse(split), test: JSON.parse(split) };
    const indexHash = await imageCaptionHash(index);
    const indexBody = JSON.stringify(index).replace('"train":{', '"train":{"__proto__":{"count":1},');
    const { id: _, ...content } = manifest;
    const manifestContent = JSON.stringify(content).replace('"train":{', '"train":{"__proto__":{"count":1},');
    const manifestBody = `${manifestContent.slice(0, -1)},"id":"${await sha256Hex(manifestContent)}"}`;
    const { credential } = await api.mintWorker(run.runId);
    const before = await stored();

    const runBody = (inner: string) => `{"dataset":"${FIXTURE_DATASET}","trainLimit":128,"batch":64,"evalBatch":50,${inner}}`;
    const cases: { path: string; method?: string; headers?: Record<string, string>; body: string; paths: string[] }[] = [
      { method: 'PUT', path: '/v1/datasets/protoset', body: manifestBody, paths: ['train.__proto__'] },
      { method: 'PUT', path: `/v1/captions/images/${indexHash}`, body: indexBody, paths: ['train.__proto__'] },
      { path: '/v1/runs', body: '{"__proto__":{"epochs":1}}', paths: ['__proto__'] },
      { path: '/v1/runs', body: runBody('"model":{"__proto__":{"classes":10}}'), paths: ['model.__proto__'] },
      { path: '/v1/runs', body: runBody('"epochs":1,"cluster":{"microBatch":32,"__proto__":{"workers":3}},"optimizer":{"constructor":{"prototype":{}}}'), paths: ['cluster.__proto__', 'optimizer.constructor'] },
      { path: '/v1/runs', body: runBody('"prototype":1'), paths: ['prototype'] },
      {
        path: `/v1/runs/${run.runId}/leases`,
        headers: { authorization: bearer(credential), 'content-type': 'application/json' },
        body: '{"__proto__":{"ticket":{"generation":1,"invocation":"m/1/0123abcd"}}}',
        paths: ['__proto__'],
      },
      { method: 'PUT', path: `/v1/captions/${'cd'.repeat(32)}`, body: '{"name":"n","encoder":"e","dim":2,"classes":[["a"],[{"__proto__":"b"}]],"vectors":""}', paths: ['classes.1.0.__proto__'] },
    ];
    const json = { authorization: bearer(coordinator.token), 'content-type': 'application/json' };
    for (const c of cases) {
      const res = await call({ method: c.method ?? 'POST', path: c.path, headers: c.headers ?? json, body: c.body });
      const r = refusalOf(res);
      expect(r, `${c.path} ${c.body.slice(0, 80)}`).toMatchObject({ status: 400, reason: 'key' });
      expect((r.issues as { path: string }[]).map((i) => i.path)).toEqual(c.paths);
      for (const p of c.paths) expect(r.error).toContain(p);
    }
    expect(await stored()).toEqual(before);
  });

  it('GET /v1/runs with more than 1,000 runs in the KV index → every run, the newest first (KV list paging followed); ?limit=N the newest N; a bad limit → 400', async () => {
    const kv = await coordinator.mf.getKVNamespace('KV');
    // Older than every real run, and listed before them: run ids sort by their creation time.
    const old = Array.from({ length: 1_050 }, (_, i): RunSummary => ({ runId: `r19990101${String(i).padStart(6, '0')}-0000abcd`, state: 'completed', createdAt: 1_000 + i, preset: 'seed-cnn', head: 'align' }));
    const newest: RunSummary = { runId: 'r29990101000000-ffffffff', state: 'created', createdAt: Date.now() + 86_400_000, preset: 'seed-cnn', head: 'align' };
    await inPool([...old, newest], 16, (s) => kv.put(runIndexKey(s.runId), JSON.stringify(s), { metadata: s }));
    const indexed = (await stored()).kv.filter((k) => k.startsWith(RUN_INDEX_PREFIX)).length;
    expect(indexed).toBeGreaterThan(1_000);

    const { runs } = await api.listRuns();
    expect(runs.length).toBe(indexed);
    expect(runs[0].runId).toBe(newest.runId);
    expect(runs.some((r) => r.runId === run.runId)).toBe(true);
    expect(runs.at(-1)!.runId).toBe(old[0].runId);
    expect(runs.map((r) => r.createdAt)).toEqual(runs.map((r) => r.createdAt).sort((a, b) => b - a));

    const three = await api.listRuns(3);
    expect(three.runs.map((r) => r.runId)).toEqual(runs.slice(0, 3).map((r) => r.runId));
    for (const limit of ['0', '-1', '1.5', 'abc', '']) {
      const res = await call({ method: 'GET', path: `/v1/runs?limit=${limit}`, headers: { authorization: bearer(coordinator.token) } });
      expect(refusalOf(res), `limit=${limit}`).toMatchObject({ status: 400, reason: 'query', issues: [{ path: 'limit' }] });
    }
  });

  it('a run creation resent with the same Idempotency-Key gets the run the first made (200), not a second run; a malformed key → 400', async () => {
    const post = (key: string) =>
      fetch(`${coordinator.url}/v1/runs`, { method: 'POST', headers: { authorization: bearer(coordinator.token), 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify({ dataset: FIXTURE_DATASET, trainLimit: 128, batch: 64, evalBatch: 50, epochs: 1 }) });
    const key = crypto.randomUUID();
    const first = await post(key);
    const again = await post(key);
    expect([first.status, again.status]).toEqual([201, 200]);
    const [a, b] = [(await first.json()) as { runId: string }, (await again.json()) as { runId: string }];
    expect(b.runId).toBe(a.runId);
    expect((await post(crypto.randomUUID())).status).toBe(201);
    const bad = await post('short');
    expect({ status: bad.status, reason: ((await bad.json()) as { reason: string }).reason }).toEqual({ status: 400, reason: 'idempotency-key' });
  });

  it('a corrupt stored dataset manifest → an error naming the dataset, the R2 object and the way out, not a bare parse error', async () => {
    const bucket = await coordinator.mf.getR2Bucket('DATA');
    const content = '{"format":1,"name":"broken"';
    const id = await sha256Hex(content);
    await bucket.put(manifestKey(id), content);
    await bucket.put(datasetNameKey('broken'), id);
    const res = await fetch(`${coordinator.url}/v1/runs`, { method: 'POST', headers: { authorization: bearer(coordinator.token), 'content-type': 'application/json' }, body: JSON.stringify({ dataset: 'broken' }) });
    const body = (await res.json()) as { error: string };
    expect(res.status).toBe(500);
    expect(body.error).toMatch(/dataset 'broken': its stored manifest \(R2 datasets\/manifests\/[0-9a-f]{64}\.json\) is corrupt .*prepare the dataset again/);
  });

  it('a parameter version not in decimal digits (0x10, 1e1, +1, " 1", 1.5, -1) → 400 version, not read as another number', async () => {
    for (const v of ['0x10', '1e1', '+1', '%201', '1.5', '-1', '9'.repeat(16)]) {
      const res = await fetch(`${coordinator.url}/v1/runs/${run.runId}/params/${v}`, { headers: { authorization: bearer(coordinator.token) } });
      expect({ v, status: res.status, reason: ((await res.json()) as { reason?: string }).reason }).toEqual({ v, status: 400, reason: 'version' });
    }
  });

  it('dataset blocks, caption sets and caption chunks read with a token → Cache-Control private (immutable), never public', async () => {
    const { chunk: hash } = await storeCaptionChunk();
    const captionSet = run.config.captions!.replace(CAPTIONS_PREFIX, '');
    const paths = [`/v1/datasets/blocks/${manifest.train.blocks[0].sha256}`, `/v1/captions/${captionSet}`, `/v1/captions/chunks/${hash}`];
    for (const token of [coordinator.token, run.workerToken]) {
      for (const path of paths) {
        const res = await call({ method: 'GET', path, headers: { authorization: bearer(token) } });
        expect(res.status, path).toBe(200);
        expect(res.headers.get('cache-control'), path).toBe('private, max-age=31536000, immutable');
      }
    }
  });

  it('model.classes other than the dataset\'s class count → 400 model.classes; a caption set over the 25 MiB KV value limit (placeholder at run creation, or POST /v1/captions) → 400 naming size and limit (not 500); nothing created', async () => {
    // The fixture's blocks under a manifest that names 200 classes.
    const data = assembleCifar10(fixtureFiles(100), 'wide');
    const wide = (await prepareDataset(api, { ...data, classes: Array.from({ length: 200 }, (_, i) => `class-${i}`) }, 'wide', 128)).manifest;
    expect(wide.classes.length).toBe(200);
    const before = await stored();
    const create = (body: RunRequest) => call({ method: 'POST', path: '/v1/runs', headers: { authorization: bearer(coordinator.token), 'content-type': 'application/json' }, body: JSON.stringify(body) });

    for (const model of [{ classes: 2 }, { classes: 1000, captionsPerClass: 64 }, { classes: 11 }]) {
      const r = refusalOf(await create({ ...RUN, model }));
      expect(r, JSON.stringify(model)).toMatchObject({ status: 400, reason: 'config', issues: [{ path: 'model.classes' }] });
      expect(r.error).toContain(`${model.classes}, but dataset '${FIXTURE_DATASET}' has 10 classes`);
    }
    // 200 × 64 captions × 768 floats: 37.5 MiB, over KV's 25 MiB.
    const big = refusalOf(await create({ ...RUN, dataset: 'wide', model: { classes: 200, captionsPerClass: 64 } }));
    expect(big).toMatchObject({ status: 400, reason: 'captions', issues: [{ path: 'model.captionsPerClass' }] });
    expect(big.error).toMatch(/37\.5 MiB .*over Workers KV's 25\.0 MiB value limit \(26214400 bytes\)/);
    // Unset, the classes follow the dataset; the same head and 200 classes fail on the caption set alone.
    const unset = refusalOf(await create({ ...RUN, dataset: 'wide', model: { captionsPerClass: 64 } }));
    expect(unset).toMatchObject({ status: 400, reason: 'captions' });
    expect(unset.error).toContain('200 classes × 64 captions');
    // A set to embed with Workers AI that could not be stored: refused before any embedding (no AI binding here).
    const texts = (c: number) => Array.from({ length: 4_300 }, (_, k) => `caption ${k} of class ${c}`);
    const aiSet = await call({ method: 'POST', path: '/v1/captions', headers: { authorization: bearer(coordinator.token), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'huge', classes: [texts(0), texts(1)] }) });
    const huge = refusalOf(aiSet);
    expect(huge).toMatchObject({ status: 400, reason: 'captions', issues: [{ path: 'classes' }] });
    expect(huge.error).toBe('invalid caption set');
    expect((huge.issues as { message: string }[])[0].message).toMatch(/^8600 captions × 768 float32 make a 25\.2 MiB value .*over Workers KV's 25\.0 MiB value limit/);
    expect(await stored()).toEqual(before);
  });
});
