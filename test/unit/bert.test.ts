// The random BERT model (shared/text/bert-graph.ts) in onnxruntime-web, and BertEncoder over it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../shared/onnx/graph';
import * as op from '../../shared/onnx/ops';
import { GraphSession, type Feed, type OrtApi } from '../../shared/onnx/session';
import { BertEncoder, embeddingRows, type BertTokenizer } from '../../shared/text/bert-encoder';
import { buildRandomBert, randomBertConfig, randomBertWeights, RANDOM_BERT_ID, type RandomBertConfig } from '../../shared/text/bert-graph';
import { WordPieceTokenizer } from '../../shared/text/wordpiece';
import { webOrt } from '../support/ort';

const SMALL = { hidden: 64, heads: 4, intermediate: 128, vocab: 1000, layers: 2, maxPosition: 64, seed: 7 };

/** Row-major [batch, length] feeds from rows of token ids, padded with 0 (mask 0) to `length`. */
function bertFeeds(rows: readonly (readonly number[])[], length = Math.max(...rows.map((r) => r.length)), types?: readonly (readonly number[])[]): Record<string, Feed> {
  const n = rows.length * length;
  const [ids, mask, tt] = [new BigInt64Array(n), new BigInt64Array(n), new BigInt64Array(n)];
  rows.forEach((row, r) =>
    row.forEach((id, s) => {
      ids[r * length + s] = BigInt(id);
      mask[r * length + s] = 1n;
      tt[r * length + s] = BigInt(types?.[r][s] ?? 0);
    }),
  );
  const dims = [rows.length, length];
  return { input_ids: { data: ids, dims }, attention_mask: { data: mask, dims }, token_type_ids: { data: tt, dims } };
}

const randomRow = (length: number, seed: number, vocab = SMALL.vocab) => Array.from({ length }, (_, i) => (i === 0 ? 2 : (seed * 7919 + i * 104729) % vocab));

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Rows [batch, length, hidden] → the vector at (r, s). */
const at = (h: Float32Array, dims: readonly number[], r: number, s: number) => h.subarray((r * dims[1] + s) * dims[2], (r * dims[1] + s + 1) * dims[2]);

const WORDS = 'a the cat dog sat on mat red blue car by and of in small big house ran over bird'.split(' ');
const vocabText = (size: number) => {
  const tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...WORDS];
  for (let i = 0; tokens.length < size; i++) tokens.push(`filler${i}`);
  return tokens.slice(0, size).join('\n');
};
const TEXTS = ['a cat sat on the mat', 'the red car', 'a small blue bird sat on a big red house by the car', 'dog', 'the cat and the dog ran over the mat'];

let ort: OrtApi;
let small: Uint8Array;
let session: GraphSession;

beforeAll(async () => {
  ort = await webOrt();
  small = buildRandomBert(SMALL);
  session = await GraphSession.create(ort, small);
});
afterAll(() => session?.release());

