// Frames a worker posts back for one lease: gradients (training) or eval results (forward-only).
// A gradient frame is dense fp32 ('ETGR'), or compressed ('ETGQ': the same head, then the values'
// encoding and payload, value-encoding.ts); statistics are fp32 in both. Format 2 added the domain
// section after the scalars (DANN runs' domain classifier figures, domain.ts).
import { encodeValues, type ValueEncoding } from './codec';
import { FRAME_FIXED_BYTES, FrameReader, FrameWriter, WireError, floatsBytes, magicOf, rawBytes, stringBytes } from './frame';
import { domainBytes, readDomain, writeDomain, type DomainFigures } from './domain';
import { isLeaseId, leaseIdProblem } from './lease-id';
import { checkEncoding, encodedValuesBytes, encodingBytes, readEncodedValues, readEncoding, writeEncoding } from './value-encoding';

export interface GradientSubmission {
  readonly leaseId: string;
  readonly version: number; // parameter version the gradient was computed at
  readonly step: number;
  readonly shard: number;
  readonly count: number; // images in the shard
  readonly loss: number; // mean loss over the shard (f64 on the wire)
  readonly correct: number; // correct predictions in the shard
  readonly grads: Float32Array; // d(mean loss)/d(params), flat
  readonly stats: Float32Array; // batch-norm batch statistics, flat (may be empty)
  /** DANN runs only: the domain classifier's mean loss and correct count over the shard's 2 × count images. */
  readonly domain?: DomainFigures;
}

export interface EvalSubmission {
  readonly leaseId: string;
  readonly version: number;
  readonly step: number;
  readonly shard: number;
  readonly count: number;
  readonly lossSum: number;
  readonly correct: number;
}

export const GRADIENT_MAGIC = 'ETGR';
export const GRADIENT_FORMAT = 2;
export const COMPRESSED_GRADIENT_MAGIC = 'ETGQ';
export const COMPRESSED_GRADIENT_FORMAT = 2;

/** A decoded gradient frame: dense values, and the encoding it arrived in (none: a dense 'ETGR' frame). */
export interface DecodedGradient extends GradientSubmission {
  readonly encoding?: ValueEncoding;
}

/** A gradient answer whose values are already encoded (a worker's error feedback encodes them). */
export interface CompressedGradient extends Omit<GradientSubmission, 'grads'> {
  readonly encoding: ValueEncoding;
  readonly payload: Uint8Array;
}
export const EVAL_MAGIC = 'ETEV';
export const EVAL_FORMAT = 1;

// version, step, shard, count (u32 each), loss (f64), correct (u32) after the lease id, in both frames.
const SCALARS_BYTES = 4 * 4 + 8 + 4;

/** The fields both frames open with, after the lease id. */
interface Header {
  readonly leaseId: string;
  readonly version: number;
  readonly step: number;
  readonly shard: number;
  readonly count: number;
}

function writeHeader(w: FrameWriter, h: Header, loss: number, correct: number): void {
  w.string(h.leaseId);
  w.u32(h.version);
  w.u32(h.step);
  w.u32(h.shard);
  w.u32(h.count);
  w.f64(loss);
  w.u32(correct);
}

/** The header; a lease id that is not one is refused here, before anything quotes it in full. */
function readHeader(r: FrameReader, what: string): Header & { loss: number; correct: number } {
  const leaseId = r.string();
  if (!isLeaseId(leaseId)) throw new WireError('lease-id', `${what}: ${leaseIdProblem(leaseId)}`);
  return { leaseId, version: r.u32(), step: r.u32(), shard: r.u32(), count: r.u32(), loss: r.f64(), correct: r.u32() };
}

export function encodeGradient(s: GradientSubmission): Uint8Array<ArrayBuffer> {
  const w = new FrameWriter(GRADIENT_MAGIC, GRADIENT_FORMAT, stringBytes(s.leaseId) + SCALARS_BYTES + domainBytes(s.domain) + floatsBytes(s.grads.length) + floatsBytes(s.stats.length));
  writeHeader(w, s, s.loss, s.correct);
  writeDomain(w, s.domain);
  w.floats(s.grads);
  w.floats(s.stats);
  return w.finish();
}

