// One applied step's mean gradient and batch statistics: the coordinator's update log, replayed over the
// last full state after a restart (coordinator/run-store.ts).
import { decodeTensorPair, encodeTensorPair } from './tensor-pair';

export interface StepUpdate {
  /** The step this update produced: applying it to version step − 1 gives version `step`. */
  readonly step: number;
  readonly grads: Float32Array;
  readonly stats: Float32Array;
}

export const UPDATE_MAGIC = 'ETUP';
export const UPDATE_FORMAT = 1;

export const encodeUpdate = (u: StepUpdate): Uint8Array<ArrayBuffer> => encodeTensorPair(UPDATE_MAGIC, UPDATE_FORMAT, u.step, u.grads, u.stats);

export function decodeUpdate(bytes: Uint8Array): StepUpdate {
  const [step, grads, stats] = decodeTensorPair(bytes, UPDATE_MAGIC, UPDATE_FORMAT, 'update frame');
  return { step, grads, stats };
}