describe('random BERT model', () => {
  it('has the inputs and outputs of an HF export, with symbolic batch and sequence dims', () => {
    expect(session.inputNames).toEqual(['input_ids', 'attention_mask', 'token_type_ids']);
    expect(session.outputNames).toEqual(['last_hidden_state', 'pooler_output']);
    const text = new TextDecoder('latin1').decode(small);
    expect(text).toContain('batch_size');
    expect(text).toContain('sequence_length');
    expect(text).toContain('embeddings.word_embeddings.weight');
    expect(embeddingRows(small)).toBe(SMALL.vocab);
    expect(RANDOM_BERT_ID(3, 2)).toBe('random-bert-2l-s3');
  });

  it('runs any batch size and sequence length with the same bytes; rows do not depend on the batch', async () => {
    for (const [batch, length] of [[1, 1], [1, 7], [3, 5], [4, 20], [2, SMALL.maxPosition]]) {
      const rows = Array.from({ length: batch }, (_, r) => randomRow(length, r + 1));
      const types = rows.map((row) => row.map((_, s) => s % 2));
      const out = await session.runWithDims(bertFeeds(rows, length, types));
      expect(out.last_hidden_state.dims).toEqual([batch, length, SMALL.hidden]);
      expect(out.pooler_output.dims).toEqual([batch, SMALL.hidden]);
      expect((out.last_hidden_state.data as Float32Array).every(Number.isFinite)).toBe(true);
      if (batch !== 3) continue;
      for (let r = 0; r < batch; r++) {
        const alone = await session.run(bertFeeds([rows[r]], length, [types[r]]));
        const inBatch = (out.last_hidden_state.data as Float32Array).subarray(r * length * SMALL.hidden, (r + 1) * length * SMALL.hidden);
        expect(maxDiff(inBatch, alone.last_hidden_state as Float32Array)).toBeLessThan(1e-5);
      }
    }
    await expect(session.run(bertFeeds([randomRow(SMALL.maxPosition + 1, 1)]))).rejects.toThrow();
  });

  it('masks padding: a text pads to 8 or to 20 with the same vectors (and without the mask it would not)', async () => {
    const text = randomRow(6, 11);
    const short = await session.runWithDims(bertFeeds([text, randomRow(8, 12)], 8));
    const long = await session.runWithDims(bertFeeds([randomRow(20, 13), text], 20));
    const [h8, h20] = [short.last_hidden_state.data as Float32Array, long.last_hidden_state.data as Float32Array];
    for (let s = 0; s < text.length; s++) expect(maxDiff(at(h8, [2, 8, SMALL.hidden], 0, s), at(h20, [2, 20, SMALL.hidden], 1, s))).toBeLessThan(1e-5);
    const pooled = [short.pooler_output.data as Float32Array, long.pooler_output.data as Float32Array];
    expect(maxDiff(pooled[0].subarray(0, SMALL.hidden), pooled[1].subarray(SMALL.hidden))).toBeLessThan(1e-5);

    const unmasked = bertFeeds([[...text, 0, 0]]);
    const plain = await session.runWithDims(bertFeeds([text], 8));
    const seesPadding = await session.runWithDims(unmasked);
    expect(maxDiff(at(plain.last_hidden_state.data as Float32Array, [1, 8, SMALL.hidden], 0, 0), at(h8, [2, 8, SMALL.hidden], 0, 0))).toBeLessThan(1e-5);
    expect(maxDiff(at(seesPadding.last_hidden_state.data as Float32Array, [1, 8, SMALL.hidden], 0, 0), at(h8, [2, 8, SMALL.hidden], 0, 0))).toBeGreaterThan(1e-3);
  });

  it('is deterministic: same seed, same bytes and outputs; another seed, other outputs', async () => {
    const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(Buffer.from(y)); // toEqual is slow on 0.5 MB
    expect(same(buildRandomBert(SMALL), small)).toBe(true);
    const other = buildRandomBert({ ...SMALL, seed: 8 });
    expect(same(other, small)).toBe(false);
    const feeds = bertFeeds([randomRow(9, 1), randomRow(4, 2)]);
    const a = await session.run(feeds);
    const b = await session.run(feeds);
    expect(a.last_hidden_state).toEqual(b.last_hidden_state);
    const s2 = await GraphSession.create(ort, other);
    try {
      const c = await s2.run(feeds);
      expect(maxDiff(a.last_hidden_state as Float32Array, c.last_hidden_state as Float32Array)).toBeGreaterThan(0.1);
    } finally {
      await s2.release();
    }
  });

  it('computes what a plain JS BERT layer computes (hidden 8, 2 heads, 1 layer, with padding)', async () => {
    const c = randomBertConfig({ hidden: 8, heads: 2, intermediate: 16, vocab: 50, maxPosition: 16, layers: 1, seed: 5, std: 0.5 });
    const rows = [[2, 17, 33, 49, 3], [2, 8, 3]];
    const types = [[0, 0, 0, 1, 1], [0, 1, 1]];
    const out = await runModel(buildRandomBert(c), bertFeeds(rows, 5, types));
    const ref = referenceBert(c, rows, types, 5);
    expect(maxDiff(out.last_hidden_state as Float32Array, ref.hidden)).toBeLessThan(1e-4);
    expect(maxDiff(out.pooler_output as Float32Array, ref.pooled)).toBeLessThan(1e-4);
    // Padding keys get no weight: the second text alone, unpadded, gives the same vectors.
    const alone = await runModel(buildRandomBert(c), bertFeeds([rows[1]], 3, [types[1]]));
    expect(maxDiff(alone.last_hidden_state as Float32Array, ref.hidden.subarray(5 * 8, 8 * 8))).toBeLessThan(1e-4);
  });

  it('builds and runs at BERT-base size (768/12/3072, vocab 30522, 2 layers)', async () => {
    let t0 = performance.now();
    const bytes = buildRandomBert({ layers: 2 });
    const buildMs = performance.now() - t0;
    t0 = performance.now();
    const big = await GraphSession.create(ort, bytes);
    const createMs = performance.now() - t0;
    try {
      t0 = performance.now();
      const out = await big.runWithDims(bertFeeds([randomRow(16, 1, 30522), randomRow(9, 2, 30522)], 16));
      const runMs = performance.now() - t0;
      expect(out.last_hidden_state.dims).toEqual([2, 16, 768]);
      expect(out.pooler_output.dims).toEqual([2, 768]);
      expect(embeddingRows(bytes)).toBe(30522);
      console.log(`[bert] base-size random BERT, 2 layers: ${(bytes.length / 2 ** 20).toFixed(1)} MiB, build ${buildMs.toFixed(0)} ms, session ${createMs.toFixed(0)} ms, run [2,16] ${runMs.toFixed(0)} ms`);
    } finally {
      await big.release();
    }
  });
});

