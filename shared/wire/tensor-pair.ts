// A u32 id and two float arrays in one checksummed frame: the layout of parameter frames (version,
// parameters, buffers) and of the coordinator's update log (step, mean gradient, statistics).
import { FrameReader, FrameWriter, floatsBytes } from './frame';

export function encodeTensorPair(magic: string, format: number, id: number, a: Float32Array, b: Float32Array): Uint8Array<ArrayBuffer> {
  const w = new FrameWriter(magic, format, 4 + floatsBytes(a.length) + floatsBytes(b.length));
  w.u32(id);
  w.floats(a);
  w.floats(b);
  return w.finish();
}

/** The arrays alias `bytes` when it is 4-byte aligned. */
export function decodeTensorPair(bytes: Uint8Array, magic: string, format: number, what: string): [id: number, a: Float32Array, b: Float32Array] {
  const r = new FrameReader(bytes, magic, format, what);
  const pair: [number, Float32Array, Float32Array] = [r.u32(), r.floats(), r.floats()];
  r.end();
  return pair;
}
