// The Workers AI path of caption precompute. Workers AI cannot run here: a fake AI binding (a Worker
// entrypoint with the binding's `run` method, answering like @cf/baai/bge-base-en-v1.5) stands in,
// and the real route, encoder and KV store run around it.
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPATIBILITY_DATE, bundleModules, bundleWorker } from '../../cli/cluster/bundle';
import { DURABLE_OBJECTS, WORKER_ENTRY } from '../../cli/cluster/local';
import { CIFAR10_CAPTIONS } from '../../shared/text/cifar10-captions';
import { WORKERS_AI_MODEL, WorkersAiEncoder, type AiBinding } from '../../shared/text/workers-ai-encoder';
import { decodeEmbeddings } from '../../shared/wire/embeddings';

/** The fake's vector for a text: deterministic, 768-d. */
const fakeVector = (text: string) => Array.from({ length: 768 }, (_, d) => (((text.length * 31 + d * 7) % 97) / 97) - 0.5);

const FAKE_AI = `
import { WorkerEntrypoint } from 'cloudflare:workers';
const vector = ${fakeVector.toString()};
export class FakeAi extends WorkerEntrypoint {
  async run(model, input) {
    if (model !== '${WORKERS_AI_MODEL}') throw new Error('unknown model ' + model);
    if (input.text.length > 100) throw new Error('too many texts');
    if (input.pooling !== 'cls') throw new Error('expected cls pooling');
    return { shape: [input.text.length, 768], data: input.text.map(vector) };
  }
}
export default { fetch: () => new Response('fake Workers AI') };
`;

const TOKEN = 'workers-ai-test-token';

describe('POST /v1/captions with Workers AI (fake binding)', () => {
  let mf: Miniflare;

  beforeAll(async () => {
    mf = new Miniflare({
      workers: [
        {
          ...bundleModules(await bundleWorker(WORKER_ENTRY, 'edgetrain')),
          name: 'edgetrain',
          compatibilityDate: COMPATIBILITY_DATE,
          durableObjects: DURABLE_OBJECTS,
          kvNamespaces: ['KV'],
          r2Buckets: ['DATA'],
          serviceBindings: { AI: { name: 'fake-ai', entrypoint: 'FakeAi' } },
          bindings: { API_TOKEN: TOKEN },
        },
        { name: 'fake-ai', modules: [{ type: 'ESModule', path: 'fake-ai.mjs', contents: FAKE_AI }], compatibilityDate: COMPATIBILITY_DATE },
      ],
    });
    await mf.ready;
  });

  afterAll(async () => {
    await mf?.dispose();
  });

  const post = (body: unknown) =>
    mf.dispatchFetch('http://api/v1/captions', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) });

  it('embeds the CIFAR-10 caption set once with the AI binding and stores it in KV; a repeat is a hit', async () => {
    const first = await post({ name: 'cifar10-v1', classes: CIFAR10_CAPTIONS });
    expect(first.status).toBe(201);
    const report = (await first.json()) as { hit: boolean; entry: { key: string; encoder: string; classes: number; perClass: number; dim: number } };
    expect(report.hit).toBe(false);
    expect(report.entry).toMatchObject({ encoder: `workers-ai:${WORKERS_AI_MODEL}:cls`, classes: 10, perClass: 8, dim: 768 });
    const second = await post({ name: 'cifar10-v1', classes: CIFAR10_CAPTIONS });
    expect(second.status).toBe(200);
    expect(((await second.json()) as { hit: boolean }).hit).toBe(true);

    const kv = await mf.getKVNamespace('KV', 'edgetrain');
    const stored = decodeEmbeddings(new Uint8Array((await kv.get(report.entry.key, 'arrayBuffer'))!));
    const texts = CIFAR10_CAPTIONS.flat();
    expect(stored.rows).toBe(texts.length);
    expect(Array.from(stored.data.subarray(0, 768))).toEqual(Array.from(Float32Array.from(fakeVector(texts[0]))));
    expect(Array.from(stored.data.subarray(79 * 768))).toEqual(Array.from(Float32Array.from(fakeVector(texts[79]))));
  });

  it('refuses a bad set before calling the model, naming each problem', async () => {
    const res = await post({ name: 'bad set!', classes: [['a photo'], []], extra: 1 });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { issues: { path: string; message: string }[] };
    expect(body.issues.map((i) => i.path)).toEqual(['extra', 'name', 'classes[1]']);
  });
});

describe('WorkersAiEncoder', () => {
  it('batches 100 texts per call, asks for [CLS] pooling and checks what comes back', async () => {
    const calls: number[] = [];
    const ai: AiBinding = { run: async (_model, input) => (calls.push(input.text.length), { data: input.text.map(fakeVector) }) };
    const encoder = new WorkersAiEncoder(ai);
    const texts = Array.from({ length: 250 }, (_, i) => `caption ${i}`);
    const out = await encoder.encode(texts);
    expect(calls).toEqual([100, 100, 50]);
    expect(Array.from(out.subarray(249 * 768))).toEqual(Array.from(Float32Array.from(fakeVector(texts[249]))));
    const short: AiBinding = { run: async () => ({ data: [[1, 2, 3]] }) };
    await expect(new WorkersAiEncoder(short).encode(['a'])).rejects.toThrow('a vector of 3 values, expected 768');
  });
});