export function encodeCompressedGradient(s: CompressedGradient): Uint8Array<ArrayBuffer> {
  const w = new FrameWriter(
    COMPRESSED_GRADIENT_MAGIC,
    COMPRESSED_GRADIENT_FORMAT,
    stringBytes(s.leaseId) + SCALARS_BYTES + domainBytes(s.domain) + encodingBytes(s.encoding) + rawBytes(s.payload.byteLength) + floatsBytes(s.stats.length),
  );
  writeHeader(w, s, s.loss, s.correct);
  writeDomain(w, s.domain);
  writeEncoding(w, s.encoding);
  w.bytes(s.payload);
  w.floats(s.stats);
  return w.finish();
}

/**
 * The byte length of a train answer's frame in `encoding` (the dense frame for fp32), its lease id a
 * UUID; `dann`: the run's frames carry domain figures.
 */
export function gradientFrameSize(encoding: ValueEncoding, statCount: number, dann: boolean): number {
  const n = encoding.segments.reduce((a, b) => a + b, 0);
  const values = encoding.codec.codec === 'fp32' ? floatsBytes(n) : encodedValuesBytes(encoding);
  return FRAME_FIXED_BYTES + stringBytes(UUID_EXAMPLE) + SCALARS_BYTES + domainBytes(dann ? { loss: 0, correct: 0 } : undefined) + values + floatsBytes(statCount);
}

const UUID_EXAMPLE = '00000000-0000-4000-8000-000000000000';

/** `s` in `encoding`: fp32 is today's dense frame, anything else a compressed one (no error feedback). */
export function encodeGradientAs(s: GradientSubmission, encoding: ValueEncoding): Uint8Array<ArrayBuffer> {
  if (encoding.codec.codec === 'fp32') return encodeGradient(s);
  return encodeCompressedGradient({ ...s, encoding, payload: encodeValues(s.grads, encoding.codec, encoding.segments) });
}

/**
 * Either gradient frame, with dense `grads`. With `expected` (the run's encoding; fp32: the dense
 * frame) a frame in another is refused (WireError 'codec' or 'segments') before its payload is
 * decoded: pass it for frames from anyone. A dense frame's `grads` and `stats` alias `bytes` when it
 * is 4-byte aligned; a compressed frame's `stats` do.
 */
export function decodeGradient(bytes: Uint8Array, expected?: ValueEncoding): DecodedGradient {
  const what = 'gradient frame';
  if (magicOf(bytes) !== COMPRESSED_GRADIENT_MAGIC) {
    const r = new FrameReader(bytes, GRADIENT_MAGIC, GRADIENT_FORMAT, what);
    if (expected) checkEncoding(what, undefined, expected);
    const head = readHeader(r, what);
    const domain = readDomain(r, head.count, what);
    const s: DecodedGradient = { ...head, ...domain, grads: r.floats(), stats: r.floats() };
    r.end();
    return s;
  }
  const r = new FrameReader(bytes, COMPRESSED_GRADIENT_MAGIC, COMPRESSED_GRADIENT_FORMAT, what);
  const head = readHeader(r, what);
  const domain = readDomain(r, head.count, what);
  const encoding = readEncoding(r, what);
  if (expected) checkEncoding(what, encoding, expected);
  const grads = readEncodedValues(r, encoding, what);
  const s: DecodedGradient = { ...head, ...domain, grads, stats: r.floats(), encoding };
  r.end();
  return s;
}

export function encodeEval(s: EvalSubmission): Uint8Array<ArrayBuffer> {
  const w = new FrameWriter(EVAL_MAGIC, EVAL_FORMAT, stringBytes(s.leaseId) + SCALARS_BYTES);
  writeHeader(w, s, s.lossSum, s.correct);
  return w.finish();
}

export function decodeEval(bytes: Uint8Array): EvalSubmission {
  const r = new FrameReader(bytes, EVAL_MAGIC, EVAL_FORMAT, 'eval frame');
  const { loss, ...rest } = readHeader(r, 'eval frame');
  r.end();
  return { ...rest, lossSum: loss };
}
