// Caption vectors from a BERT ONNX model (a Hugging Face/Optimum export of bert-base-uncased, or the
// random model of bert-graph.ts) run with onnxruntime: tokenise a batch, run it, pool each row.
import { GraphSession, type OrtApi } from '../onnx/session';
import { protoFields } from '../onnx/proto-read';
import type { CaptionEncoder, Pooling } from './encoder';

/** One padded batch of token ids, row-major [batch, length] (what WordPieceTokenizer.encodeBatch returns). */
export interface TokenBatch {
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  tokenTypeIds: BigInt64Array;
  batch: number;
  length: number;
}

export interface BertTokenizer {
  encodeBatch(texts: readonly string[], maxLength?: number): TokenBatch;
  /** Vocabulary size: token ids are 0 … size − 1. */
  readonly size: number;
}

export interface BertEncoderOptions {
  /** Identity of model + tokenizer; the encoder's id appends the pooling. */
  id: string;
  /** 'cls': the first token's last hidden state; 'mean': the mean over tokens with attention_mask 1. */
  pooling?: Pooling;
  /** Texts per session run. */
  batchSize?: number;
  /** Tokens per text at most ([CLS] and [SEP] included). */
  maxLength?: number;
}

const INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'];
const HIDDEN = 'last_hidden_state';

export class BertEncoder implements CaptionEncoder {
  private constructor(
    readonly id: string,
    readonly dim: number,
    private readonly session: GraphSession,
    private readonly tokenizer: BertTokenizer,
    private readonly pooling: Pooling,
    private readonly batchSize: number,
    private readonly maxLength: number,
  ) {}

