import { numel, type Shape } from '../onnx/graph';
import { mulberry32 } from '../data/shuffle';

export type Init =
  | { kind: 'uniform'; bound: number }
  | { kind: 'normal'; std: number }
  | { kind: 'constant'; value: number };

/** A named tensor of the model's flat parameter vector. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: Shape;
  readonly init: Init;
  /** Weight decay applies (weights); not for biases, norm scales and temperatures. */
  readonly decay: boolean;
}

/** Batch-norm running statistics: not trained, updated from the training graph's batch statistics. */
export interface BufferSpec {
  readonly name: string;
  readonly shape: Shape;
  readonly initial: number;
  /** Training-graph output holding this buffer's batch statistic. */
  readonly statOutput: string;
}

export interface TensorSlice {
  readonly name: string;
  readonly shape: Shape;
  readonly offset: number;
  readonly size: number;
}

/** Offsets of each tensor in one flat Float32Array (parameters, gradients, optimizer slots). */
export function flatLayout(specs: readonly { name: string; shape: Shape }[]): { slices: TensorSlice[]; size: number } {
  let offset = 0;
  const slices = specs.map((s) => {
    const size = numel(s.shape);
    const slice = { name: s.name, shape: s.shape, offset, size };
    offset += size;
    return slice;
  });
  return { slices, size: offset };
}

/** Seeded initial parameters: the same seed gives the same bytes on every runtime. */
export function initParameters(specs: readonly ParamSpec[], seed: number): Float32Array {
  const { slices, size } = flatLayout(specs);
  const out = new Float32Array(size);
  const rng = mulberry32(seed);
  specs.forEach((spec, i) => {
    const view = out.subarray(slices[i].offset, slices[i].offset + slices[i].size);
    const init = spec.init;
    for (let k = 0; k < view.length; k++) {
      if (init.kind === 'constant') view[k] = init.value;
      else if (init.kind === 'uniform') view[k] = (rng() * 2 - 1) * init.bound;
      else view[k] = gaussian(rng) * init.std;
    }
  });
  return out;
}

function gaussian(rng: () => number): number {
  const u = Math.max(rng(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

export function decayMask(specs: readonly ParamSpec[]): Uint8Array {
  const { slices, size } = flatLayout(specs);
  const mask = new Uint8Array(size);
  specs.forEach((s, i) => mask.fill(s.decay ? 1 : 0, slices[i].offset, slices[i].offset + slices[i].size));
  return mask;
}

export function initBuffers(specs: readonly BufferSpec[]): Float32Array {
  const { slices, size } = flatLayout(specs);
  const out = new Float32Array(size);
  specs.forEach((s, i) => out.fill(s.initial, slices[i].offset, slices[i].offset + slices[i].size));
  return out;
}
