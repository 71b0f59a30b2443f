import type { Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import { batchNorm, conv2d, linear, type ModelBuilder } from './layers';

/** An image branch: [B,3,32,32] → features [B,D]. */
export interface Backbone {
  readonly name: string;
  readonly description: string;
  readonly featureDim: number;
  readonly build: (m: ModelBuilder, image: Value) => Value;
  /**
   * Graph batches that keep one gradient-worker isolate inside a Worker's 128 MB (measured:
   * `npm run bench -- worker-memory`): examples per run of the training graph and of the eval graph,
   * and the ORT wasm heap each example of them costs (MiB, measured at several batches; the heap grows
   * in steps, so these are slopes through the steps, rounded up).
   */
  readonly workers: { readonly graphBatch: number; readonly evalGraphBatch: number; readonly wasmMiBPerExample: { readonly train: number; readonly eval: number } };
}

/**
 * The seed's image branch at its exact sizes. MaxPool runs before ReLU: relu(maxpool(x)) equals
 * maxpool(relu(x)) and the ReLU then touches a quarter of the values.
 */
export const seedCnn: Backbone = {
  name: 'seed-cnn',
  description: 'conv 3→32 k3 p1, ReLU, maxpool 2, conv 32→64 k3 p1, ReLU, maxpool 2, FC 4096→128, ReLU',
  featureDim: 128,
  workers: { graphBatch: 32, evalGraphBatch: 50, wasmMiBPerExample: { train: 0.65, eval: 0.23 } },
  build: (m, image) => {
    const b = m.b;
    let x = conv2d(m, 'conv1', image, 32, 3, { pad: 1 });
    x = op.relu(b, op.maxPool(b, x, { kernel: [2, 2] })[0]);
    x = conv2d(m, 'conv2', x, 64, 3, { pad: 1 });
    x = op.relu(b, op.maxPool(b, x, { kernel: [2, 2] })[0]);
    return op.relu(b, linear(m, 'fc1', op.flatten(b, x, 1), 128));
  },
};

function convBnRelu(m: ModelBuilder, name: string, x: Value, out: number): Value {
  const y = conv2d(m, name, x, out, 3, { pad: 1, bias: false, init: 'he' });
  return op.relu(m.b, batchNorm(m, `${name}.bn`, y));
}

/** Conv-BN-ReLU, then max-pool 2 (pooling first would be cheaper but changes BN's statistics). */
function downBlock(m: ModelBuilder, name: string, x: Value, out: number): Value {
  return op.maxPool(m.b, convBnRelu(m, name, x, out), { kernel: [2, 2] })[0];
}

function residual(m: ModelBuilder, name: string, x: Value): Value {
  const c = x.shape[1];
  return op.add(m.b, x, convBnRelu(m, `${name}.b`, convBnRelu(m, `${name}.a`, x, c), c));
}

/**
 * The stronger preset: a ResNet-9-style net (Page's DAWNBench layout) at a width sized for CPUs —
 * prep 24, layer1 48 + residual, layer2 96, layer3 192 + residual, global max-pool.
 */
export const resCnn: Backbone = {
  name: 'res-cnn',
  description: 'ResNet-9 layout with BN at widths 24/48/96/192, global max-pool (feature 192)',
  featureDim: 192,
  workers: { graphBatch: 4, evalGraphBatch: 16, wasmMiBPerExample: { train: 3.3, eval: 0.57 } },
  build: (m, image) => {
    const b = m.b;
    let x = convBnRelu(m, 'prep', image, 24);
    x = residual(m, 'layer1.res', downBlock(m, 'layer1', x, 48));
    x = downBlock(m, 'layer2', x, 96);
    x = residual(m, 'layer3.res', downBlock(m, 'layer3', x, 192));
    x = op.maxPool(b, x, { kernel: [4, 4] })[0];
    return op.flatten(b, x, 1);
  },
};

/**
 * seed-cnn's shape with batch norm after each conv (no conv bias): the smallest preset with batch-norm
 * buffers, so that cluster tests cover per-shard batch statistics at seed-cnn's cost.
 */
export const bnCnn: Backbone = {
  name: 'bn-cnn',
  description: 'seed-cnn with BN: conv 3→32 k3 p1, BN, maxpool 2, ReLU, conv 32→64 k3 p1, BN, maxpool 2, ReLU, FC 4096→128, ReLU',
  featureDim: 128,
  workers: { graphBatch: 16, evalGraphBatch: 50, wasmMiBPerExample: { train: 1.0, eval: 0.25 } },
  build: (m, image) => {
    const b = m.b;
    let x = batchNorm(m, 'conv1.bn', conv2d(m, 'conv1', image, 32, 3, { pad: 1, bias: false }));
    x = op.relu(b, op.maxPool(b, x, { kernel: [2, 2] })[0]);
    x = batchNorm(m, 'conv2.bn', conv2d(m, 'conv2', x, 64, 3, { pad: 1, bias: false }));
    x = op.relu(b, op.maxPool(b, x, { kernel: [2, 2] })[0]);
    return op.relu(b, linear(m, 'fc1', op.flatten(b, x, 1), 128));
  },
};

/**
 * A plain conv net of ~17 k weights (with the linear head), for tests that run many workers at once
 * (each loads its own ORT): conv 3→8, max-pool 4 to 8×8, FC 512→32.
 */
export const tinyCnn: Backbone = {
  name: 'tiny-cnn',
  description: 'conv 3→8 k3 p1, maxpool 4, ReLU, FC 512→32, ReLU',
  featureDim: 32,
  workers: { graphBatch: 32, evalGraphBatch: 100, wasmMiBPerExample: { train: 0.05, eval: 0.03 } },
  build: (m, image) => {
    const b = m.b;
    const x = op.relu(b, op.maxPool(b, conv2d(m, 'conv1', image, 8, 3, { pad: 1 }), { kernel: [4, 4] })[0]);
    return op.relu(b, linear(m, 'fc1', op.flatten(b, x, 1), 32));
  },
};

export const BACKBONES: readonly Backbone[] = [seedCnn, bnCnn, resCnn, tinyCnn];
