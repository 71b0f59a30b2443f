import * as op from '../../onnx/ops';
import type { GradRule } from '../rule';

export const addGrad: GradRule = { op: 'Add', grad: ({ dy }) => [dy, dy] };

export const subGrad: GradRule = { op: 'Sub', grad: ({ b, dy }) => [dy, op.neg(b, dy)] };

export const mulGrad: GradRule = {
  op: 'Mul',
  grad: ({ b, dy, inputs: [x, y] }) => [op.mul(b, dy, y), op.mul(b, dy, x)],
};

/** d(x/y) = g/y, −g·(x/y)/y: reuses the forward output instead of squaring y. */
export const divGrad: GradRule = {
  op: 'Div',
  grad: ({ b, dy, inputs: [, y], outputs: [out] }) => [op.div(b, dy, y), op.neg(b, op.div(b, op.mul(b, dy, out), y))],
};

export const negGrad: GradRule = { op: 'Neg', grad: ({ b, dy }) => [op.neg(b, dy)] };

export const identityGrad: GradRule = { op: 'Identity', grad: ({ dy }) => [dy] };

export const reluGrad: GradRule = {
  op: 'Relu',
  grad: ({ b, dy, outputs: [y] }) => [op.where(b, op.greater(b, y, b.scalar(0)), dy, b.scalar(0))],
};

export const whereGrad: GradRule = {
  op: 'Where',
  grad: ({ b, dy, inputs: [cond] }) => [null, op.where(b, cond, dy, b.scalar(0)), op.where(b, cond, b.scalar(0), dy)],
};

export const expGrad: GradRule = { op: 'Exp', grad: ({ b, dy, outputs: [y] }) => [op.mul(b, dy, y)] };

export const sqrtGrad: GradRule = {
  op: 'Sqrt',
  grad: ({ b, dy, outputs: [y] }) => [op.div(b, dy, op.scale(b, y, 2))],
};

/** Pow with a constant scalar exponent (normalisation layers); the exponent gets no gradient. */
export const powGrad: GradRule = {
  op: 'Pow',
  grad: ({ b, dy, inputs: [x, p] }) => {
    const data = b.constantData(p);
    if (!data || data.length !== 1 || !(data instanceof Float32Array)) {
      throw new Error('Pow: gradient needs a constant scalar float exponent');
    }
    const e = data[0];
    return [op.mul(b, dy, op.scale(b, op.pow(b, x, b.scalar(e - 1)), e)), null];
  },
};

/** Identity forward; the backward pass multiplies by −λ (gradient reversal, DANN). */
export const gradReverseGrad: GradRule = {
  op: 'GradReverse',
  grad: ({ b, dy, inputs: [, lambda] }) => [op.neg(b, op.mul(b, dy, lambda)), null],
};
