// Reading serialised ONNX protobuf without a schema: enough to look inside a model's bytes (an
// embedding table's size, the node list) before handing them to a runtime.

export interface ProtoField {
  readonly field: number;
  /** A varint's value, or a length-delimited field's length. */
  readonly value: number;
  /** A length-delimited field's bytes (a view into the message). */
  readonly bytes?: Uint8Array;
}

/** The top-level fields of a protobuf message; `packed` reads a packed repeated varint field's payload. */
export function protoFields(buf: Uint8Array, packed = false): ProtoField[] {
  const out: ProtoField[] = [];
  let at = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = buf[at++];
      if (byte === undefined) throw new Error('protobuf: truncated message');
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
  };
  while (at < buf.length) {
    if (packed) {
      out.push({ field: 1, value: varint() });
      continue;
    }
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) out.push({ field, value: varint() });
    else if (wire === 1 || wire === 5) at += wire === 1 ? 8 : 4;
    else if (wire === 2) {
      const len = varint();
      if (at + len > buf.length) throw new Error('protobuf: truncated message');
      out.push({ field, value: len, bytes: buf.subarray(at, at + len) });
      at += len;
    } else throw new Error(`protobuf: unsupported wire type ${wire}`);
  }
  return out;
}

export interface OnnxNodeInfo {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

const utf8 = new TextDecoder();

/**
 * The top-level graph's nodes of a serialised model (ModelProto.graph = 7; GraphProto.node = 1;
 * NodeProto: input 1, output 2, name 3, op_type 4, domain 7). Subgraph and function nodes are not listed.
 */
export function onnxNodes(model: Uint8Array): OnnxNodeInfo[] {
  const nodes: OnnxNodeInfo[] = [];
  for (const g of protoFields(model)) {
    if (g.field !== 7 || !g.bytes) continue;
    for (const n of protoFields(g.bytes)) {
      if (n.field !== 1 || !n.bytes) continue;
      const node = { name: '', opType: '', domain: '', inputs: [] as string[], outputs: [] as string[] };
      for (const f of protoFields(n.bytes)) {
        if (!f.bytes) continue;
        const s = utf8.decode(f.bytes);
        if (f.field === 1) node.inputs.push(s);
        else if (f.field === 2) node.outputs.push(s);
        else if (f.field === 3) node.name = s;
        else if (f.field === 4) node.opType = s;
        else if (f.field === 7) node.domain = s;
      }
      nodes.push(node);
    }
  }
  return nodes;
}
