// One or more named cases per gradient rule, each a tiny graph around the op under test.
import { type GraphBuilder, type Shape, type Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import type { Sampler } from './gradcheck';
import type { AutodiffOptions } from './rule';

export interface CaseInput {
  readonly shape: Shape;
  readonly dtype?: 'float32' | 'int64';
  readonly sample?: Sampler;
  /** Differentiate and check this input (default: float inputs). */
  readonly check?: boolean;
}

export interface RuleCase {
  /** "<Op> <what>", e.g. "Add T[2,3] T[3]". */
  readonly name: string;
  /** The op type whose rule the case exercises (for per-rule reporting). */
  readonly rule: string;
  readonly inputs: readonly CaseInput[];
  readonly build: (b: GraphBuilder, xs: readonly Value[]) => Value;
  /** Analytic gradient / true derivative (−λ for gradient reversal). */
  readonly scale?: number;
  readonly options?: AutodiffOptions;
}

const f = (...shape: number[]): CaseInput => ({ shape });
const pos = (...shape: number[]): CaseInput => ({ shape, sample: 'positive' });
const away = (...shape: number[]): CaseInput => ({ shape, sample: 'awayFromZero' });

const binary = (opName: string, fn: (b: GraphBuilder, x: Value, y: Value) => Value, a: CaseInput, c: CaseInput): RuleCase => ({
  name: `${opName} T[${a.shape}] T[${c.shape}]`,
  rule: opName,
  inputs: [a, c],
  build: (b, [x, y]) => fn(b, x, y),
});

const convCase = (name: string, x: Shape, w: Shape, o: op.ConvOptions, bias: boolean, options: AutodiffOptions): RuleCase => ({
  name: `Conv ${name} (dW ${options.convWeightGrad}, dX ${options.convInputGrad})`,
  rule: 'Conv',
  inputs: bias ? [f(...x), f(...w), f(w[0])] : [f(...x), f(...w)],
  build: (b, [xv, wv, bv]) => op.conv(b, xv, wv, bv ?? null, o),
  options,
});

const CONV_FORMULATIONS: readonly AutodiffOptions[] = [
  { convWeightGrad: 'conv', convInputGrad: 'convTranspose' },
  { convWeightGrad: 'im2col', convInputGrad: 'conv' },
];

export const RULE_CASES: readonly RuleCase[] = [
  binary('Add', op.add, f(2, 3), f(3)),
  binary('Add', op.add, f(2, 1, 4), f(3, 1)),
  binary('Add', op.add, f(), f(2, 3)),
  binary('Sub', op.sub, f(2, 3), f(2, 1)),
  binary('Mul', op.mul, f(2, 3, 4), f(3, 1)),
  binary('Div', op.div, f(2, 3), pos(2, 3)),
  binary('Div', op.div, f(4, 3), pos(1)),
  { name: 'Neg T[5]', rule: 'Neg', inputs: [f(5)], build: (b, [x]) => op.neg(b, x) },
  { name: 'Identity T[2,2]', rule: 'Identity', inputs: [f(2, 2)], build: (b, [x]) => op.identity(b, x) },
  { name: 'Relu T[3,4]', rule: 'Relu', inputs: [away(3, 4)], build: (b, [x]) => op.relu(b, x) },
  {
    name: 'Where T[3,4] with a fixed mask',
    rule: 'Where',
    inputs: [f(3, 4), f(3, 4), { shape: [3, 4], check: false }],
    build: (b, [x, y, m]) => op.where(b, op.greater(b, m, b.scalar(0)), x, y),
  },
  { name: 'Exp T[3,2]', rule: 'Exp', inputs: [f(3, 2)], build: (b, [x]) => op.exp(b, x) },
  { name: 'Sqrt T[3,2]', rule: 'Sqrt', inputs: [pos(3, 2)], build: (b, [x]) => op.sqrt(b, x) },
  { name: 'Pow T[3,2]^2', rule: 'Pow', inputs: [f(3, 2)], build: (b, [x]) => op.pow(b, x, b.scalar(2)) },
  { name: 'Pow T[3,2]^-0.5', rule: 'Pow', inputs: [pos(3, 2)], build: (b, [x]) => op.pow(b, x, b.scalar(-0.5)) },
  {
    name: 'GradReverse T[2,3] λ=0.7',
    rule: 'GradReverse',
    inputs: [f(2, 3), { shape: [], sample: { constant: 0.7 }, check: false }],
    build: (b, [x, l]) => op.gradReverse(b, x, l),
    scale: -0.7,
  },
  { name: 'Reshape T[2,3,4]→[6,4]', rule: 'Reshape', inputs: [f(2, 3, 4)], build: (b, [x]) => op.reshape(b, x, [6, 4]) },
  { name: 'Flatten T[2,3,2,2] axis 1', rule: 'Flatten', inputs: [f(2, 3, 2, 2)], build: (b, [x]) => op.flatten(b, x, 1) },
  { name: 'Transpose T[2,3,4] perm 2,0,1', rule: 'Transpose', inputs: [f(2, 3, 4)], build: (b, [x]) => op.transpose(b, x, [2, 0, 1]) },
  {
    name: 'Concat T[2,1] T[2,3] T[2,2] axis 1',
    rule: 'Concat',
    inputs: [f(2, 1), f(2, 3), f(2, 2)],
    build: (b, xs) => op.concat(b, xs, 1),
  },
  {
    name: 'Split T[5,2] into 2+3, second part unused',
    rule: 'Split',
    inputs: [f(5, 2)],
    build: (b, [x]) => op.exp(b, op.split(b, x, [2, 3], 0)[0]),
  },
  { name: 'Expand T[3,1]→[2,3,4]', rule: 'Expand', inputs: [f(3, 1)], build: (b, [x]) => op.expand(b, x, [2, 3, 4]) },
  { name: 'ReduceSum T[2,3,4] axes 1 keepdims', rule: 'ReduceSum', inputs: [f(2, 3, 4)], build: (b, [x]) => op.reduceSum(b, x, [1], true) },
  { name: 'ReduceSum T[2,3,4] axes 0,2', rule: 'ReduceSum', inputs: [f(2, 3, 4)], build: (b, [x]) => op.reduceSum(b, x, [0, 2], false) },
  { name: 'ReduceMean T[2,3,4] axes -1', rule: 'ReduceMean', inputs: [f(2, 3, 4)], build: (b, [x]) => op.reduceMean(b, x, [-1], false) },
  { name: 'Softmax T[3,5] axis -1', rule: 'Softmax', inputs: [f(3, 5)], build: (b, [x]) => op.softmax(b, x, -1) },
  { name: 'Softmax T[2,4,3] axis 1', rule: 'Softmax', inputs: [f(2, 4, 3)], build: (b, [x]) => op.softmax(b, x, 1) },
  { name: 'LogSoftmax T[3,5]', rule: 'LogSoftmax', inputs: [f(3, 5)], build: (b, [x]) => op.logSoftmax(b, x, -1) },
  ...CONV_FORMULATIONS.flatMap((options) => [
    convCase('k3 p1 s1 +bias', [2, 3, 6, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, true, options),
    convCase('k3 p1 s2', [2, 3, 7, 7], [4, 3, 3, 3], { pads: [1, 1, 1, 1], strides: [2, 2] }, false, options),
    convCase('k2 p0 s2 even', [2, 2, 6, 6], [3, 2, 2, 2], { strides: [2, 2] }, true, options),
    convCase('k1 p0 s1', [2, 5, 3, 3], [4, 5, 1, 1], {}, false, options),
    convCase('k3 p0 s1 asymmetric input', [1, 2, 5, 4], [3, 2, 3, 3], {}, false, options),
  ]),
  ...[false, true].flatMap((transA) =>
    [false, true].map(
      (transB): RuleCase => ({
        name: `Gemm transA=${+transA} transB=${+transB} +bias[4]`,
        rule: 'Gemm',
        inputs: [f(...(transA ? [3, 2] : [2, 3])), f(...(transB ? [4, 3] : [3, 4])), f(4)],
        build: (b, [a, w, c]) => op.gemm(b, a, w, c, { transA, transB }),
      }),
    ),
  ),
  binary('MatMul', op.matmul, f(2, 3), f(3, 4)),
  binary('MatMul', op.matmul, f(2, 2, 3), f(2, 3, 4)),
  binary('MatMul', op.matmul, f(2, 3, 2, 5), f(5, 3)),
  {
    name: 'MaxPool k2 s2 T[2,3,4,4]',
    rule: 'MaxPool',
    inputs: [f(2, 3, 4, 4)],
    build: (b, [x]) => op.maxPool(b, x, { kernel: [2, 2] })[0],
  },
  {
    name: 'MaxPool k3 s2 p1 overlapping T[1,2,5,5]',
    rule: 'MaxPool',
    inputs: [f(1, 2, 5, 5)],
    build: (b, [x]) => op.maxPool(b, x, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })[0],
  },
  { name: 'AveragePool k2 s2 T[2,3,4,4]', rule: 'AveragePool', inputs: [f(2, 3, 4, 4)], build: (b, [x]) => op.averagePool(b, x, { kernel: [2, 2] }) },
  { name: 'GlobalAveragePool T[2,3,3,2]', rule: 'GlobalAveragePool', inputs: [f(2, 3, 3, 2)], build: (b, [x]) => op.globalAveragePool(b, x) },
  {
    name: 'BatchNormalization with batch statistics T[4,3,2,2]',
    rule: 'BatchNormalization',
    inputs: [f(4, 3, 2, 2), pos(3), f(3)],
    build: (b, [x, gamma, beta]) => {
      const mean = op.reduceMean(b, x, [0, 2, 3], true);
      const centered = op.sub(b, x, mean);
      const variance = op.reduceMean(b, op.mul(b, centered, centered), [0, 2, 3], false);
      return op.batchNormalization(b, x, gamma, beta, op.reshape(b, mean, [3]), variance, 1e-5);
    },
  },
];
