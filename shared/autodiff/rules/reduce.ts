import { numel, type Value } from '../../onnx/graph';
import * as op from '../../onnx/ops';
import type { GradContext, GradRule } from '../rule';
import { intAttr } from '../rule';

/** Broadcasts the reduced gradient back over the reduced axes. */
function spread(ctx: GradContext): Value {
  const { b, dy, inputs: [x] } = ctx;
  const axes = b.constantData(ctx.inputs[1]);
  if (!axes) throw new Error(`${ctx.node.op}: gradient needs constant axes`);
  const reduced = new Set(Array.from(axes as BigInt64Array, (a) => (Number(a) + x.shape.length) % x.shape.length));
  const keptShape = x.shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const g = intAttr(ctx, 'keepdims', 1) ? dy : op.reshape(b, dy, keptShape);
  return op.expand(b, g, x.shape);
}

export const reduceSumGrad: GradRule = { op: 'ReduceSum', grad: (ctx) => [spread(ctx), null] };

export const reduceMeanGrad: GradRule = {
  op: 'ReduceMean',
  grad: (ctx) => {
    const count = numel(ctx.inputs[0].shape) / numel(ctx.outputs[0].shape);
    return [op.scale(ctx.b, spread(ctx), 1 / count), null];
  },
};

export const softmaxGrad: GradRule = {
  op: 'Softmax',
  grad: (ctx) => {
    const { b, dy, outputs: [y] } = ctx;
    const axis = intAttr(ctx, 'axis', -1);
    const dot = op.reduceSum(b, op.mul(b, dy, y), [axis]);
    return [op.mul(b, y, op.sub(b, dy, dot))];
  },
};

export const logSoftmaxGrad: GradRule = {
  op: 'LogSoftmax',
  grad: (ctx) => {
    const { b, dy, outputs: [y] } = ctx;
    const axis = intAttr(ctx, 'axis', -1);
    return [op.sub(b, dy, op.mul(b, op.exp(b, y), op.reduceSum(b, dy, [axis])))];
  },
};
