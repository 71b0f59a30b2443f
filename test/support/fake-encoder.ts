// A deterministic stand-in caption encoder for tests: a seeded vector per text (hash of its characters).
import { mulberry32 } from '../../shared/data/shuffle';
import type { CaptionEncoder } from '../../shared/text/encoder';

export class FakeEncoder implements CaptionEncoder {
  readonly dim = 768;
  /** encode() calls so far (a stored set must cost none). */
  calls = 0;

  constructor(readonly id: string) {}

  async encode(texts: readonly string[]): Promise<Float32Array> {
    this.calls++;
    const out = new Float32Array(texts.length * this.dim);
    texts.forEach((t, i) => {
      let h = 2166136261;
      for (const ch of t) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
      const rng = mulberry32(h);
      for (let d = 0; d < this.dim; d++) out[i * this.dim + d] = rng() - 0.5;
    });
    return out;
  }
}
