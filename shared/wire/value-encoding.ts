// The self-description of a compressed frame's values (codec id, top-k fraction, segment sizes, then
// the payload), and the check of what a frame says against what its reader expects. The check comes
// before the payload is decoded: segments decide how large the dense vector is, and a small top-k
// payload could otherwise claim billions of values.
import { codecOfId, decodeValues, idOfCodec, payloadBytes, type CodecSpec, type ValueEncoding } from './codec';
import { WireError, rawBytes, type FrameReader, type FrameWriter } from './frame';

/** Bytes of the codec id, top-k fraction (f64) and segment sizes. */
export const encodingBytes = (e: ValueEncoding): number => 4 + 8 + 4 + 4 * e.segments.length;

/** Bytes of the encoding and its payload in a frame. */
export const encodedValuesBytes = (e: ValueEncoding): number => encodingBytes(e) + rawBytes(payloadBytes(e.codec, e.segments));

export function writeEncoding(w: FrameWriter, e: ValueEncoding): void {
  w.u32(idOfCodec(e.codec.codec));
  w.f64(e.codec.codec === 'topk' ? (e.codec.topK ?? NaN) : 0);
  w.u32(e.segments.length);
  for (const s of e.segments) w.u32(s);
}

export function readEncoding(r: FrameReader, what: string): ValueEncoding {
  const id = r.u32();
  const codec = codecOfId(id);
  if (!codec) throw new WireError('codec', `${what}: unknown codec id ${id}`);
  const topK = r.f64();
  if (codec === 'topk' && !(topK > 0 && topK <= 1)) throw new WireError('codec', `${what}: top-k fraction ${topK} is outside (0, 1]`);
  const count = r.u32();
  const segments: number[] = [];
  for (let i = 0; i < count; i++) {
    const s = r.u32(); // a hostile count runs out of frame here, before anything large is allocated
    if (s < 1) throw new WireError('segments', `${what}: segment ${i} has size 0`);
    segments.push(s);
  }
  const spec: CodecSpec = codec === 'topk' ? { codec, topK } : { codec };
  return { codec: spec, segments };
}

const describe = (c: CodecSpec): string => (c.codec === 'topk' ? `topk (fraction ${c.topK})` : c.codec);

/**
 * Throws WireError ('codec' or 'segments') when a frame's encoding is not the expected one. `seen`
 * undefined: a dense fp32 frame of the old format; `expected` fp32: that format is the one expected.
 */
export function checkEncoding(what: string, seen: ValueEncoding | undefined, expected: ValueEncoding): void {
  const dense = expected.codec.codec === 'fp32';
  if (!seen) {
    if (!dense) throw new WireError('codec', `${what}: a dense fp32 frame, and this run's frames are ${describe(expected.codec)}`);
    return;
  }
  if (dense) throw new WireError('codec', `${what}: a ${describe(seen.codec)} frame, and this run's frames are dense fp32`);
  const sameCodec = seen.codec.codec === expected.codec.codec && (seen.codec.codec !== 'topk' || seen.codec.topK === expected.codec.topK);
  if (!sameCodec) throw new WireError('codec', `${what}: codec ${describe(seen.codec)}, and this run's is ${describe(expected.codec)}`);
  const sameSegments = seen.segments.length === expected.segments.length && seen.segments.every((s, i) => s === expected.segments[i]);
  if (!sameSegments) {
    const first = seen.segments.findIndex((s, i) => s !== expected.segments[i]);
    throw new WireError(
      'segments',
      `${what}: ${seen.segments.length} segments, the run's model has ${expected.segments.length} tensors` +
        (first >= 0 && first < expected.segments.length ? ` (segment ${first} is ${seen.segments[first]} values, tensor ${first} has ${expected.segments[first]})` : ''),
    );
  }
}

/** The dense values of an encoded payload (the encoding already read, and checked when it matters). */
export function readEncodedValues(r: FrameReader, e: ValueEncoding, what: string): Float32Array {
  const payload = r.bytes();
  const n = e.segments.reduce((a, b) => a + b, 0);
  return decodeValues(payload, n, e.codec, e.segments, what);
}
