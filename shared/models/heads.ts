import type { Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import { l2Normalize, linear, type ModelBuilder } from './layers';

export const TEXT_DIM = 768;
export const JOINT_DIM = 128;

export interface HeadShape {
  readonly batch: number;
  readonly classes: number;
  readonly captionsPerClass: number;
}

/** Turns image features [B,D] (and caption knowledge) into class logits [B,C]. */
export interface Head {
  readonly name: string;
  readonly description: string;
  /** The caption-embedding input this head reads, or null. */
  readonly textInput: (s: HeadShape) => { name: string; shape: number[] } | null;
  readonly build: (m: ModelBuilder, features: Value, text: Value | null, s: HeadShape) => Value;
}

function requireText(head: string, text: Value | null): Value {
  if (!text) throw new Error(`head '${head}' needs its caption input`);
  return text;
}

/** The seed's Linear(768,128) text projection, shared by every head that reads captions. */
const projectText = (m: ModelBuilder, text: Value) => linear(m, 'text_proj', text, JOINT_DIM);

/** Learnable temperature for cosine logits, kept out of weight decay. */
const logitScale = (m: ModelBuilder) => m.param('logit_scale', [1], { kind: 'constant', value: 10 }, false);

export const linearHead: Head = {
  name: 'linear',
  description: 'a linear classifier on the image features (no captions)',
  textInput: () => null,
  build: (m, features, _text, s) => linear(m, 'classifier', features, s.classes),
};

export const concatHead: Head = {
  name: 'concat',
  description: "the seed's fusion: image features ⊕ projected caption of that image → classifier (per-image captions)",
  textInput: (s) => ({ name: 'caption', shape: [s.batch, TEXT_DIM] }),
  build: (m, features, text, s) => {
    const t = op.relu(m.b, projectText(m, requireText('concat', text)));
    return linear(m, 'classifier', op.concat(m.b, [features, t], 1), s.classes);
  },
};

export const alignHead: Head = {
  name: 'align',
  description: 'image features projected into the caption space; logits = scaled cosine similarity to each class caption',
  textInput: (s) => ({ name: 'class_text', shape: [s.classes, TEXT_DIM] }),
  build: (m, features, text) => {
    const b = m.b;
    const image = l2Normalize(b, linear(m, 'image_proj', features, JOINT_DIM));
    const classes = l2Normalize(b, projectText(m, requireText('align', text)));
    const cosine = op.gemm(b, image, classes, null, { transB: true });
    return op.mul(b, cosine, logitScale(m));
  },
};

/**
 * Each image queries the K captions of every class (scaled dot-product attention) and is scored by
 * cosine similarity to the attended class embedding.
 */
export const attentionHead: Head = {
  name: 'attention',
  description: 'the image attends over K caption embeddings per class; logits = scaled cosine to the attended class embedding',
  textInput: (s) => ({ name: 'class_texts', shape: [s.classes, s.captionsPerClass, TEXT_DIM] }),
  build: (m, features, text, s) => {
    const b = m.b;
    const { batch, classes, captionsPerClass: k } = s;
    const captions = op.reshape(b, requireText('attention', text), [classes * k, TEXT_DIM]);
    const keys = projectText(m, captions);
    const query = linear(m, 'query_proj', features, JOINT_DIM);
    const scores = op.scale(b, op.gemm(b, query, keys, null, { transB: true }), 1 / Math.sqrt(JOINT_DIM));
    const weights = op.softmax(b, op.reshape(b, scores, [batch, classes, k]), -1);
    const attended = op.matmul(b, op.transpose(b, weights, [1, 0, 2]), op.reshape(b, keys, [classes, k, JOINT_DIM]));
    const classEmbedding = l2Normalize(b, op.transpose(b, attended, [1, 0, 2]), -1);
    const image = op.reshape(b, l2Normalize(b, linear(m, 'image_proj', features, JOINT_DIM)), [batch, 1, JOINT_DIM]);
    const cosine = op.reduceSum(b, op.mul(b, classEmbedding, image), [2], false);
    return op.mul(b, cosine, logitScale(m));
  },
};

export const HEADS: readonly Head[] = [linearHead, concatHead, alignHead, attentionHead];