describe('BertEncoder', () => {
  const tokenizer = WordPieceTokenizer.fromVocab(vocabText(SMALL.vocab), 'test vocab');
  const encoder = (o: { pooling?: 'cls' | 'mean'; batchSize?: number } = {}) => BertEncoder.create(ort, small, tokenizer, { id: 'rb', ...o });

  it('cls pooling is last_hidden_state[:, 0, :]; the id names the pooling; dim comes from the model', async () => {
    const enc = await encoder();
    try {
      expect(enc.id).toBe('rb:cls');
      expect(enc.dim).toBe(SMALL.hidden);
      const vectors = await enc.encode(TEXTS);
      const t = tokenizer.encodeBatch(TEXTS);
      const out = await session.runWithDims(bertFeedsOf(t));
      for (let r = 0; r < TEXTS.length; r++) expect(vectors.subarray(r * 64, (r + 1) * 64)).toEqual(at(out.last_hidden_state.data as Float32Array, out.last_hidden_state.dims, r, 0));
      expect(await enc.encode([])).toEqual(new Float32Array(0));
    } finally {
      await enc.release();
    }
  });

  it('mean pooling averages the real tokens only: the same vector alone or padded in a batch', async () => {
    const enc = await encoder({ pooling: 'mean' });
    try {
      expect(enc.id).toBe('rb:mean');
      const batch = await enc.encode(TEXTS);
      const t = tokenizer.encodeBatch([TEXTS[1]]);
      const out = await session.runWithDims(bertFeedsOf(t));
      const mean = new Float32Array(64);
      for (let s = 0; s < t.length; s++) at(out.last_hidden_state.data as Float32Array, out.last_hidden_state.dims, 0, s).forEach((v, d) => (mean[d] += v / t.length));
      expect(maxDiff(batch.subarray(64, 128), mean)).toBeLessThan(1e-5);
      const cls = at(out.last_hidden_state.data as Float32Array, out.last_hidden_state.dims, 0, 0);
      expect(maxDiff(batch.subarray(64, 128), cls)).toBeGreaterThan(1e-3);
    } finally {
      await enc.release();
    }
  });

  it('batching does not change the vectors: batchSize 2 over 5 texts = one batch', async () => {
    for (const pooling of ['cls', 'mean'] as const) {
      const [one, two] = [await encoder({ pooling, batchSize: 16 }), await encoder({ pooling, batchSize: 2 })];
      expect(maxDiff(await one.encode(TEXTS), await two.encode(TEXTS))).toBeLessThan(1e-5);
      await Promise.all([one.release(), two.release()]);
    }
  });

  it('refuses a vocabulary that does not fit the embedding table, and a model that is not a BERT export', async () => {
    const big = WordPieceTokenizer.fromVocab(vocabText(SMALL.vocab + 1), 'big vocab');
    await expect(BertEncoder.create(ort, small, big, { id: 'x' })).rejects.toThrow("vocabulary has 1001 tokens but the model's embedding table is smaller (1000 rows)");
    const smaller = WordPieceTokenizer.fromVocab(vocabText(SMALL.vocab - 1), 'small vocab');
    await expect(BertEncoder.create(ort, small, smaller, { id: 'x' })).rejects.toThrow('vocabulary has 999 tokens but the model\'s embedding table has 1000 rows');

    // The table hidden from the byte reader (Gather reads input_ids through an Identity): the probe run catches it.
    const hidden = embeddingOnlyModel(SMALL.vocab, true);
    expect(embeddingRows(hidden)).toBeUndefined();
    await expect(BertEncoder.create(ort, hidden, big, { id: 'x' })).rejects.toThrow("vocabulary has 1001 tokens but the model's embedding table is smaller (a probe with token id 1000 failed");
    const ok = await BertEncoder.create(ort, hidden, tokenizer, { id: 'x' });
    expect(ok.dim).toBe(4);
    await ok.release();

    const noMask = embeddingOnlyModel(SMALL.vocab, false);
    await expect(BertEncoder.create(ort, noMask, tokenizer, { id: 'x' })).rejects.toThrow('not a BERT export: inputs [input_ids]');
  });
});

