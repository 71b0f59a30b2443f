import { encodeModel, TensorDataType, type AttributeValue, type NodeProtoInit, type TensorProtoInit } from './proto';

/** ONNX opset every emitted model imports (Reduce* take axes as an input from 18 on). */
export const OPSET_VERSION = 18;
const IR_VERSION = 8;

export type DType = 'float32' | 'int64' | 'bool';
export type Shape = readonly number[];

/** A tensor of the graph: static dtype and shape, known when it is built. */
export interface Value {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

export type Attrs = Readonly<Record<string, AttributeValue | undefined>>;

export interface NodeRecord {
  readonly op: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: Attrs;
}

export type ConstantData = Float32Array | BigInt64Array;

export interface InitializerRecord {
  readonly value: Value;
  readonly data: ConstantData;
}

/**
 * Ops that exist only in the builder: they carry meaning for autodiff and are lowered to standard
 * ONNX when serialised. GradReverse(x, lambda) is the identity forward, −λ·g backward.
 */
const LOWERINGS: Record<string, (n: NodeRecord) => { op: string; inputs: readonly Value[] }> = {
  GradReverse: (n) => ({ op: 'Identity', inputs: [n.inputs[0]] }),
};

const DATA_TYPES: Record<DType, TensorDataType> = {
  float32: TensorDataType.FLOAT,
  int64: TensorDataType.INT64,
  bool: TensorDataType.BOOL,
};

export const int = (value: number): AttributeValue => ({ kind: 'int', value });
export const ints = (value: readonly number[]): AttributeValue => ({ kind: 'ints', value });
export const float = (value: number): AttributeValue => ({ kind: 'float', value });

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export interface SerializeOptions {
  /** Graph inputs to bake in as initializers (the inference model's trained weights). */
  bake?: ReadonlyMap<string, Float32Array>;
  docString?: string;
  /**
   * Symbolic dims for graph inputs/outputs, by name: a string entry becomes a dim_param (e.g.
   * 'batch_size'), a number must equal the builder's static dim. The graph is still built with the
   * static (nominal) shapes, so its nodes must not encode the dims made symbolic here.
   */
  dynamicDims?: Readonly<Record<string, readonly (string | number)[]>>;
}

/** Records a graph with static shapes; emits deterministic ModelProto bytes. */
export class GraphBuilder {
  readonly inputs: Value[] = [];
  readonly nodes: NodeRecord[] = [];
  readonly outputs: Value[] = [];
  private readonly initializers = new Map<string, InitializerRecord>();
  private readonly constantsByKey = new Map<string, Value>();
  private readonly producers = new Map<string, NodeRecord>();
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`graph ${this.name}: tensor name '${name}' is used twice`);
    this.names.add(name);
    return name;
  }

  private fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.names.has(name));
    return this.claim(name);
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    const v: Value = { name: this.claim(name), dtype, shape: [...shape] };
    this.inputs.push(v);
    return v;
  }

  /** A constant tensor, deduplicated by content so repeated scalars/axes share one initializer. */
  constant(data: ConstantData, shape: Shape): Value {
    if (data.length !== numel(shape)) throw new Error(`constant: ${data.length} values for shape ${formatShape(shape)}`);
    const dtype: DType = data instanceof Float32Array ? 'float32' : 'int64';
    const key = `${dtype}${formatShape(shape)}:${Array.from(data as ArrayLike<number | bigint>).join(',')}`;
    const existing = this.constantsByKey.get(key);
    if (existing) return existing;
    const value: Value = { name: this.fresh('const'), dtype, shape: [...shape] };
    this.initializers.set(value.name, { value, data });
    this.constantsByKey.set(key, value);
    return value;
  }

  scalar(x: number): Value {
    return this.constant(new Float32Array([x]), []);
  }

  int64s(values: readonly number[]): Value {
    return this.constant(BigInt64Array.from(values.map((v) => BigInt(v))), [values.length]);
  }

  constantData(v: Value): ConstantData | undefined {
    return this.initializers.get(v.name)?.data;
  }

  producer(v: Value): NodeRecord | undefined {
    return this.producers.get(v.name);
  }

  /** The one primitive every op wrapper uses: records a node and its outputs' static types. */
  node(op: string, inputs: readonly Value[], attrs: Attrs, outputs: readonly { dtype: DType; shape: Shape }[]): Value[] {
    const outs = outputs.map((o) => ({ name: this.fresh(op.toLowerCase()), dtype: o.dtype, shape: [...o.shape] }));
    const sortedAttrs: Record<string, AttributeValue> = {};
    for (const key of Object.keys(attrs).sort()) {
      const a = attrs[key];
      if (a !== undefined) sortedAttrs[key] = a;
    }
    const record: NodeRecord = { op, inputs: [...inputs], outputs: outs, attrs: sortedAttrs };
    this.nodes.push(record);
    for (const o of outs) this.producers.set(o.name, record);
    return outs;
  }

  /** Declares a graph output under a stable name (an Identity node carries the name). */
  output(v: Value, name: string): Value {
    const out: Value = { name: this.claim(name), dtype: v.dtype, shape: v.shape };
    const record: NodeRecord = { op: 'Identity', inputs: [v], outputs: [out], attrs: {} };
    this.nodes.push(record);
    this.producers.set(out.name, record);
    this.outputs.push(out);
    return out;
  }

  /** The nodes the outputs depend on, in order, and every tensor name they read or write. */
  liveNodes(): { nodes: NodeRecord[]; live: Set<string> } {
    const live = new Set<string>(this.outputs.map((o) => o.name));
    const nodes: NodeRecord[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i];
      if (!n.outputs.some((o) => live.has(o.name))) continue;
      const lowered = LOWERINGS[n.op]?.(n) ?? n;
      for (const input of lowered.inputs) live.add(input.name);
      nodes.push(n);
    }
    return { nodes: nodes.reverse(), live };
  }

  /** Serialises the nodes the outputs depend on (dead gradient or metric nodes are dropped). */
  serialize(options: SerializeOptions = {}): Uint8Array {
    const { nodes: keep, live } = this.liveNodes();

    const bake = options.bake ?? new Map<string, Float32Array>();
    for (const name of bake.keys()) {
      if (!this.inputs.some((i) => i.name === name)) throw new Error(`serialize: no graph input '${name}' to bake`);
    }
    const nodes: NodeProtoInit[] = keep.map((n, index) => {
      const lowered = LOWERINGS[n.op]?.(n) ?? n;
      return {
        opType: lowered.op,
        name: `n${index}_${n.op}`,
        inputs: lowered.inputs.map((i) => i.name),
        outputs: n.outputs.map((o) => o.name),
        attributes: Object.entries(n.attrs).filter((e): e is [string, AttributeValue] => e[1] !== undefined),
      };
    });
    const initializers: TensorProtoInit[] = [];
    for (const { value, data } of this.initializers.values()) {
      if (live.has(value.name)) initializers.push(tensorProto(value, data));
    }
    for (const input of this.inputs) {
      const data = bake.get(input.name);
      if (!data) continue;
      if (data.length !== numel(input.shape)) {
        throw new Error(`serialize: '${input.name}' has ${data.length} values, shape ${formatShape(input.shape)} needs ${numel(input.shape)}`);
      }
      initializers.push(tensorProto(input, data));
    }
    const dynamic = options.dynamicDims ?? {};
    const declared = [...this.inputs, ...this.outputs];
    for (const [name, dims] of Object.entries(dynamic)) {
      const v = declared.find((d) => d.name === name);
      if (!v) throw new Error(`serialize: dynamicDims names '${name}', which is no graph input or output`);
      if (dims.length !== v.shape.length || dims.some((d, i) => typeof d === 'number' && d !== v.shape[i])) {
        throw new Error(`serialize: dynamicDims [${dims.join(',')}] for '${name}' do not fit its shape ${formatShape(v.shape)}`);
      }
    }
    const dimsOf = (v: Value) => dynamic[v.name] ?? v.shape;
    return encodeModel({
      irVersion: IR_VERSION,
      opsetVersion: OPSET_VERSION,
      producer: 'edgetrain',
      graphName: this.name,
      docString: options.docString ?? '',
      nodes,
      initializers,
      inputs: this.inputs
        .filter((i) => !bake.has(i.name) && live.has(i.name))
        .map((i) => ({ name: i.name, dataType: DATA_TYPES[i.dtype], dims: dimsOf(i) })),
      outputs: this.outputs.map((o) => ({ name: o.name, dataType: DATA_TYPES[o.dtype], dims: dimsOf(o) })),
    });
  }
}

function tensorProto(value: Value, data: ConstantData): TensorProtoInit {
  return {
    name: value.name,
    dataType: DATA_TYPES[value.dtype],
    dims: value.shape,
    raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(),
  };
}
