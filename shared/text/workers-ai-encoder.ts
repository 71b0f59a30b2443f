// Caption embeddings from Workers AI: @cf/baai/bge-base-en-v1.5, a BERT-base model (768-d), through
// the Worker's AI binding. Only on Cloudflare; tests stand a fake binding in for it.
import type { CaptionEncoder } from './encoder';

export const WORKERS_AI_MODEL = '@cf/baai/bge-base-en-v1.5';
/** The encoder's id and vector size, known before any binding is at hand. */
export const WORKERS_AI_ENCODER_ID = `workers-ai:${WORKERS_AI_MODEL}:cls`;
export const WORKERS_AI_DIM = 768;

/** The slice of the AI binding this encoder calls. */
export interface AiBinding {
  run(model: string, input: { text: string[]; pooling?: 'cls' | 'mean' }): Promise<{ shape?: number[]; data: number[][] }>;
}

/** Texts per request (the model's documented batch limit is 100). */
const BATCH = 100;

export class WorkersAiEncoder implements CaptionEncoder {
  readonly id = WORKERS_AI_ENCODER_ID;
  readonly dim = WORKERS_AI_DIM;

  constructor(private readonly ai: AiBinding) {}

  async encode(texts: readonly string[]): Promise<Float32Array> {
    const out = new Float32Array(texts.length * this.dim);
    for (let first = 0; first < texts.length; first += BATCH) {
      const batch = texts.slice(first, first + BATCH);
      // [CLS] pooling, as the seed pools BERT.
      const { data } = await this.ai.run(WORKERS_AI_MODEL, { text: [...batch], pooling: 'cls' });
      if (!Array.isArray(data) || data.length !== batch.length) throw new Error(`Workers AI ${WORKERS_AI_MODEL}: ${Array.isArray(data) ? data.length : 'no'} vectors for ${batch.length} texts`);
      data.forEach((row, i) => {
        if (row.length !== this.dim) throw new Error(`Workers AI ${WORKERS_AI_MODEL}: a vector of ${row.length} values, expected ${this.dim}`);
        out.set(row, (first + i) * this.dim);
      });
    }
    return out;
  }
}
