import { z } from 'zod';
import { bool, formatValue, real, strictObject } from '../schema/fields';

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

const nonNegative = real({ min: 0 });
const unitInterval = real({ min: 0, lt: 1 });

const sgdFields = strictObject({ kind: z.literal('sgd'), lr: nonNegative, momentum: unitInterval, nesterov: bool(), weightDecay: nonNegative });
const adamFields = strictObject({
  kind: z.enum(['adam', 'adamw']),
  lr: nonNegative,
  beta1: unitInterval,
  beta2: unitInterval,
  // eps = 0 would divide 0 by 0 for parameters whose gradient has always been zero.
  eps: real({ gt: 0 }),
  weightDecay: nonNegative,
});

const kindError = (issue: { input?: unknown }) => {
  const input = issue.input;
  const isObject = typeof input === 'object' && input !== null && !Array.isArray(input);
  return isObject ? `${formatValue((input as { kind?: unknown }).kind)} is not one of ${OPTIMIZER_KINDS.join(', ')}` : `${formatValue(input)} is not an object`;
};

/** A complete optimizer config; the fields allowed depend on `kind`. */
export const optimizerSchema = z.discriminatedUnion(
  'kind',
  [
    sgdFields.refine((c) => !c.nesterov || c.momentum > 0, { path: ['nesterov'], message: 'true requires momentum > 0 (momentum is 0)' }),
    adamFields,
  ],
  { error: kindError },
);

/** Some fields of a config over `defaultOptimizerConfig(kind)`: `kind` decides the others' defaults, so it is required. */
export const optimizerPatchSchema = z.discriminatedUnion(
  'kind',
  [sgdFields.partial().required({ kind: true }), adamFields.partial().required({ kind: true })],
  { error: kindError },
);
export type OptimizerPatch = z.infer<typeof optimizerPatchSchema>;

export function withOptimizerDefaults(patch: OptimizerPatch): OptimizerConfig {
  return { ...defaultOptimizerConfig(patch.kind), ...patch } as OptimizerConfig;
}
