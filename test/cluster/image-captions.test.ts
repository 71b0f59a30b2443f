// Per-image captions for the concat head: embedded once into content-addressed chunks plus an index in
// KV; a run reads each example's vector from there.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator, type WorkerdWorker } from '../../cli/cluster/local';
import { FINAL_STATES, type RunRequest, type RunStatus } from '../../shared/protocol';
import { parseCaptionFile } from '../../shared/text/caption-file';
import { CAPTION_CHUNKS_PREFIX, captionsInOrder, imageCaptionHash, precomputeImageCaptions } from '../../shared/text/image-captions';
import { decodeEmbeddings, encodeEmbeddings } from '../../shared/wire/embeddings';
import { ApiClient, ApiError } from '../../workers/gradient/client';
import { FakeEncoder } from '../support/fake-encoder';
import { prepareFixtureDataset } from '../support/fixture-dataset';

const jsonl = (count: number, text: (i: number) => string) => Array.from({ length: count }, (_, i) => JSON.stringify({ index: i, text: text(i) })).join('\n');

describe('per-image captions in KV (concat head)', () => {
  let coordinator: LocalCoordinator;
  let worker: WorkerdWorker;
  let api: ApiClient;
  const texts = {
    train: captionsInOrder(parseCaptionFile(jsonl(500, (i) => `training photo number ${i}, seen from ${i % 7} metres`), 'train.jsonl', 500), 500, 'train.jsonl'),
    test: captionsInOrder(parseCaptionFile(jsonl(100, (i) => `test photo ${i}`), 'test.jsonl', 100), 100, 'test.jsonl'),
  };

  beforeAll(async () => {
    coordinator = await startCoordinator();
    api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareFixtureDataset(api);
    worker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
  });

  afterAll(async () => {
    await worker?.dispose();
    await coordinator?.dispose();
  });

  async function oneStep(request: RunRequest): Promise<Float32Array> {
    const run = await api.createRun(request);
    await worker.start(run.runId, run.workerToken);
    let s: RunStatus = run;
    while (!FINAL_STATES.includes(s.state)) {
      await new Promise((r) => setTimeout(r, 100));
      s = await api.status(run.runId);
    }
    expect(s.state).toBe('completed');
    return (await api.params(run.runId, 1)).params;
  }

  it('stores chunks then the index once (a repeat encodes nothing), and a concat run reads each image vector from KV', async () => {
    const encoder = new FakeEncoder('fake-encoder:v1');
    const first = await precomputeImageCaptions(api.imageCaptionStore(), encoder, 'fixture-images', texts);
    expect(first).toMatchObject({ chunksEncoded: 2, chunksReused: 0 });
    const again = await precomputeImageCaptions(api.imageCaptionStore(), encoder, 'fixture-images', texts);
    expect(again).toMatchObject({ hash: first.hash, chunksEncoded: 0, chunksReused: 2 });
    expect(encoder.calls).toBe(2);
    const manifest = await fetch(`${coordinator.url}/v1/captions`, { headers: { authorization: `Bearer ${coordinator.token}` } }).then((r) => r.json() as Promise<{ imageSets: { hash: string; train: number; test: number }[] }>);
    expect(manifest.imageSets).toContainEqual(expect.objectContaining({ hash: first.hash, train: 500, test: 100, name: 'fixture-images' }));

    const request: RunRequest = { dataset: 'fixture', model: { head: 'concat' }, epochs: 1, batch: 64, evalBatch: 50, trainLimit: 64, imageCaptions: first.hash, cluster: { microBatch: 32 } };
    const p1 = await oneStep(request);
    // Change the vectors of the training chunk behind the same key: the next run's update follows KV.
    const kv = await coordinator.mf.getKVNamespace('KV');
    const key = `${CAPTION_CHUNKS_PREFIX}${first.index.train.chunks[0]}`;
    const stored = decodeEmbeddings(new Uint8Array((await kv.get(key, 'arrayBuffer'))!));
    await kv.put(key, encodeEmbeddings({ ...stored, data: stored.data.map((v) => v * -3) }), { metadata: { dim: 768 } });
    // A fresh isolate (the old one keeps the chunks it read, as content addressing allows).
    await worker.dispose();
    worker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
    const p2 = await oneStep(request);
    let diff = 0;
    for (let i = 0; i < p1.length; i++) diff = Math.max(diff, Math.abs(p1[i] - p2[i]));
    expect(diff).toBeGreaterThan(1e-5);
  }, 120_000);

  it('refuses image captions for another head, a set not in KV, an index before its chunks, and files that miss records', async () => {
    const refusal = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as ApiError);
    const otherHead = await refusal(api.createRun({ dataset: 'fixture', trainLimit: 64, imageCaptions: 'ab'.repeat(32) }));
    expect(otherHead?.body.issues).toContainEqual({ path: 'imageCaptions', message: "per-image captions feed the concat head; this run's head is 'align'" });
    const missing = await refusal(api.createRun({ dataset: 'fixture', model: { head: 'concat' }, trainLimit: 64, imageCaptions: 'ab'.repeat(32) }));
    expect(missing?.status).toBe(400);
    expect(missing?.body.error).toContain('edgetrain captions --images');

    const store = api.imageCaptionStore();
    const index = { name: 'orphan', encoder: 'e', dim: 768, train: { count: 1, chunkRows: 2048, chunks: ['cd'.repeat(32)] }, test: { count: 1, chunkRows: 2048, chunks: ['ef'.repeat(32)] } };
    const early = await refusal(store.putIndex(await imageCaptionHash(index), index));
    expect(early?.status).toBe(409);
    expect(early?.body.reason).toBe('missing-chunks');

    expect(() => captionsInOrder(parseCaptionFile(jsonl(3, (i) => `photo ${i}`), 'short.jsonl', 5), 5, 'short.jsonl')).toThrow('short.jsonl: 2 of 5 records have no caption (records 3, 4)');
  });
});