const bertFeedsOf = (t: ReturnType<BertTokenizer['encodeBatch']>): Record<string, Feed> => {
  const dims = [t.batch, t.length];
  return { input_ids: { data: t.inputIds, dims }, attention_mask: { data: t.attentionMask, dims }, token_type_ids: { data: t.tokenTypeIds, dims } };
};

async function runModel(bytes: Uint8Array, feeds: Record<string, Feed>) {
  const s = await GraphSession.create(ort, bytes);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

/** last_hidden_state = table[Identity(input_ids)] (+ the mask when `withMask`): BERT's interface, 4 dims. */
function embeddingOnlyModel(vocab: number, withMask: boolean): Uint8Array {
  const b = new GraphBuilder('emb');
  const ids = b.input('input_ids', 'int64', [2, 3]);
  const table = b.input('table', 'float32', [vocab, 4]);
  let x = op.gather(b, table, op.identity(b, ids));
  if (withMask) x = op.add(b, x, op.unsqueeze(b, op.cast(b, b.input('attention_mask', 'int64', [2, 3]), 'float32'), [2]));
  b.output(x, 'last_hidden_state');
  const dims = { input_ids: ['batch_size', 'sequence_length'], last_hidden_state: ['batch_size', 'sequence_length', 4] };
  return b.serialize({ bake: new Map([['table', new Float32Array(vocab * 4).fill(0.5)]]), dynamicDims: withMask ? { ...dims, attention_mask: dims.input_ids } : dims });
}

/** BERT in plain JS (float64), one text at a time, for checking the graph's math. */
function referenceBert(c: RandomBertConfig, rows: number[][], types: number[][], length: number): { hidden: Float64Array; pooled: Float64Array } {
  const W = randomBertWeights(c);
  const w = (name: string) => W.get(name) as Float32Array;
  const h = c.hidden;
  const dense = (x: number[], name: string, m: number) => {
    const [wt, bias] = [w(`${name}.weight`), w(`${name}.bias`)];
    return Array.from({ length: m }, (_, j) => x.reduce((s, v, i) => s + v * wt[i * m + j], bias[j]));
  };
  const norm = (x: number[], name: string) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-12)) * w(`${name}.weight`)[i] + w(`${name}.bias`)[i]);
  };
  const erf = (x: number) => {
    // Numerical Recipes' erfc Chebyshev fit (relative error < 1.2e-7).
    const t = 1 / (1 + 0.5 * Math.abs(x));
    const y = 1 - t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
    return x >= 0 ? y : -y;
  };
  const hidden = new Float64Array(rows.length * length * h);
  const pooled = new Float64Array(rows.length * h);
  rows.forEach((row, r) => {
    const row_ = Array.from({ length }, (_, s) => row[s] ?? 0);
    const keep = Array.from({ length }, (_, s) => s < row.length);
    let x = row_.map((id, s) =>
      norm(Array.from({ length: h }, (_, d) => w('embeddings.word_embeddings.weight')[id * h + d] + w('embeddings.position_embeddings.weight')[s * h + d] + w('embeddings.token_type_embeddings.weight')[(types[r][s] ?? 0) * h + d]), 'embeddings.LayerNorm'),
    );
    const hd = h / c.heads;
    for (let l = 0; l < c.layers; l++) {
      const p = `encoder.layer.${l}`;
      const [q, k, v] = ['query', 'key', 'value'].map((n) => x.map((t) => dense(t, `${p}.attention.self.${n}`, h)));
      const context = x.map((_, i) => {
        const out = new Array<number>(h).fill(0);
        for (let head = 0; head < c.heads; head++) {
          const scores = k.map((kj, j) => (keep[j] ? q[i].slice(head * hd, (head + 1) * hd).reduce((s, qv, d) => s + qv * kj[head * hd + d], 0) / Math.sqrt(hd) : -Infinity));
          const max = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - max));
          const sum = e.reduce((a, b) => a + b, 0);
          e.forEach((ej, j) => {
            for (let d = 0; d < hd; d++) out[head * hd + d] += (ej / sum) * v[j][head * hd + d];
          });
        }
        return out;
      });
      x = x.map((t, i) => norm(dense(context[i], `${p}.attention.output.dense`, h).map((a, d) => a + t[d]), `${p}.attention.output.LayerNorm`));
      x = x.map((t) => {
        const u = dense(t, `${p}.intermediate.dense`, c.intermediate).map((a) => 0.5 * a * (1 + erf(a / Math.SQRT2)));
        return norm(dense(u, `${p}.output.dense`, h).map((a, d) => a + t[d]), `${p}.output.LayerNorm`);
      });
    }
    x.forEach((t, s) => hidden.set(t, (r * length + s) * h));
    pooled.set(dense(x[0], 'pooler.dense', h).map(Math.tanh), r * h);
  });
  return { hidden, pooled };
}
