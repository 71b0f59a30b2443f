// A BERT-shaped ONNX model with seeded random weights: the same inputs, outputs and computation as a
// Hugging Face/Optimum export of bert-base-uncased (post-LayerNorm encoder, exact GELU, additive
// attention mask, tanh pooler), so code written for the real model runs against it in tests.
// Built with the project's GraphBuilder at a nominal batch and length; every node is written so it
// follows its inputs' shapes (relative Reshape, Shape + Slice for positions, broadcasting MatMul),
// and the graph's inputs and outputs are serialised with symbolic dims 'batch_size' and
// 'sequence_length'. Linear weights are stored [in, out] (as MatMul reads them; HF's are [out, in]).
import { mulberry32 } from '../data/shuffle';
import { GraphBuilder, type Value } from '../onnx/graph';
import * as op from '../onnx/ops';

export interface RandomBertOptions {
  layers?: number;
  hidden?: number;
  heads?: number;
  intermediate?: number;
  vocab?: number;
  maxPosition?: number;
  typeVocab?: number;
  seed?: number;
  /** Standard deviation of the normal init of every weight and bias (LayerNorms are γ 1, β 0). */
  std?: number;
}

export type RandomBertConfig = Required<RandomBertOptions>;

/** Names the default (BERT-base-sized) random model of `layers` layers drawn from `seed`. */
export const RANDOM_BERT_ID = (seed: number, layers: number) => `random-bert-${layers}l-s${seed}`;

export function randomBertConfig(o: RandomBertOptions = {}): RandomBertConfig {
  const c = { layers: 2, hidden: 768, heads: 12, intermediate: 3072, vocab: 30522, maxPosition: 512, typeVocab: 2, seed: 0, std: 0.02, ...o };
  if (c.hidden % c.heads !== 0) throw new Error(`random BERT: hidden ${c.hidden} is not a multiple of heads ${c.heads}`);
  return c;
}

const LAYER_NORM_EPS = 1e-12;

/** Parameter names and shapes in HF order (weights of linear layers transposed to [in, out]). */
export function bertParameterShapes(c: RandomBertConfig): [string, number[]][] {
  const { hidden: h, intermediate: i } = c;
  const norm = (p: string): [string, number[]][] => [[`${p}.weight`, [h]], [`${p}.bias`, [h]]];
  const dense = (p: string, n: number, m: number): [string, number[]][] => [[`${p}.weight`, [n, m]], [`${p}.bias`, [m]]];
  const shapes: [string, number[]][] = [
    ['embeddings.word_embeddings.weight', [c.vocab, h]],
    ['embeddings.position_embeddings.weight', [c.maxPosition, h]],
    ['embeddings.token_type_embeddings.weight', [c.typeVocab, h]],
    ...norm('embeddings.LayerNorm'),
  ];
  for (let l = 0; l < c.layers; l++) {
    const p = `encoder.layer.${l}`;
    shapes.push(
      ...dense(`${p}.attention.self.query`, h, h),
      ...dense(`${p}.attention.self.key`, h, h),
      ...dense(`${p}.attention.self.value`, h, h),
      ...dense(`${p}.attention.output.dense`, h, h),
      ...norm(`${p}.attention.output.LayerNorm`),
      ...dense(`${p}.intermediate.dense`, h, i),
      ...dense(`${p}.output.dense`, i, h),
      ...norm(`${p}.output.LayerNorm`),
    );
  }
  shapes.push(...dense('pooler.dense', h, h));
  return shapes;
}

/** The seeded weights, by name: normal(0, std) (Box–Muller pairs over mulberry32), LayerNorm γ 1 and β 0. */
export function randomBertWeights(c: RandomBertConfig): Map<string, Float32Array> {
  const rng = mulberry32(c.seed);
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of bertParameterShapes(c)) {
    const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
    if (name.includes('LayerNorm')) data.fill(name.endsWith('.weight') ? 1 : 0);
    else {
      for (let k = 0; k < data.length; k += 2) {
        const r = c.std * Math.sqrt(-2 * Math.log(1 - rng()));
        const angle = 2 * Math.PI * rng();
        data[k] = r * Math.cos(angle);
        if (k + 1 < data.length) data[k + 1] = r * Math.sin(angle);
      }
    }
    weights.set(name, data);
  }
  return weights;
}

