// Checkpoint bytes: "ETCK", version, JSON header, then float32 sections (params, buffers, optimizer
// slots). Pure, so the coordinator can write the same format to R2 later.
import type { OptimizerState } from '../optim/optimizer';
import type { TrainConfig } from './config';

export interface EpochReport {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
  /** Wall seconds of the epoch (training + evaluation). */
  readonly seconds: number;
  readonly trainImagesPerSecond: number;
  /** Bytes workers sent (gradient or delta frames) and fetched (parameter versions) in the epoch: runs simulating a cluster's communication. */
  readonly upBytes?: number;
  readonly downBytes?: number;
  /** Simulated churn: workers replaced in the epoch, and their lost residuals' mean size relative to the answer they were lost at. */
  readonly workersReplaced?: number;
  readonly lostResidualRatio?: number;
  /** A target domain's test split (TrainOptions.target): with its own batch-norm statistics in a DANN run. */
  readonly targetLoss?: number;
  readonly targetAccuracy?: number;
  /** The last epoch of a source-only model with batch norm: the target with AdaBN's re-estimated statistics. */
  readonly adabnLoss?: number;
  readonly adabnAccuracy?: number;
  /** DANN: the domain classifier's mean loss and accuracy over the epoch's source and target images. */
  readonly domainLoss?: number;
  readonly domainAccuracy?: number;
}

const MAGIC = 0x4b435445; // "ETCK" little-endian
const VERSION = 1;

export interface TrainerState {
  readonly config: TrainConfig;
  /** Epochs completed. */
  readonly epoch: number;
  /** Optimizer steps completed. */
  readonly step: number;
  readonly params: Float32Array;
  readonly buffers: Float32Array;
  readonly optimizer: OptimizerState;
  readonly history: readonly EpochReport[];
}

interface Header {
  config: TrainConfig;
  epoch: number;
  step: number;
  optimizerStep: number;
  history: EpochReport[];
  sections: { name: string; length: number }[];
}

export function encodeCheckpoint(s: TrainerState): Uint8Array {
  const sections: [string, Float32Array][] = [
    ['params', s.params],
    ['buffers', s.buffers],
    ...s.optimizer.slots.map((slot, i): [string, Float32Array] => [`optimizer.${i}`, slot]),
  ];
  const header: Header = {
    config: s.config,
    epoch: s.epoch,
    step: s.step,
    optimizerStep: s.optimizer.step,
    history: [...s.history],
    sections: sections.map(([name, data]) => ({ name, length: data.length })),
  };
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.length / 4) * 4).fill(0x20);
  padded.set(json);
  json = padded;
  const floats = sections.reduce((n, [, d]) => n + d.length, 0);
  const out = new Uint8Array(12 + json.length + floats * 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, json.length, true);
  out.set(json, 12);
  let offset = 12 + json.length;
  for (const [, data] of sections) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    offset += data.byteLength;
  }
  return out;
}

export function decodeCheckpoint(bytes: Uint8Array, source = 'checkpoint'): TrainerState {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12 || view.getUint32(0, true) !== MAGIC) throw new Error(`${source}: not an edgetrain checkpoint`);
  if (view.getUint32(4, true) !== VERSION) throw new Error(`${source}: checkpoint version ${view.getUint32(4, true)}, expected ${VERSION}`);
  const jsonLength = view.getUint32(8, true);
  if (12 + jsonLength > bytes.length) throw new Error(`${source}: ${bytes.length} bytes, its header alone claims ${12 + jsonLength} (truncated or corrupt)`);
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + jsonLength))) as Header;
  } catch (e) {
    throw new Error(`${source}: header is not valid JSON (${(e as Error).message}): corrupt checkpoint`);
  }
  if (!Array.isArray(header?.sections) || header.sections.some((s) => typeof s?.name !== 'string' || !Number.isInteger(s.length) || s.length < 0)) {
    throw new Error(`${source}: header lists no valid sections: corrupt checkpoint`);
  }
  const expected = 12 + jsonLength + header.sections.reduce((n, s) => n + s.length * 4, 0);
  if (bytes.length !== expected) throw new Error(`${source}: ${bytes.length} bytes, header describes ${expected} (truncated or corrupt)`);
  const sections = new Map<string, Float32Array>();
  let offset = 12 + jsonLength;
  for (const s of header.sections) {
    // Copy: `bytes` may be a view into a larger buffer (a Node Buffer from the pool) at any alignment.
    const section = new Float32Array(s.length);
    new Uint8Array(section.buffer).set(bytes.subarray(offset, offset + s.length * 4));
    sections.set(s.name, section);
    offset += s.length * 4;
  }
  const slots = header.sections.filter((s) => s.name.startsWith('optimizer.')).map((s) => sections.get(s.name)!);
  return {
    config: header.config,
    epoch: header.epoch,
    step: header.step,
    params: sections.get('params')!,
    buffers: sections.get('buffers')!,
    optimizer: { step: header.optimizerStep, slots },
    history: header.history,
  };
}
