// What turns caption text into vectors: BERT run with onnxruntime-web, Workers AI, or the random-weight
// test model, behind one interface. Training never runs an encoder; it reads what one precomputed.

export type Pooling = 'cls' | 'mean';

export interface CaptionEncoder {
  /**
   * Stable identity of the vectors this encoder produces (model, tokenizer and pooling): part of every
   * content address, so vectors from different encoders never mix.
   */
  readonly id: string;
  /** Floats per vector (768 for BERT-base). */
  readonly dim: number;
  /** One row of `dim` floats per text, in order. */
  encode(texts: readonly string[]): Promise<Float32Array>;
}
