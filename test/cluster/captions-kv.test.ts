// Caption embeddings live in KV, content-addressed; training reads them from there and nowhere else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator, type WorkerdWorker } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { runRequestOf } from '../../cli/start';
import { assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { FINAL_STATES, type RunRequest, type RunStatus } from '../../shared/protocol';
import { CAPTIONS_PREFIX, precomputeCaptionSet, selectCaptions, type ClassCaptions } from '../../shared/text/caption-store';
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../../shared/training/config';
import { train } from '../../shared/training/trainer';
import { decodeEmbeddings, encodeEmbeddings } from '../../shared/wire/embeddings';
import { ApiClient, ApiError } from '../../workers/gradient/client';
import { loadOrt } from '../../workers/ort/node';
import { fixtureFiles } from '../support/cifar-fixture';
import { relativeError } from '../support/compare';
import { FakeEncoder } from '../support/fake-encoder';

const CLASSES: ClassCaptions = Array.from({ length: 10 }, (_, c) => Array.from({ length: 4 }, (_, k) => `class ${c}, description ${k}: a small photo`));
const CONFIG: TrainConfig = { ...SEED_TRAIN_CONFIG, optimizer: { ...SEED_TRAIN_CONFIG.optimizer, lr: 1e-3 }, epochs: 1, batch: 64, evalBatch: 50, trainLimit: 64 };

describe('caption embeddings in KV', () => {
  let data: Cifar10;
  let coordinator: LocalCoordinator;
  let worker: WorkerdWorker;
  let api: ApiClient;

  beforeAll(async () => {
    data = assembleCifar10(fixtureFiles(100), 'fixture');
    coordinator = await startCoordinator();
    api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareDataset(api, data, 'fixture', 128);
    worker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
  });

  afterAll(async () => {
    await worker?.dispose();
    await coordinator?.dispose();
  });

  async function trainOneStep(request: RunRequest): Promise<Float32Array> {
    const run = await api.createRun(request);
    await worker.start(run.runId, run.workerToken);
    for (let s: RunStatus = run; !FINAL_STATES.includes(s.state); s = await api.status(run.runId)) await new Promise((r) => setTimeout(r, 100));
    return (await api.params(run.runId, 1)).params;
  }

  async function reference(vectors: Float32Array): Promise<Float32Array> {
    let params: Float32Array | undefined;
    await train({ ort: await loadOrt('web', 1), data, config: CONFIG, captions: vectors, onStep: (p) => (params = p.params.slice()) });
    return params!;
  }

  it('precomputes once (a second run is a hit that encodes nothing), lists the set, and a run reads exactly those vectors from KV', async () => {
    const encoder = new FakeEncoder('fake-encoder:v1');
    const first = await precomputeCaptionSet(api.captionStore(), encoder, 'test-set', CLASSES);
    expect(first.hit).toBe(false);
    const again = await precomputeCaptionSet(api.captionStore(), encoder, 'test-set', CLASSES);
    expect(again).toEqual({ ...first, hit: true });
    expect(encoder.calls).toBe(1);
    const { sets } = await api.captionSets();
    expect(sets).toContainEqual(first.entry);
    expect(first.entry).toMatchObject({ name: 'test-set', encoder: 'fake-encoder:v1', classes: 10, perClass: 4, dim: 768 });

    const hash = first.entry.key.slice(CAPTIONS_PREFIX.length);
    const stored = decodeEmbeddings(await api.captionSet(hash));
    expect(stored.data).toEqual(await encoder.encode(CLASSES.flat()));
    const request = { ...runRequestOf(CONFIG), dataset: 'fixture', captions: hash, cluster: { microBatch: 32 } };
    const fromKv = await trainOneStep(request);
    expect(relativeError(fromKv, await reference(selectCaptions(stored, 10, 4)))).toBeLessThanOrEqual(1e-5);

    // Change the vectors behind the same key (content addressing forbids it; the test does it to see
    // where the vectors come from). The worker's isolate keeps what it read: the same result again.
    const kv = await coordinator.mf.getKVNamespace('KV');
    const changed = stored.data.map((v) => -v);
    await kv.put(first.entry.key, encodeEmbeddings({ ...stored, data: changed }), { metadata: first.entry });
    expect(relativeError(await trainOneStep(request), fromKv)).toBe(0);
    // A fresh isolate reads KV again: its gradients follow the stored vectors, not the texts.
    await worker.dispose();
    worker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
    const afterChange = await trainOneStep(request);
    expect(relativeError(afterChange, fromKv)).toBeGreaterThan(5e-5); // many times the 1e-5 noise bound
    expect(relativeError(afterChange, await reference(selectCaptions({ ...stored, data: changed }, 10, 4)))).toBeLessThanOrEqual(1e-5);
  }, 180_000);

  it('refuses a run whose captions are not in KV, saying how to precompute them', async () => {
    const error = await api.createRun({ dataset: 'fixture', trainLimit: 64, captions: 'ab'.repeat(32) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).body.error).toContain('edgetrain captions');
    expect((error as ApiError).body.issues?.[0].path).toBe('captions');
  });

  it('refuses bad caption sets naming class and caption, writing nothing', async () => {
    const before = (await api.captionSets()).sets.length;
    const bad: ClassCaptions = CLASSES.map((texts, c) => (c === 3 ? [texts[0], '   ', ...texts.slice(2)] : texts));
    await expect(precomputeCaptionSet(api.captionStore(), new FakeEncoder('fake-encoder:v1'), 'bad', bad)).rejects.toThrow('classes[3][1]: caption text is empty');
    const ragged: ClassCaptions = CLASSES.map((texts, c) => (c === 5 ? texts.slice(0, 3) : texts));
    await expect(precomputeCaptionSet(api.captionStore(), new FakeEncoder('fake-encoder:v1'), 'bad', ragged)).rejects.toThrow('classes[5]: 3 captions; every class needs the same number (4)');
    const tooLong: ClassCaptions = CLASSES.map((texts, c) => (c === 0 ? ['x'.repeat(2001), ...texts.slice(1)] : texts));
    // Straight to the API too: the server checks as well as the client.
    const res = await fetch(`${coordinator.url}/v1/captions/${'cd'.repeat(32)}`, { method: 'PUT', headers: { authorization: `Bearer ${coordinator.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bad', encoder: 'e', dim: 2, classes: tooLong, vectors: '' }) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { issues: { path: string; message: string }[] };
    expect(body.issues).toContainEqual({ path: 'classes[0][0]', message: 'caption text has 2001 characters, more than 2000' });
    expect((await api.captionSets()).sets.length).toBe(before);
  });

  it('POST /v1/captions without a Workers AI binding answers 501 and points to the CLI', async () => {
    const res = await fetch(`${coordinator.url}/v1/captions`, { method: 'POST', headers: { authorization: `Bearer ${coordinator.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ai', classes: CLASSES }) });
    expect(res.status).toBe(501);
    expect(((await res.json()) as { error: string }).error).toContain('edgetrain captions');
  });
});
