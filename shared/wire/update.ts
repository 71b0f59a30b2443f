// One applied step's mean gradient and batch statistics: the coordinator's update log, replayed over the
// last full state after a restart (coordinator/version-store.ts).
import { FrameReader, FrameWriter, floatsBytes } from './frame';

export interface StepUpdate {
  /** The step this update produced: applying it to version step − 1 gives version `step`. */
  readonly step: number;
  readonly grads: Float32Array;
  readonly stats: Float32Array;
}

export const UPDATE_MAGIC = 'ETUP';
export const UPDATE_FORMAT = 1;

export function encodeUpdate(u: StepUpdate): Uint8Array<ArrayBuffer> {
  const w = new FrameWriter(UPDATE_MAGIC, UPDATE_FORMAT, 4 + floatsBytes(u.grads.length) + floatsBytes(u.stats.length));
  w.u32(u.step);
  w.floats(u.grads);
  w.floats(u.stats);
  return w.finish();
}

export function decodeUpdate(bytes: Uint8Array): StepUpdate {
  const r = new FrameReader(bytes, UPDATE_MAGIC, UPDATE_FORMAT, 'update frame');
  const u: StepUpdate = { step: r.u32(), grads: r.floats(), stats: r.floats() };
  r.end();
  return u;
}