  /**
   * Opens the model and checks it is a BERT export this tokenizer fits: its inputs are (a subset of)
   * input_ids, attention_mask, token_type_ids with input_ids and attention_mask present, it has a
   * last_hidden_state output, its word embedding table has exactly `tokenizer.size` rows (when the
   * table can be found in the bytes), and a probe run with token id size − 1 succeeds.
   */
  static async create(ort: OrtApi, model: Uint8Array, tokenizer: BertTokenizer, o: BertEncoderOptions): Promise<BertEncoder> {
    const pooling = o.pooling ?? 'cls';
    const batchSize = o.batchSize ?? 16;
    const maxLength = o.maxLength ?? 512;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`BertEncoder: batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new Error(`BertEncoder: maxLength must be an integer >= 2, got ${maxLength}`);
    const rows = embeddingRows(model);
    if (rows !== undefined && rows !== tokenizer.size) {
      throw new Error(
        rows < tokenizer.size
          ? `BertEncoder: vocabulary has ${tokenizer.size} tokens but the model's embedding table is smaller (${rows} rows)`
          : `BertEncoder: vocabulary has ${tokenizer.size} tokens but the model's embedding table has ${rows} rows: the vocabulary does not belong to this model`,
      );
    }
    const session = await GraphSession.create(ort, model);
    try {
      const unknown = session.inputNames.filter((n) => !INPUTS.includes(n));
      const missing = INPUTS.slice(0, 2).filter((n) => !session.inputNames.includes(n));
      if (unknown.length || missing.length || !session.outputNames.includes(HIDDEN)) {
        throw new Error(
          `BertEncoder: not a BERT export: inputs [${session.inputNames.join(', ')}], outputs [${session.outputNames.join(', ')}]; ` +
            `need inputs input_ids, attention_mask (and optionally token_type_ids) and an output ${HIDDEN}`,
        );
      }
      // Probe: [CLS]-position id 0 and the largest id the tokenizer can produce.
      const probe: TokenBatch = { inputIds: BigInt64Array.of(0n, BigInt(tokenizer.size - 1)), attentionMask: BigInt64Array.of(1n, 1n), tokenTypeIds: BigInt64Array.of(0n, 0n), batch: 1, length: 2 };
      let dims: readonly number[];
      try {
        dims = (await runBatch(session, probe)).dims;
      } catch (e) {
        throw new Error(`BertEncoder: vocabulary has ${tokenizer.size} tokens but the model's embedding table is smaller (a probe with token id ${tokenizer.size - 1} failed: ${e instanceof Error ? e.message : String(e)})`, { cause: e });
      }
      if (dims.length !== 3 || dims[0] !== 1 || dims[1] !== 2) throw new Error(`BertEncoder: ${HIDDEN} has dims [${dims.join(',')}] for a [1, 2] batch; expected [1, 2, hidden]`);
      return new BertEncoder(`${o.id}:${pooling}`, dims[2], session, tokenizer, pooling, batchSize, maxLength);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  async encode(texts: readonly string[]): Promise<Float32Array> {
    const out = new Float32Array(texts.length * this.dim);
    for (let start = 0; start < texts.length; start += this.batchSize) {
      const tokens = this.tokenizer.encodeBatch(texts.slice(start, start + this.batchSize), this.maxLength);
      const { data } = await runBatch(this.session, tokens);
      pool(data, tokens, this.dim, this.pooling, out.subarray(start * this.dim));
    }
    return out;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

async function runBatch(session: GraphSession, t: TokenBatch): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const dims = [t.batch, t.length];
  const feeds = { input_ids: { data: t.inputIds, dims }, attention_mask: { data: t.attentionMask, dims }, token_type_ids: { data: t.tokenTypeIds, dims } };
  const out = (await session.runWithDims(feeds, [HIDDEN]))[HIDDEN];
  if (!(out.data instanceof Float32Array)) throw new Error(`BertEncoder: ${HIDDEN} is not float32`);
  return { data: out.data, dims: out.dims };
}

/** Writes one pooled row per text of `hidden` ([batch, length, dim]) into `out`. */
function pool(hidden: Float32Array, t: TokenBatch, dim: number, pooling: Pooling, out: Float32Array): void {
  for (let r = 0; r < t.batch; r++) {
    const row = out.subarray(r * dim, (r + 1) * dim);
    if (pooling === 'cls') {
      row.set(hidden.subarray(r * t.length * dim, (r * t.length + 1) * dim));
      continue;
    }
    let count = 0;
    for (let s = 0; s < t.length; s++) {
      if (t.attentionMask[r * t.length + s] === 0n) continue;
      count++;
      const at = (r * t.length + s) * dim;
      for (let d = 0; d < dim; d++) row[d] += hidden[at + d];
    }
    for (let d = 0; d < dim; d++) row[d] /= Math.max(count, 1);
  }
}

/**
 * Rows of the word embedding table, read from the ONNX bytes without decoding weights: the 2-d
 * initializer that a Gather node indexes with `input_ids`. Undefined when there is none (a fused or
 * quantised export): the probe run is then the only check.
 */
export function embeddingRows(model: Uint8Array): number | undefined {
  try {
    return findEmbeddingRows(model);
  } catch {
    return undefined; // not protobuf we can read: leave it to ORT
  }
}

function findEmbeddingRows(model: Uint8Array): number | undefined {
  const graph = protoFields(model).find((f) => f.field === 7 && f.bytes);
  if (!graph?.bytes) return undefined;
  let table: string | undefined;
  const dims = new Map<string, number[]>();
  for (const f of protoFields(graph.bytes)) {
    if (f.field === 1 && f.bytes) {
      const node = protoFields(f.bytes);
      const inputs = node.filter((n) => n.field === 1 && n.bytes).map((n) => text(n.bytes as Uint8Array));
      const opType = node.find((n) => n.field === 4 && n.bytes);
      if (opType?.bytes && text(opType.bytes) === 'Gather' && inputs[1] === 'input_ids') table = inputs[0];
    } else if (f.field === 5 && f.bytes) {
      const tensor = protoFields(f.bytes);
      const name = tensor.find((n) => n.field === 8 && n.bytes);
      const d = tensor.flatMap((n) => (n.field !== 1 ? [] : n.bytes ? protoFields(n.bytes, true).map((p) => p.value) : [n.value]));
      if (name?.bytes) dims.set(text(name.bytes), d);
    }
  }
  const d = table === undefined ? undefined : dims.get(table);
  return d?.length === 2 ? d[0] : undefined;
}

const utf8 = new TextDecoder();
const text = (bytes: Uint8Array) => utf8.decode(bytes);

