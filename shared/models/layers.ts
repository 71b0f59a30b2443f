import { type GraphBuilder, type Shape, type Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import type { BufferSpec, Init, ParamSpec } from './params';

export type GraphMode = 'train' | 'eval';

/** Which images a pass sees: the labelled source, or the shifted (unlabelled in training) target. */
export type Domain = 'source' | 'target';

/** The target domain's buffers are named `target.<buffer>`; the source's keep their plain names. */
export const domainBufferPrefix = (domain: Domain) => (domain === 'target' ? 'target.' : '');

/** Builds a model's forward pass, declaring each parameter and buffer once, as a graph input. */
export class ModelBuilder {
  readonly params: ParamSpec[] = [];
  readonly buffers: BufferSpec[] = [];
  /** Batch statistics (training graphs) to output under each buffer's statOutput name. */
  readonly stats: { buffer: BufferSpec; value: Value }[] = [];
  private readonly values = new Map<string, Value>();
  /** Prefixed to buffer names: a domain's own batch-norm statistics ('' for the source domain). */
  private bufferPrefix = '';

  constructor(
    readonly b: GraphBuilder,
    readonly mode: GraphMode,
  ) {}

  /**
   * Builds `body` with buffers of their own, named `<domain>.<buffer>`: the same parameters, but
   * batch-norm statistics per domain, so one domain's images never move another's statistics.
   */
  inDomain<T>(domain: Domain, body: () => T): T {
    const outer = this.bufferPrefix;
    this.bufferPrefix = domainBufferPrefix(domain);
    try {
      return body();
    } finally {
      this.bufferPrefix = outer;
    }
  }

  param(name: string, shape: Shape, init: Init, decay: boolean): Value {
    const existing = this.values.get(name);
    if (existing) return existing;
    const v = this.b.input(name, 'float32', shape);
    this.params.push({ name, shape, init, decay });
    this.values.set(name, v);
    return v;
  }

  /** The graph inputs of the parameters, in `params` order. */
  paramValues(): Value[] {
    return this.params.map((p) => this.values.get(p.name)!);
  }

  buffer(local: string, shape: Shape, initial: number): { value: Value; spec: BufferSpec } {
    const name = this.bufferPrefix + local;
    const spec: BufferSpec = { name, shape, initial, statOutput: `stat.${name}` };
    this.buffers.push(spec);
    return { value: this.b.input(name, 'float32', shape), spec };
  }
}

/** PyTorch's default init for Linear/Conv weights and biases: U(±1/√fan_in). */
const torchDefault = (fanIn: number): Init => ({ kind: 'uniform', bound: 1 / Math.sqrt(fanIn) });
/** He (Kaiming) normal for layers followed by ReLU. */
const heNormal = (fanIn: number): Init => ({ kind: 'normal', std: Math.sqrt(2 / fanIn) });

export type WeightInit = 'torch' | 'he';
const weightInit = (kind: WeightInit, fanIn: number) => (kind === 'he' ? heNormal(fanIn) : torchDefault(fanIn));

/** y = x·Wᵀ + b with W stored [out, in] as PyTorch does. */
export function linear(m: ModelBuilder, name: string, x: Value, out: number, opts: { bias?: boolean; init?: WeightInit } = {}): Value {
  const fanIn = x.shape[1];
  const w = m.param(`${name}.weight`, [out, fanIn], weightInit(opts.init ?? 'torch', fanIn), true);
  const bias = opts.bias === false ? null : m.param(`${name}.bias`, [out], torchDefault(fanIn), false);
  return op.gemm(m.b, x, w, bias, { transB: true });
}

export function conv2d(
  m: ModelBuilder,
  name: string,
  x: Value,
  out: number,
  kernel: number,
  opts: { pad?: number; stride?: number; bias?: boolean; init?: WeightInit } = {},
): Value {
  const inC = x.shape[1];
  const fanIn = inC * kernel * kernel;
  const p = opts.pad ?? 0;
  const s = opts.stride ?? 1;
  const w = m.param(`${name}.weight`, [out, inC, kernel, kernel], weightInit(opts.init ?? 'torch', fanIn), true);
  const bias = opts.bias === false ? null : m.param(`${name}.bias`, [out], torchDefault(fanIn), false);
  return op.conv(m.b, x, w, bias, { pads: [p, p, p, p], strides: [s, s] });
}

/** The name ending of batch norm's running-variance buffers: their batch statistics are variances (never negative). */
export const VARIANCE_SUFFIX = '.running_var';

/**
 * Batch normalisation over N,H,W. Training graphs normalise with the batch's own statistics (and
 * output them so the trainer can keep running averages); eval graphs read the
 * running statistics as inputs.
 */
export function batchNorm(m: ModelBuilder, name: string, x: Value, eps = 1e-5): Value {
  const c = x.shape[1];
  const gamma = m.param(`${name}.weight`, [c], { kind: 'constant', value: 1 }, false);
  const beta = m.param(`${name}.bias`, [c], { kind: 'constant', value: 0 }, false);
  const runningMean = m.buffer(`${name}.running_mean`, [c], 0);
  const runningVar = m.buffer(`${name}${VARIANCE_SUFFIX}`, [c], 1);
  if (m.mode === 'eval') return op.batchNormalization(m.b, x, gamma, beta, runningMean.value, runningVar.value, eps);
  const axes = [0, 2, 3];
  const meanKeep = op.reduceMean(m.b, x, axes, true);
  const centered = op.sub(m.b, x, meanKeep);
  const varKeep = op.reduceMean(m.b, op.mul(m.b, centered, centered), axes, true);
  const mean = op.reshape(m.b, meanKeep, [c]);
  const variance = op.reshape(m.b, varKeep, [c]);
  m.stats.push({ buffer: runningMean.spec, value: mean }, { buffer: runningVar.spec, value: variance });
  return op.batchNormalization(m.b, x, gamma, beta, mean, variance, eps);
}

/** Rows scaled to unit L2 norm along `axis` (ε keeps zero rows finite). */
export function l2Normalize(b: GraphBuilder, x: Value, axis = -1): Value {
  const norm = op.sqrt(b, op.add(b, op.reduceSum(b, op.mul(b, x, x), [axis], true), b.scalar(1e-12)));
  return op.div(b, x, norm);
}
