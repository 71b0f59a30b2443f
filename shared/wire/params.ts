// The parameters (and batch-norm running buffers) of one version, as served to workers.
import { FrameReader, FrameWriter, floatsBytes } from './frame';

export interface ParameterSet {
  readonly version: number;
  readonly params: Float32Array;
  readonly buffers: Float32Array;
}

export const PARAMS_MAGIC = 'ETPV';
export const PARAMS_FORMAT = 1;

export function encodeParams(p: ParameterSet): Uint8Array<ArrayBuffer> {
  const w = new FrameWriter(PARAMS_MAGIC, PARAMS_FORMAT, 4 + floatsBytes(p.params.length) + floatsBytes(p.buffers.length));
  w.u32(p.version);
  w.floats(p.params);
  w.floats(p.buffers);
  return w.finish();
}

/** `params` and `buffers` alias `bytes` when it is 4-byte aligned. */
export function decodeParams(bytes: Uint8Array): ParameterSet {
  const r = new FrameReader(bytes, PARAMS_MAGIC, PARAMS_FORMAT, 'params frame');
  const p: ParameterSet = { version: r.u32(), params: r.floats(), buffers: r.floats() };
  r.end();
  return p;
}
