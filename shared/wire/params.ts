// The parameters (and batch-norm running buffers) of one version, as served to workers.
import { decodeTensorPair, encodeTensorPair } from './tensor-pair';

export interface ParameterSet {
  readonly version: number;
  readonly params: Float32Array;
  readonly buffers: Float32Array;
}

export const PARAMS_MAGIC = 'ETPV';
export const PARAMS_FORMAT = 1;

export const encodeParams = (p: ParameterSet): Uint8Array<ArrayBuffer> => encodeTensorPair(PARAMS_MAGIC, PARAMS_FORMAT, p.version, p.params, p.buffers);

/** `params` and `buffers` alias `bytes` when it is 4-byte aligned. */
export function decodeParams(bytes: Uint8Array): ParameterSet {
  const [version, params, buffers] = decodeTensorPair(bytes, PARAMS_MAGIC, PARAMS_FORMAT, 'params frame');
  return { version, params, buffers };
}