export function buildRandomBert(o: RandomBertOptions = {}): Uint8Array {
  const c = randomBertConfig(o);
  const weights = randomBertWeights(c);
  return buildBertGraph(c).serialize({
    bake: weights,
    docString: `random BERT (${JSON.stringify(c)})`,
    dynamicDims: {
      input_ids: ['batch_size', 'sequence_length'],
      attention_mask: ['batch_size', 'sequence_length'],
      token_type_ids: ['batch_size', 'sequence_length'],
      last_hidden_state: ['batch_size', 'sequence_length', c.hidden],
      pooler_output: ['batch_size', c.hidden],
    },
  });
}

/** The graph with every parameter as an input (serialize bakes them); nominal batch 2, length 3. */
export function buildBertGraph(c: RandomBertConfig): GraphBuilder {
  const b = new GraphBuilder('bert');
  const [batch, length] = [2, Math.min(3, c.maxPosition)];
  const ids = b.input('input_ids', 'int64', [batch, length]);
  const mask = b.input('attention_mask', 'int64', [batch, length]);
  const types = b.input('token_type_ids', 'int64', [batch, length]);
  const p = new Map<string, Value>(bertParameterShapes(c).map(([name, shape]) => [name, b.input(name, 'float32', shape)]));
  const w = (name: string) => p.get(name) as Value;
  const dense = (x: Value, prefix: string) => op.add(b, op.matmul(b, x, w(`${prefix}.weight`)), w(`${prefix}.bias`));
  const norm = (x: Value, prefix: string) => op.layerNormalization(b, x, w(`${prefix}.weight`), w(`${prefix}.bias`), LAYER_NORM_EPS);

  // Embeddings: word + position (rows 0 … length−1, the length read from input_ids) + token type.
  const positions = op.sliceLike(b, w('embeddings.position_embeddings.weight'), ids, 0, 1);
  let x = op.add(b, op.add(b, op.gather(b, w('embeddings.word_embeddings.weight'), ids), positions), op.gather(b, w('embeddings.token_type_embeddings.weight'), types));
  x = norm(x, 'embeddings.LayerNorm');

  // Additive mask [batch, 1, 1, length]: 0 on real tokens, float32's lowest value on padding (as HF).
  const keep = op.unsqueeze(b, op.cast(b, mask, 'float32'), [1, 2]);
  const bias = op.mul(b, op.sub(b, b.scalar(1), keep), b.scalar(-3.4028234663852886e38));

  const headDim = c.hidden / c.heads;
  const heads = (v: Value, perm: number[]) => op.transpose(b, op.reshapeRelative(b, v, [0, 0, c.heads, headDim]), perm);
  for (let l = 0; l < c.layers; l++) {
    const pre = `encoder.layer.${l}`;
    const q = heads(dense(x, `${pre}.attention.self.query`), [0, 2, 1, 3]); // [B, heads, S, d]
    const k = heads(dense(x, `${pre}.attention.self.key`), [0, 2, 3, 1]); // [B, heads, d, S]
    const v = heads(dense(x, `${pre}.attention.self.value`), [0, 2, 1, 3]);
    const scores = op.add(b, op.scale(b, op.matmul(b, q, k), 1 / Math.sqrt(headDim)), bias);
    const context = op.matmul(b, op.softmax(b, scores, -1), v);
    const merged = op.reshapeRelative(b, op.transpose(b, context, [0, 2, 1, 3]), [0, 0, c.hidden]);
    x = norm(op.add(b, dense(merged, `${pre}.attention.output.dense`), x), `${pre}.attention.output.LayerNorm`);
    const u = dense(x, `${pre}.intermediate.dense`);
    const gelu = op.mul(b, op.mul(b, u, b.scalar(0.5)), op.add(b, b.scalar(1), op.erf(b, op.scale(b, u, Math.SQRT1_2))));
    x = norm(op.add(b, dense(gelu, `${pre}.output.dense`), x), `${pre}.output.LayerNorm`);
  }
  b.output(x, 'last_hidden_state');
  const cls = op.gather(b, x, b.constant(new BigInt64Array([0n]), []), 1); // [B, hidden]
  b.output(op.tanh(b, dense(cls, 'pooler.dense')), 'pooler_output');
  return b;
}
