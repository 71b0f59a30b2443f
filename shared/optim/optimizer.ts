import { ADAM_SLOT_COUNT, adamStep } from './adam.js';
import { optimizerSchema, type OptimizerConfig } from './config.js';
import { checked } from '../schema/issues';
import { sgdSlotCount, sgdStep } from './sgd.js';

/** Everything an optimizer needs to resume: completed step count and per-parameter buffers. */
export interface OptimizerState {
  step: number;
  /** SGD: [momentum] (empty when momentum is 0). Adam/AdamW: [m, v]. Each has one entry per parameter. */
  slots: Float32Array[];
}

export interface Optimizer {
  readonly config: Readonly<OptimizerConfig>;
  /** Number of parameters this optimizer updates. */
  readonly size: number;
  /** Live state, mutated by `step`; use `cloneOptimizerState` to take a checkpoint. */
  readonly state: OptimizerState;
  /** Updates `params` in place from `grads` with learning rate `lr`, then advances `state.step`. */
  step(params: Float32Array, grads: Float32Array, lr: number, decayMask?: Uint8Array): void;
}

export function slotCount(config: OptimizerConfig): number {
  return config.kind === 'sgd' ? sgdSlotCount(config) : ADAM_SLOT_COUNT;
}


function assertSize(size: number): void {
  if (!Number.isInteger(size) || size < 0) throw new RangeError(`optimizer size: ${size} is not an integer >= 0`);
}

class FlatOptimizer implements Optimizer {
  readonly config: Readonly<OptimizerConfig>;

  constructor(
    config: OptimizerConfig,
    readonly size: number,
    readonly state: OptimizerState,
  ) {
    this.config = Object.freeze({ ...config });
  }

  step(params: Float32Array, grads: Float32Array, lr: number, decayMask?: Uint8Array): void {
    const n = this.size;
    if (params.length !== n) throw new RangeError(`params: length ${params.length} does not match optimizer size ${n}`);
    if (grads.length !== n) throw new RangeError(`grads: length ${grads.length} does not match optimizer size ${n}`);
    if (decayMask !== undefined && decayMask.length !== n) {
      throw new RangeError(`decayMask: length ${decayMask.length} does not match optimizer size ${n}`);
    }
    if (!Number.isFinite(lr) || lr < 0) throw new RangeError(`lr: ${lr} is not a finite number >= 0`);

    const config = this.config;
    if (config.kind === 'sgd') sgdStep(config, this.state.slots, params, grads, lr, decayMask);
    else adamStep(config, this.state.slots, this.state.step, params, grads, lr, decayMask);
    this.state.step += 1;
  }
}

/** A fresh optimizer for `size` parameters; throws if the config is invalid. */
export function createOptimizer(config: OptimizerConfig, size: number): Optimizer {
  checked(optimizerSchema, config, 'optimizer config', 'optimizer');
  assertSize(size);
  const slots = Array.from({ length: slotCount(config) }, () => new Float32Array(size));
  return new FlatOptimizer(config, size, { step: 0, slots });
}

/**
 * Rebuilds an optimizer from a checkpointed state (the slot arrays are copied, so the
 * checkpoint stays untouched). `size` is inferred from the slots; pass it explicitly
 * for SGD without momentum, which has none.
 */
export function restoreOptimizer(config: OptimizerConfig, state: OptimizerState, size?: number): Optimizer {
  checked(optimizerSchema, config, 'optimizer config', 'optimizer');
  const expectedSlots = slotCount(config);
  if (state.slots.length !== expectedSlots) {
    throw new Error(`optimizer state: has ${state.slots.length} slots, ${config.kind} config expects ${expectedSlots}`);
  }
  if (!Number.isInteger(state.step) || state.step < 0) {
    throw new RangeError(`optimizer state: step ${state.step} is not an integer >= 0`);
  }
  const n = size ?? state.slots[0]?.length;
  if (n === undefined) throw new Error('restoreOptimizer: size is required when the state has no slots');
  assertSize(n);
  state.slots.forEach((slot, i) => {
    if (slot.length !== n) throw new RangeError(`optimizer state: slot ${i} has length ${slot.length}, expected ${n}`);
  });
  return new FlatOptimizer(config, n, cloneOptimizerState(state));
}

/** Deep copy, e.g. to checkpoint while training continues. */
export function cloneOptimizerState(state: OptimizerState): OptimizerState {
  return { step: state.step, slots: state.slots.map((slot) => slot.slice()) };
}
