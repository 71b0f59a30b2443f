// What leaves the coordinator for others to keep: checkpoint snapshots (R2, in the trainer's
// checkpoint format, so `edgetrain train --resume` continues from them), the inference model with the
// run's weights and captions baked in, and the run's entry in the KV run index.
import type { KVNamespace } from '@cloudflare/workers-types/index';
import { TEXT_DIM } from '../shared/models/heads';
import type { RunSpec, RunSummary } from '../shared/protocol';
import { runIndexKey } from '../shared/storage-keys';
import { CAPTIONS_PREFIX, captionsForModel } from '../shared/text/caption-store';
import { encodeCheckpoint } from '../shared/training/checkpoint';
import { inferenceModelBytes } from '../shared/training/export';
import type { ModelState } from '../shared/training/update';
import { fail, ok, type Outcome } from './outcome';
import type { EpochHistory, Position, RunRecord } from './run-store';
import type { ShardPlan } from './shard-plan';

/** A checkpoint of the run at `position` (copies of the live tensors). */
export function checkpointBytes(spec: RunSpec, shards: ShardPlan, position: Position, model: ModelState, history: readonly EpochHistory[]): Uint8Array {
  return encodeCheckpoint({
    config: spec.config.train,
    epoch: shards.epochsDone(position.step, position.phase),
    // The trainer's format counts global steps (a DiLoCo run's position counts rounds).
    step: shards.globalStepAfter(position.step),
    params: model.params.slice(),
    buffers: model.buffers.slice(),
    optimizer: { step: model.optimizer.state.step, slots: model.optimizer.state.slots.map((s) => s.slice()) },
    history: history.map((h) => ({ ...h, seconds: 0, trainImagesPerSecond: 0 })),
  });
}

/** The inference model with the run's current weights and its caption vectors (read from KV). */
export async function exportModel(kv: KVNamespace, spec: RunSpec, model: Pick<ModelState, 'params' | 'buffers'>): Promise<Outcome<ArrayBuffer>> {
  const { train, captions: hash } = spec.config;
  let captions: Float32Array | undefined;
  if (hash) {
    const stored = await kv.get(`${CAPTIONS_PREFIX}${hash}`, 'arrayBuffer');
    if (!stored) return fail(409, `caption set ${hash} is no longer in KV; the model cannot be exported without it`, 'captions');
    captions = captionsForModel(new Uint8Array(stored), train.model, TEXT_DIM, hash);
  }
  return ok(inferenceModelBytes(train.model, train.normalization, model.params, model.buffers, captions).slice().buffer);
}

/** Lists the run in the KV index (its summary as metadata, so listing needs no reads). */
export async function indexRun(kv: KVNamespace, record: RunRecord): Promise<void> {
  const { model } = record.spec.config.train;
  const summary: RunSummary = { runId: record.runId, state: record.state, createdAt: record.createdAt, preset: model.preset, head: model.head };
  await kv.put(runIndexKey(record.runId), JSON.stringify(summary), { metadata: summary });
}
