// The parameters (and batch-norm running buffers) of one version, as served to workers: dense fp32
// ('ETPV'), or with the parameters compressed ('ETPQ': version, the values' encoding and payload as in
// value-encoding.ts, then fp32 buffers).
import { encodeValues, type ValueEncoding } from './codec';
import { FRAME_FIXED_BYTES, FrameReader, FrameWriter, WireError, floatsBytes, magicOf } from './frame';
import { decodeTensorPair, encodeTensorPair } from './tensor-pair';
import { checkEncoding, encodedValuesBytes, readEncodedValues, readEncoding, writeEncoding } from './value-encoding';

export interface ParameterSet {
  readonly version: number;
  readonly params: Float32Array;
  readonly buffers: Float32Array;
}

/** A decoded parameter frame, with the encoding its parameters arrived in (none: a dense 'ETPV' frame). */
export interface DecodedParameterSet extends ParameterSet {
  readonly encoding?: ValueEncoding;
}

export const PARAMS_MAGIC = 'ETPV';
export const PARAMS_FORMAT = 1;
export const COMPRESSED_PARAMS_MAGIC = 'ETPQ';
export const COMPRESSED_PARAMS_FORMAT = 1;

/** The byte length of a version's frame in `encoding` (the dense frame for fp32). */
export function paramsFrameSize(encoding: ValueEncoding, bufferCount: number): number {
  const n = encoding.segments.reduce((a, b) => a + b, 0);
  const values = encoding.codec.codec === 'fp32' ? floatsBytes(n) : encodedValuesBytes(encoding);
  return FRAME_FIXED_BYTES + 4 + values + floatsBytes(bufferCount);
}

/** `p` as a frame; with a non-fp32 `encoding` its parameters compressed (buffers stay fp32). */
export function encodeParams(p: ParameterSet, encoding?: ValueEncoding): Uint8Array<ArrayBuffer> {
  if (!encoding || encoding.codec.codec === 'fp32') return encodeTensorPair(PARAMS_MAGIC, PARAMS_FORMAT, p.version, p.params, p.buffers);
  if (encoding.codec.codec === 'topk') throw new RangeError('params frame: top-k is a gradient codec, parameters are sent whole');
  const payload = encodeValues(p.params, encoding.codec, encoding.segments);
  const w = new FrameWriter(COMPRESSED_PARAMS_MAGIC, COMPRESSED_PARAMS_FORMAT, 4 + encodedValuesBytes(encoding) + floatsBytes(p.buffers.length));
  w.u32(p.version);
  writeEncoding(w, encoding);
  w.bytes(payload);
  w.floats(p.buffers);
  return w.finish();
}

/**
 * Either params frame, with dense `params`; with `expected`, a frame in another encoding is refused
 * (WireError 'codec' or 'segments'). A dense frame's arrays alias `bytes` when it is 4-byte aligned.
 */
export function decodeParams(bytes: Uint8Array, expected?: ValueEncoding): DecodedParameterSet {
  const what = 'params frame';
  if (magicOf(bytes) !== COMPRESSED_PARAMS_MAGIC) {
    const [version, params, buffers] = decodeTensorPair(bytes, PARAMS_MAGIC, PARAMS_FORMAT, what);
    if (expected) checkEncoding(what, undefined, expected);
    return { version, params, buffers };
  }
  const r = new FrameReader(bytes, COMPRESSED_PARAMS_MAGIC, COMPRESSED_PARAMS_FORMAT, what);
  const version = r.u32();
  const encoding = readEncoding(r, what);
  if (encoding.codec.codec === 'topk') throw new WireError('codec', `${what}: top-k is a gradient codec, parameters are sent whole`);
  if (expected) checkEncoding(what, encoding, expected);
  const params = readEncodedValues(r, encoding, what);
  const set: DecodedParameterSet = { version, params, buffers: r.floats(), encoding };
  r.end();
  return set;
}
