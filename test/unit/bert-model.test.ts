// A BERT model in the Hugging Face folder layout: loading, bad folders, and the hub download path
// (against a local HTTP server standing in for huggingface.co; no internet here).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchHubModel, loadBertFolder } from '../../cli/bert-model';
import { BertEncoder } from '../../shared/text/bert-encoder';
import { buildRandomBert } from '../../shared/text/bert-graph';
import { webOrt } from '../support/ort';

const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'small', 'photo', 'of', 'cat', 'dog', '##s', '.'];
const SMALL = { hidden: 32, heads: 4, intermediate: 64, layers: 1, vocab: VOCAB.length, maxPosition: 64, seed: 3 };
const model = buildRandomBert(SMALL);
const dir = mkdtempSync(path.join(tmpdir(), 'edgetrain-bert-'));
const quiet = () => undefined;

function folder(name: string, files: Record<string, string | Uint8Array>): string {
  const root = path.join(dir, name);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), content);
  }
  return root;
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadBertFolder', () => {
  it('loads onnx/model.onnx with vocab.txt; the encoder runs and the id follows the files', async () => {
    const f = await loadBertFolder(folder('ok', { 'onnx/model.onnx': model, 'vocab.txt': VOCAB.join('\n') }));
    expect(f.tokenizer.size).toBe(VOCAB.length);
    expect(f.id).toMatch(/^bert-onnx:[0-9a-f]{16}:[0-9a-f]{8}$/);
    const encoder = await BertEncoder.create(await webOrt(), f.model, f.tokenizer, { id: f.id });
    const v = await encoder.encode(['a small photo of a cat.', 'dogs']);
    expect(v.length).toBe(2 * 32);
    expect(encoder.id).toBe(`${f.id}:cls`);
    await encoder.release();
    const other = await loadBertFolder(folder('other', { 'onnx/model.onnx': buildRandomBert({ ...SMALL, seed: 4 }), 'vocab.txt': VOCAB.join('\n') }));
    expect(other.id).not.toBe(f.id);
  });

  it('names what is missing or wrong', async () => {
    await expect(loadBertFolder(path.join(dir, 'nowhere'))).rejects.toThrow(`BERT model folder ${path.join(dir, 'nowhere')} does not exist`);
    await expect(loadBertFolder(folder('no-model', { 'vocab.txt': VOCAB.join('\n') }))).rejects.toThrow('no ONNX model (looked for onnx/model.onnx, model.onnx)');
    await expect(loadBertFolder(folder('no-tokenizer', { 'onnx/model.onnx': model }))).rejects.toThrow('no tokenizer (looked for tokenizer.json, vocab.txt)');
    await expect(loadBertFolder(folder('bad-json', { 'onnx/model.onnx': model, 'tokenizer.json': '{ not json' }))).rejects.toThrow('tokenizer.json: not JSON');
    // A vocabulary that is not the model's: the encoder refuses it at creation.
    const mismatched = await loadBertFolder(folder('mismatch', { 'onnx/model.onnx': model, 'vocab.txt': [...VOCAB, 'extra', 'words'].join('\n') }));
    await expect(BertEncoder.create(await webOrt(), mismatched.model, mismatched.tokenizer, { id: mismatched.id })).rejects.toThrow('vocabulary has 15 tokens');
  });
});

describe('fetchHubModel (a local server in place of the hub)', () => {
  let server: Server;
  let base: string;
  const requests: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      if (req.url === '/org/tiny-bert/resolve/main/onnx/model.onnx') return void res.end(Buffer.from(model));
      if (req.url === '/org/tiny-bert/resolve/main/vocab.txt') return void res.end(VOCAB.join('\n'));
      res.statusCode = 404;
      res.end('not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('downloads the ONNX export and a tokenizer (tokenizer.json, else vocab.txt) once into the cache', async () => {
    const cache = path.join(dir, 'cache');
    const got = await fetchHubModel('org/tiny-bert', cache, quiet, base);
    expect(got).toBe(path.join(cache, 'org/tiny-bert'));
    expect((await loadBertFolder(got)).tokenizer.size).toBe(VOCAB.length);
    expect(requests).toEqual(['/org/tiny-bert/resolve/main/onnx/model.onnx', '/org/tiny-bert/resolve/main/tokenizer.json', '/org/tiny-bert/resolve/main/vocab.txt']);
    await fetchHubModel('org/tiny-bert', cache, quiet, base);
    expect(requests).toHaveLength(3);
  });

  it('names the model that is not there, and refuses a malformed name', async () => {
    await expect(fetchHubModel('org/missing', path.join(dir, 'cache2'), quiet, base)).rejects.toThrow('/org/missing/resolve/main/onnx/model.onnx: HTTP 404');
    await expect(fetchHubModel('../etc', path.join(dir, 'cache2'), quiet, base)).rejects.toThrow("hub model '../etc' is not a model name");
  });
});
