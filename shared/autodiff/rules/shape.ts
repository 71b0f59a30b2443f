import * as op from '../../onnx/ops';
import type { GradRule } from '../rule';
import { intAttr, intsAttr } from '../rule';

export const reshapeGrad: GradRule = {
  op: 'Reshape',
  grad: ({ b, dy, inputs: [x] }) => [op.reshape(b, dy, x.shape), null],
};

export const flattenGrad: GradRule = {
  op: 'Flatten',
  grad: ({ b, dy, inputs: [x] }) => [op.reshape(b, dy, x.shape)],
};

export const transposeGrad: GradRule = {
  op: 'Transpose',
  grad: (ctx) => {
    const perm = intsAttr(ctx, 'perm', []);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [op.transpose(ctx.b, ctx.dy, inverse)];
  },
};

export const concatGrad: GradRule = {
  op: 'Concat',
  grad: (ctx) => {
    const axis = intAttr(ctx, 'axis', 0);
    return op.split(ctx.b, ctx.dy, ctx.inputs.map((x) => x.shape[axis]), axis);
  },
};

/** Outputs that did not reach the loss contribute zeros to the concatenated gradient. */
export const splitGrad: GradRule = {
  op: 'Split',
  grad: (ctx) => {
    const { b, outputs, dys } = ctx;
    const parts = outputs.map((o, i) => dys[i] ?? op.expand(b, b.scalar(0), o.shape));
    return [op.concat(b, parts, intAttr(ctx, 'axis', 0)), null];
  },
};

/** Expand is broadcasting: the engine's un-broadcast sums the gradient back. */
export const expandGrad: GradRule = { op: 'Expand', grad: ({ dy }) => [dy, null] };
