// The random BERT model in onnxruntime-web inside workerd computes what it computes in Node, for two
// batch shapes through one session (the model's batch and sequence dims are symbolic). One workerd start.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphSession, type Feed } from '../../shared/onnx/session';
import { buildRandomBert } from '../../shared/text/bert-graph';
import { webOrt } from '../support/ort';
import { startOrtWorkerd, type OrtWorkerd } from '../../cli/cluster/ort-probe';

const SMALL = { hidden: 64, heads: 4, intermediate: 128, vocab: 1000, layers: 2, maxPosition: 64, seed: 7 };

/** [batch, length] feeds: row r has lengths[r] tokens (id 2 first, as [CLS]), then padding with mask 0. */
function feeds(lengths: number[], length: number): Record<string, Feed> {
  const n = lengths.length * length;
  const [ids, mask, types] = [new BigInt64Array(n), new BigInt64Array(n), new BigInt64Array(n)];
  lengths.forEach((len, r) => {
    for (let s = 0; s < len; s++) {
      ids[r * length + s] = BigInt(s === 0 ? 2 : (r * 7919 + s * 104729) % SMALL.vocab);
      mask[r * length + s] = 1n;
      types[r * length + s] = BigInt(s >= len / 2 ? 1 : 0);
    }
  });
  const dims = [lengths.length, length];
  return { input_ids: { data: ids, dims }, attention_mask: { data: mask, dims }, token_type_ids: { data: types, dims } };
}

let workerd: OrtWorkerd;
beforeAll(async () => {
  workerd = await startOrtWorkerd();
});
afterAll(async () => {
  await workerd?.dispose();
});

describe('random BERT inside workerd', () => {
  it('gives the same last_hidden_state and pooler_output as Node for [3, 9] (padded) and [1, 20]', async () => {
    const model = buildRandomBert(SMALL);
    const session = await GraphSession.create(await webOrt(), model);
    try {
      for (const [lengths, length] of [[[9, 4, 1], 9], [[20], 20]] as const) {
        const f = feeds([...lengths], length);
        const node = await session.runWithDims(f);
        const { outputs, sessionCached } = await workerd.run(model, f);
        expect(sessionCached).toBe(length === 20); // the second shape runs in the first shape's session
        for (const name of ['last_hidden_state', 'pooler_output']) {
          const [a, w] = [node[name], outputs[name]];
          expect(w.dims).toEqual(a.dims);
          let maxDiff = 0;
          let identical = true;
          for (let i = 0; i < a.data.length; i++) {
            const [x, y] = [Number(a.data[i]), Number(w.data[i])];
            maxDiff = Math.max(maxDiff, Math.abs(x - y));
            if (!Object.is(x, y)) identical = false;
          }
          console.log(`[bert-workerd] ${name} [${a.dims}]: bit-identical ${identical}, max |node − workerd| ${maxDiff}`);
          expect(maxDiff).toBeLessThanOrEqual(1e-6);
        }
      }
    } finally {
      await session.release();
    }
  });
});
