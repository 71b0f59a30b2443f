import {
  checkKnownFields,
  checkNumber,
  checkOneOf,
  formatValue,
  isRecord,
  type ParseResult,
  withDefaults,
} from './validate.js';

export const OPTIMIZER_KINDS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerKind = (typeof OPTIMIZER_KINDS)[number];

/** Adam (L2 decay added to the gradient) or AdamW (decoupled decay), PyTorch semantics. */
export interface AdamConfig {
  kind: 'adam' | 'adamw';
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** PyTorch SGD without dampening; L2 decay added to the gradient. */
export interface SgdConfig {
  kind: 'sgd';
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
}

export type OptimizerConfig = AdamConfig | SgdConfig;

const ADAM_FIELDS = ['kind', 'lr', 'beta1', 'beta2', 'eps', 'weightDecay'] as const;
const SGD_FIELDS = ['kind', 'lr', 'momentum', 'nesterov', 'weightDecay'] as const;

export function isOptimizerKind(value: unknown): value is OptimizerKind {
  return (OPTIMIZER_KINDS as readonly unknown[]).includes(value);
}

export function defaultOptimizerConfig(kind: 'sgd'): SgdConfig;
export function defaultOptimizerConfig(kind: 'adam' | 'adamw'): AdamConfig;
export function defaultOptimizerConfig(kind: OptimizerKind): OptimizerConfig;
export function defaultOptimizerConfig(kind: OptimizerKind): OptimizerConfig {
  switch (kind) {
    case 'sgd':
      return { kind, lr: 1e-2, momentum: 0.9, nesterov: false, weightDecay: 0 };
    case 'adam':
      return { kind, lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    case 'adamw':
      // 0.01 is PyTorch AdamW's default decay; the rest matches Adam.
      return { kind, lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 };
  }
}

/**
 * Range-checks every field of a config (which may come from untyped JSON).
 * Returns one message per bad field; empty when valid.
 */
export function validateOptimizerConfig(config: OptimizerConfig, path = 'optimizer'): string[] {
  const errors: string[] = [];
  const c = config as unknown as Record<string, unknown>;
  if (!checkOneOf(`${path}.kind`, c.kind, OPTIMIZER_KINDS, errors)) return errors;
  checkNumber(`${path}.lr`, c.lr, { min: 0 }, errors);
  checkNumber(`${path}.weightDecay`, c.weightDecay, { min: 0 }, errors);
  if (c.kind === 'sgd') {
    const momentumOk = checkNumber(`${path}.momentum`, c.momentum, { min: 0, max: 1, maxExclusive: true }, errors);
    if (checkOneOf(`${path}.nesterov`, c.nesterov, [true, false], errors) && c.nesterov && momentumOk && c.momentum === 0) {
      errors.push(`${path}.nesterov: true requires momentum > 0 (momentum is 0)`);
    }
  } else {
    checkNumber(`${path}.beta1`, c.beta1, { min: 0, max: 1, maxExclusive: true }, errors);
    checkNumber(`${path}.beta2`, c.beta2, { min: 0, max: 1, maxExclusive: true }, errors);
    // eps = 0 would divide 0 by 0 for parameters whose gradient has always been zero.
    checkNumber(`${path}.eps`, c.eps, { min: 0, minExclusive: true }, errors);
  }
  return errors;
}

/**
 * Parses an untyped value (e.g. JSON) into an optimizer config. `kind` is required;
 * other missing fields take `defaultOptimizerConfig(kind)`. Unknown fields are errors.
 */
export function parseOptimizerConfig(input: unknown, path = 'optimizer'): ParseResult<OptimizerConfig> {
  if (!isRecord(input)) return { ok: false, errors: [`${path}: ${formatValue(input)} is not an object`] };
  const errors: string[] = [];
  if (!checkOneOf(`${path}.kind`, input.kind, OPTIMIZER_KINDS, errors)) return { ok: false, errors };
  const kind = input.kind as OptimizerKind;
  checkKnownFields(path, input, kind === 'sgd' ? SGD_FIELDS : ADAM_FIELDS, errors, ` for ${kind}`);
  const merged = withDefaults(defaultOptimizerConfig(kind), input) as unknown as OptimizerConfig;
  errors.push(...validateOptimizerConfig(merged, path));
  return errors.length === 0 ? { ok: true, value: merged } : { ok: false, errors };
}
