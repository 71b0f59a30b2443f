// Typed wrappers over GraphBuilder.node: one function per ONNX op, each computing its output shape.
import { float, formatShape, int, ints, numel, type DType, type GraphBuilder, type Shape, type Value } from './graph';

function fail(op: string, message: string): never {
  throw new Error(`${op}: ${message}`);
}

const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

/** Numpy-style broadcast of two shapes. */
export function broadcastShapes(a: Shape, b: Shape, op = 'broadcast'): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) fail(op, `shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

function elementwise(b: GraphBuilder, op: string, x: Value, y: Value, dtype: DType = x.dtype): Value {
  return b.node(op, [x, y], {}, [{ dtype, shape: broadcastShapes(x.shape, y.shape, op) }])[0];
}

function unary(b: GraphBuilder, op: string, x: Value): Value {
  return b.node(op, [x], {}, [{ dtype: x.dtype, shape: x.shape }])[0];
}

export const add = (b: GraphBuilder, x: Value, y: Value) => elementwise(b, 'Add', x, y);
export const sub = (b: GraphBuilder, x: Value, y: Value) => elementwise(b, 'Sub', x, y);
export const mul = (b: GraphBuilder, x: Value, y: Value) => elementwise(b, 'Mul', x, y);
export const div = (b: GraphBuilder, x: Value, y: Value) => elementwise(b, 'Div', x, y);
export const pow = (b: GraphBuilder, x: Value, y: Value) => elementwise(b, 'Pow', x, y);
export const greater = (b: GraphBuilder, x: Value, y: Value) => elementwise(b, 'Greater', x, y, 'bool');
export const equal = (b: GraphBuilder, x: Value, y: Value) => elementwise(b, 'Equal', x, y, 'bool');
export const relu = (b: GraphBuilder, x: Value) => unary(b, 'Relu', x);
export const sqrt = (b: GraphBuilder, x: Value) => unary(b, 'Sqrt', x);
export const exp = (b: GraphBuilder, x: Value) => unary(b, 'Exp', x);
export const neg = (b: GraphBuilder, x: Value) => unary(b, 'Neg', x);
export const identity = (b: GraphBuilder, x: Value) => unary(b, 'Identity', x);
export const scale = (b: GraphBuilder, x: Value, factor: number) => mul(b, x, b.scalar(factor));

export function where(b: GraphBuilder, cond: Value, x: Value, y: Value): Value {
  const shape = broadcastShapes(cond.shape, broadcastShapes(x.shape, y.shape, 'Where'), 'Where');
  return b.node('Where', [cond, x, y], {}, [{ dtype: x.dtype, shape }])[0];
}

export function cast(b: GraphBuilder, x: Value, to: DType): Value {
  const code = { float32: 1, int64: 7, bool: 9 }[to];
  return b.node('Cast', [x], { to: int(code) }, [{ dtype: to, shape: x.shape }])[0];
}

export interface ConvOptions {
  pads?: readonly [number, number, number, number];
  strides?: readonly [number, number];
  dilations?: readonly [number, number];
  group?: number;
}

const convOut = (size: number, k: number, padBegin: number, padEnd: number, stride: number, dilation = 1) =>
  Math.floor((size + padBegin + padEnd - dilation * (k - 1) - 1) / stride) + 1;

export function conv(b: GraphBuilder, x: Value, w: Value, bias: Value | null, o: ConvOptions = {}): Value {
  const pads = o.pads ?? [0, 0, 0, 0];
  const strides = o.strides ?? [1, 1];
  const group = o.group ?? 1;
  const [n, c, h, wd] = x.shape;
  const [m, cg, kh, kw] = w.shape;
  if (x.shape.length !== 4 || w.shape.length !== 4) fail('Conv', `needs 4-d input and weight, got ${formatShape(x.shape)} and ${formatShape(w.shape)}`);
  if (cg * group !== c) fail('Conv', `weight ${formatShape(w.shape)} does not match ${c} input channels (group ${group})`);
  const dil = o.dilations ?? [1, 1];
  const shape = [n, m, convOut(h, kh, pads[0], pads[2], strides[0], dil[0]), convOut(wd, kw, pads[1], pads[3], strides[1], dil[1])];
  const attrs = {
    kernel_shape: ints([kh, kw]),
    pads: ints(pads),
    strides: ints(strides),
    dilations: dil[0] !== 1 || dil[1] !== 1 ? ints(dil) : undefined,
    group: group === 1 ? undefined : int(group),
  };
  return b.node('Conv', bias ? [x, w, bias] : [x, w], attrs, [{ dtype: 'float32', shape }])[0];
}

export interface ConvTransposeOptions extends ConvOptions {
  outputPadding?: readonly [number, number];
}

export function convTranspose(b: GraphBuilder, x: Value, w: Value, o: ConvTransposeOptions = {}): Value {
  const pads = o.pads ?? [0, 0, 0, 0];
  const strides = o.strides ?? [1, 1];
  const outPad = o.outputPadding ?? [0, 0];
  const group = o.group ?? 1;
  const [n, , h, wd] = x.shape;
  const [, mg, kh, kw] = w.shape;
  const shape = [
    n,
    mg * group,
    strides[0] * (h - 1) + outPad[0] + kh - pads[0] - pads[2],
    strides[1] * (wd - 1) + outPad[1] + kw - pads[1] - pads[3],
  ];
  const attrs = {
    kernel_shape: ints([kh, kw]),
    pads: ints(pads),
    strides: ints(strides),
    output_padding: outPad[0] || outPad[1] ? ints(outPad) : undefined,
    group: group === 1 ? undefined : int(group),
  };
  return b.node('ConvTranspose', [x, w], attrs, [{ dtype: 'float32', shape }])[0];
}

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
}

export function gemm(b: GraphBuilder, a: Value, w: Value, c: Value | null, o: GemmOptions = {}): Value {
  if (a.shape.length !== 2 || w.shape.length !== 2) fail('Gemm', `needs 2-d operands, got ${formatShape(a.shape)} and ${formatShape(w.shape)}`);
  const [m, ka] = o.transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [kb, n] = o.transB ? [w.shape[1], w.shape[0]] : w.shape;
  if (ka !== kb) fail('Gemm', `inner sizes differ: ${formatShape(a.shape)} × ${formatShape(w.shape)} (transA ${!!o.transA}, transB ${!!o.transB})`);
  const attrs = { transA: o.transA ? int(1) : undefined, transB: o.transB ? int(1) : undefined };
  return b.node('Gemm', c ? [a, w, c] : [a, w], attrs, [{ dtype: 'float32', shape: [m, n] }])[0];
}

export function matmul(b: GraphBuilder, x: Value, y: Value): Value {
  if (x.shape.length < 2 || y.shape.length < 2) fail('MatMul', `operands must be at least 2-d, got ${formatShape(x.shape)} and ${formatShape(y.shape)}`);
  const [m, k] = x.shape.slice(-2);
  const [k2, n] = y.shape.slice(-2);
  if (k !== k2) fail('MatMul', `inner sizes differ: ${formatShape(x.shape)} × ${formatShape(y.shape)}`);
  const batch = broadcastShapes(x.shape.slice(0, -2), y.shape.slice(0, -2), 'MatMul');
  return b.node('MatMul', [x, y], {}, [{ dtype: 'float32', shape: [...batch, m, n] }])[0];
}

export interface PoolOptions {
  kernel: readonly [number, number];
  strides?: readonly [number, number];
  pads?: readonly [number, number, number, number];
}

function poolShape(op: string, x: Value, o: PoolOptions): number[] {
  if (x.shape.length !== 4) fail(op, `needs a 4-d input, got ${formatShape(x.shape)}`);
  const strides = o.strides ?? o.kernel;
  const pads = o.pads ?? [0, 0, 0, 0];
  const [n, c, h, w] = x.shape;
  return [n, c, convOut(h, o.kernel[0], pads[0], pads[2], strides[0]), convOut(w, o.kernel[1], pads[1], pads[3], strides[1])];
}

const poolAttrs = (o: PoolOptions) => ({
  kernel_shape: ints(o.kernel),
  strides: ints(o.strides ?? o.kernel),
  pads: ints(o.pads ?? [0, 0, 0, 0]),
});

/** MaxPool with its Indices output (flat NCHW positions), which the backward pass scatters into. */
export function maxPool(b: GraphBuilder, x: Value, o: PoolOptions): [Value, Value] {
  const shape = poolShape('MaxPool', x, o);
  const [y, indices] = b.node('MaxPool', [x], poolAttrs(o), [
    { dtype: 'float32', shape },
    { dtype: 'int64', shape },
  ]);
  return [y, indices];
}

export function averagePool(b: GraphBuilder, x: Value, o: PoolOptions): Value {
  const attrs = { ...poolAttrs(o), count_include_pad: o.pads ? int(1) : undefined };
  return b.node('AveragePool', [x], attrs, [{ dtype: 'float32', shape: poolShape('AveragePool', x, o) }])[0];
}

export function globalAveragePool(b: GraphBuilder, x: Value): Value {
  if (x.shape.length !== 4) fail('GlobalAveragePool', `needs a 4-d input, got ${formatShape(x.shape)}`);
  return b.node('GlobalAveragePool', [x], {}, [{ dtype: 'float32', shape: [x.shape[0], x.shape[1], 1, 1] }])[0];
}

export function reshape(b: GraphBuilder, x: Value, shape: Shape): Value {
  if (numel(shape) !== numel(x.shape)) fail('Reshape', `cannot reshape ${formatShape(x.shape)} to ${formatShape(shape)}`);
  return b.node('Reshape', [x, b.int64s(shape)], {}, [{ dtype: x.dtype, shape }])[0];
}

export function flatten(b: GraphBuilder, x: Value, axis = 1): Value {
  const shape = [numel(x.shape.slice(0, axis)), numel(x.shape.slice(axis))];
  return b.node('Flatten', [x], { axis: int(axis) }, [{ dtype: x.dtype, shape }])[0];
}

export function transpose(b: GraphBuilder, x: Value, perm: readonly number[]): Value {
  if (perm.length !== x.shape.length) fail('Transpose', `perm [${perm}] does not match rank of ${formatShape(x.shape)}`);
  return b.node('Transpose', [x], { perm: ints(perm) }, [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }])[0];
}

export function concat(b: GraphBuilder, xs: readonly Value[], axis: number): Value {
  const a = normAxis(axis, xs[0].shape.length);
  const shape = [...xs[0].shape];
  shape[a] = 0;
  for (const x of xs) {
    if (x.shape.length !== shape.length || x.shape.some((d, i) => i !== a && d !== shape[i])) {
      fail('Concat', `shapes ${xs.map((v) => formatShape(v.shape)).join(', ')} differ outside axis ${axis}`);
    }
    shape[a] += x.shape[a];
  }
  return b.node('Concat', xs, { axis: int(a) }, [{ dtype: xs[0].dtype, shape }])[0];
}

export function split(b: GraphBuilder, x: Value, sizes: readonly number[], axis: number): Value[] {
  const a = normAxis(axis, x.shape.length);
  if (sizes.reduce((s, v) => s + v, 0) !== x.shape[a]) fail('Split', `sizes [${sizes}] do not sum to ${x.shape[a]}`);
  const outputs = sizes.map((size) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? size : d)) }));
  return b.node('Split', [x, b.int64s(sizes)], { axis: int(a) }, outputs);
}

/** Slice with non-negative starts/ends and positive steps. */
export function slice(
  b: GraphBuilder,
  x: Value,
  starts: readonly number[],
  ends: readonly number[],
  axes: readonly number[],
  steps?: readonly number[],
): Value {
  const shape = [...x.shape];
  axes.forEach((axis, i) => {
    const a = normAxis(axis, x.shape.length);
    const step = steps?.[i] ?? 1;
    shape[a] = Math.max(0, Math.ceil((Math.min(ends[i], x.shape[a]) - starts[i]) / step));
  });
  const inputs = [x, b.int64s(starts), b.int64s(ends), b.int64s(axes)];
  if (steps) inputs.push(b.int64s(steps));
  return b.node('Slice', inputs, {}, [{ dtype: x.dtype, shape }])[0];
}

/** Zero padding; `pads` is ONNX's [begin_0 … begin_n, end_0 … end_n]. */
export function pad(b: GraphBuilder, x: Value, pads: readonly number[]): Value {
  const rank = x.shape.length;
  const shape = x.shape.map((d, i) => d + pads[i] + pads[i + rank]);
  return b.node('Pad', [x, b.int64s(pads)], {}, [{ dtype: x.dtype, shape }])[0];
}

export function softmax(b: GraphBuilder, x: Value, axis = -1): Value {
  return b.node('Softmax', [x], { axis: int(axis) }, [{ dtype: x.dtype, shape: x.shape }])[0];
}

export function logSoftmax(b: GraphBuilder, x: Value, axis = -1): Value {
  return b.node('LogSoftmax', [x], { axis: int(axis) }, [{ dtype: x.dtype, shape: x.shape }])[0];
}

function reduceShape(x: Value, axes: readonly number[], keepdims: boolean): number[] {
  const set = new Set(axes.map((a) => normAxis(a, x.shape.length)));
  const shape: number[] = [];
  x.shape.forEach((d, i) => {
    if (!set.has(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return shape;
}

function reduce(b: GraphBuilder, op: string, x: Value, axes: readonly number[], keepdims: boolean): Value {
  const shape = reduceShape(x, axes, keepdims);
  return b.node(op, [x, b.int64s(axes)], { keepdims: int(keepdims ? 1 : 0) }, [{ dtype: x.dtype, shape }])[0];
}

export const reduceSum = (b: GraphBuilder, x: Value, axes: readonly number[], keepdims = true) => reduce(b, 'ReduceSum', x, axes, keepdims);
export const reduceMean = (b: GraphBuilder, x: Value, axes: readonly number[], keepdims = true) => reduce(b, 'ReduceMean', x, axes, keepdims);

export function argMax(b: GraphBuilder, x: Value, axis: number): Value {
  const shape = reduceShape(x, [axis], false);
  return b.node('ArgMax', [x], { axis: int(axis), keepdims: int(0) }, [{ dtype: 'int64', shape }])[0];
}

export function expand(b: GraphBuilder, x: Value, shape: Shape): Value {
  const out = broadcastShapes(x.shape, shape, 'Expand');
  return b.node('Expand', [x, b.int64s(shape)], {}, [{ dtype: x.dtype, shape: out }])[0];
}

/** One-hot rows of `depth` for int64 labels, with off/on values (label smoothing sets them). */
export function oneHot(b: GraphBuilder, labels: Value, depth: number, off = 0, on = 1): Value {
  const values = b.constant(new Float32Array([off, on]), [2]);
  const depthValue = b.int64s([depth]);
  return b.node('OneHot', [labels, depthValue, values], { axis: int(-1) }, [{ dtype: 'float32', shape: [...labels.shape, depth] }])[0];
}

export function scatterAdd(b: GraphBuilder, data: Value, indices: Value, updates: Value, axis = 0): Value {
  const attrs = { axis: int(axis), reduction: { kind: 'string' as const, value: 'add' } };
  return b.node('ScatterElements', [data, indices, updates], attrs, [{ dtype: data.dtype, shape: data.shape }])[0];
}

/** BatchNormalization in inference form; training uses it with the batch's own mean and variance. */
export function batchNormalization(b: GraphBuilder, x: Value, scaleV: Value, bias: Value, mean: Value, variance: Value, epsilon: number): Value {
  return b.node('BatchNormalization', [x, scaleV, bias, mean, variance], { epsilon: float(epsilon) }, [{ dtype: 'float32', shape: x.shape }])[0];
}

/** Identity forward, −λ·g backward (Ganin & Lempitsky); lowered to Identity in the model. */
export function gradReverse(b: GraphBuilder, x: Value, lambda: Value): Value {
  return b.node('GradReverse', [x, lambda], {}, [{ dtype: x.dtype, shape: x.shape }])[0];
}

// Ops for shape-polymorphic graphs (the BERT encoder): their attributes and constant inputs never
// encode a dim, so a graph serialised with symbolic dims runs for any batch and sequence length.

export const erf = (b: GraphBuilder, x: Value) => unary(b, 'Erf', x);
export const tanh = (b: GraphBuilder, x: Value) => unary(b, 'Tanh', x);

/** Gather along `axis`: data.shape[:axis] + indices.shape + data.shape[axis+1:] (an embedding lookup at axis 0). */
export function gather(b: GraphBuilder, data: Value, indices: Value, axis = 0): Value {
  const a = normAxis(axis, data.shape.length);
  if (indices.dtype !== 'int64') fail('Gather', `indices must be int64, got ${indices.dtype}`);
  const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
  return b.node('Gather', [data, indices], { axis: int(a) }, [{ dtype: data.dtype, shape }])[0];
}

/** LayerNormalization (opset 17) over the trailing axes from `axis`; scale and bias have those dims. */
export function layerNormalization(b: GraphBuilder, x: Value, scaleV: Value, bias: Value, epsilon: number, axis = -1): Value {
  const a = normAxis(axis, x.shape.length);
  const normalized = x.shape.slice(a);
  if (!scaleV.shape.every((d, i) => d === normalized[normalized.length - scaleV.shape.length + i])) {
    fail('LayerNormalization', `scale ${formatShape(scaleV.shape)} does not fit ${formatShape(x.shape)} from axis ${a}`);
  }
  return b.node('LayerNormalization', [x, scaleV, bias], { axis: int(a), epsilon: float(epsilon) }, [{ dtype: x.dtype, shape: x.shape }])[0];
}

/** Inserts size-1 dims at `axes` (positions in the output). */
export function unsqueeze(b: GraphBuilder, x: Value, axes: readonly number[]): Value {
  const rank = x.shape.length + axes.length;
  const at = new Set(axes.map((a) => normAxis(a, rank)));
  const rest = [...x.shape];
  const shape = Array.from({ length: rank }, (_, i) => (at.has(i) ? 1 : (rest.shift() as number)));
  return b.node('Unsqueeze', [x, b.int64s(axes)], {}, [{ dtype: x.dtype, shape }])[0];
}

/**
 * Reshape by ONNX's relative spec: 0 copies the input's dim at that position, −1 takes what is left,
 * so the spec holds no batch or sequence length (e.g. [0, 0, heads, headDim] splits heads).
 */
export function reshapeRelative(b: GraphBuilder, x: Value, spec: readonly number[]): Value {
  const shape = spec.map((d, i) => (d === 0 ? x.shape[i] : d));
  const inferred = shape.indexOf(-1);
  if (inferred >= 0) shape[inferred] = numel(x.shape) / -numel(shape);
  if (shape.filter((d) => d === -1).length > 1 || !Number.isInteger(shape[inferred] ?? 0) || numel(shape) !== numel(x.shape)) {
    fail('Reshape', `cannot reshape ${formatShape(x.shape)} by [${spec}]`);
  }
  return b.node('Reshape', [x, b.int64s(spec)], {}, [{ dtype: x.dtype, shape }])[0];
}

/** The first `like.shape[likeAxis]` entries of `x` along `axis`, read from `like` at run time (Shape + Slice). */
export function sliceLike(b: GraphBuilder, x: Value, like: Value, axis: number, likeAxis: number): Value {
  const a = normAxis(axis, x.shape.length);
  const la = normAxis(likeAxis, like.shape.length);
  if (like.shape[la] > x.shape[a]) fail('Slice', `${formatShape(x.shape)} has fewer than ${like.shape[la]} entries on axis ${a}`);
  const end = b.node('Shape', [like], { start: int(la), end: int(la + 1) }, [{ dtype: 'int64', shape: [1] }])[0];
  const shape = x.shape.map((d, i) => (i === a ? like.shape[la] : d));
  return b.node('Slice', [x, b.int64s([0]), end, b.int64s([a])], {}, [{ dtype: x.dtype, shape }])[0];
}
