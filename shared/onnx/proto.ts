// Minimal protobuf writer for the subset of onnx.proto the builder emits (ModelProto and below).
// Field numbers follow onnx/onnx.proto; repeated scalars are written unpacked, which every
// protobuf parser accepts for proto2 files.

export const enum TensorDataType {
  FLOAT = 1,
  UINT8 = 2,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
}

export type AttributeValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'string'; value: string };

export interface TensorProtoInit {
  name: string;
  dataType: TensorDataType;
  dims: readonly number[];
  raw: Uint8Array;
}

export interface NodeProtoInit {
  opType: string;
  name: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes: readonly [string, AttributeValue][];
}

export interface ValueInfoInit {
  name: string;
  dataType: TensorDataType;
  /** A number is a fixed dim (dim_value); a string a symbolic one (dim_param, e.g. 'batch_size'). */
  dims: readonly (number | string)[];
}

export interface ModelProtoInit {
  irVersion: number;
  opsetVersion: number;
  producer: string;
  graphName: string;
  docString: string;
  nodes: readonly NodeProtoInit[];
  initializers: readonly TensorProtoInit[];
  inputs: readonly ValueInfoInit[];
  outputs: readonly ValueInfoInit[];
}

const utf8 = new TextEncoder();

/**
 * Growable byte buffer with protobuf primitives. Large payloads (tensor data) and nested messages are
 * kept by reference and copied once, by finish(): a 150 MB model is not copied at every nesting level.
 */
class Writer {
  private buf = new Uint8Array(1024);
  private len = 0;
  /** Written bytes before `buf`, in order (a payload passed to bytes() must not change until finish()). */
  private parts: Uint8Array[] = [];
  private partsLength = 0;

  get length(): number {
    return this.partsLength + this.len;
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** Appends `chunk` by reference. */
  private append(chunk: Uint8Array): void {
    if (this.len > 0) {
      this.parts.push(this.buf.subarray(0, this.len));
      this.partsLength += this.len;
      this.buf = new Uint8Array(1024);
      this.len = 0;
    }
    this.parts.push(chunk);
    this.partsLength += chunk.length;
  }

  private raw(data: Uint8Array): void {
    if (data.length >= LARGE_CHUNK) return this.append(data);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  varint(value: number | bigint): void {
    // int64 fields: negative values are written as 10-byte two's complement.
    let v = BigInt.asUintN(64, BigInt(value));
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
  }

  tag(field: number, wireType: 0 | 1 | 2 | 5): void {
    this.varint((field << 3) | wireType);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    this.raw(data);
  }

  string(field: number, s: string): void {
    this.bytes(field, utf8.encode(s));
  }

  int(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, 5);
    this.ensure(4);
    new DataView(this.buf.buffer).setFloat32(this.len, value, true);
    this.len += 4;
  }

  message(field: number, write: (w: Writer) => void): void {
    const inner = new Writer();
    write(inner);
    this.tag(field, 2);
    this.varint(inner.length);
    for (const part of inner.parts) this.raw(part);
    this.raw(inner.buf.subarray(0, inner.len));
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of [...this.parts, this.buf.subarray(0, this.len)]) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

/** Payloads from this size on are kept by reference rather than copied into the buffer. */
const LARGE_CHUNK = 64 * 1024;

const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const;

function writeAttribute(w: Writer, name: string, attr: AttributeValue): void {
  w.string(1, name);
  switch (attr.kind) {
    case 'float':
      w.float(2, attr.value);
      break;
    case 'int':
      w.int(3, attr.value);
      break;
    case 'string':
      w.string(4, attr.value);
      break;
    case 'floats':
      for (const v of attr.value) w.float(7, v);
      break;
    case 'ints':
      for (const v of attr.value) w.int(8, v);
      break;
  }
  w.int(20, ATTRIBUTE_TYPE[attr.kind]);
}

function writeTensor(w: Writer, t: TensorProtoInit): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.raw);
}

function writeValueInfo(w: Writer, v: ValueInfoInit): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensorType) => {
      tensorType.int(1, v.dataType);
      tensorType.message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => (typeof d === 'string' ? dim.string(2, d) : dim.int(1, d)));
      });
    }),
  );
}

function writeNode(w: Writer, n: NodeProtoInit): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, attr] of n.attributes) w.message(5, (a) => writeAttribute(a, name, attr));
}

export function encodeModel(m: ModelProtoInit): Uint8Array {
  const w = new Writer();
  w.int(1, m.irVersion);
  w.string(2, m.producer);
  if (m.docString) w.string(6, m.docString);
  w.message(7, (g) => {
    for (const n of m.nodes) g.message(1, (nw) => writeNode(nw, n));
    g.string(2, m.graphName);
    for (const t of m.initializers) g.message(5, (tw) => writeTensor(tw, t));
    for (const v of m.inputs) g.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of m.outputs) g.message(12, (vw) => writeValueInfo(vw, v));
  });
  w.message(8, (o) => {
    o.string(1, '');
    o.int(2, m.opsetVersion);
  });
  return w.finish();
}
