// Builders for config fields whose messages name the value and the rule ("0 is not an integer in
// [1, 4096]"), so every config boundary words its refusals alike.
import { z } from 'zod';

export function formatValue(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

const refusal = (expected: string) => (issue: { input?: unknown }) => `${formatValue(issue.input)} is not ${expected}`;

function range(min: number | undefined, max: number | undefined, minOpen = false, maxOpen = false): string {
  if (min !== undefined && max !== undefined) return ` in ${minOpen ? '(' : '['}${min}, ${max}${maxOpen ? ')' : ']'}`;
  if (min !== undefined) return ` ${minOpen ? '>' : '>='} ${min}`;
  if (max !== undefined) return ` ${maxOpen ? '<' : '<='} ${max}`;
  return '';
}

/** A safe integer, optionally bounded (inclusive). */
export function int(min?: number, max?: number) {
  const error = refusal(`an integer${range(min, max)}`);
  let schema = z.int({ error });
  if (min !== undefined) schema = schema.min(min, { error });
  if (max !== undefined) schema = schema.max(max, { error });
  return schema;
}

export interface RealBounds {
  readonly min?: number;
  /** Exclusive lower bound (instead of min). */
  readonly gt?: number;
  readonly max?: number;
  /** Exclusive upper bound (instead of max). */
  readonly lt?: number;
}

/** A finite number within the bounds. */
export function real(b: RealBounds = {}) {
  const error = refusal(`a finite number${range(b.min ?? b.gt, b.max ?? b.lt, b.gt !== undefined, b.lt !== undefined)}`);
  let schema = z.number({ error });
  if (b.min !== undefined) schema = schema.min(b.min, { error });
  if (b.gt !== undefined) schema = schema.gt(b.gt, { error });
  if (b.max !== undefined) schema = schema.max(b.max, { error });
  if (b.lt !== undefined) schema = schema.lt(b.lt, { error });
  return schema;
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: refusal(`one of ${values.join(', ')}`) });
}

/** oneOf for a list known only at run time (e.g. the registered presets). */
export const oneOfNames = (values: readonly string[]) => oneOf(values as [string, ...string[]]);

export const bool = () => z.boolean({ error: refusal('one of true, false') });

/** An object refusing unknown keys (typos such as `weight_decay` would otherwise be silently dropped). */
export function strictObject<S extends z.core.$ZodLooseShape>(shape: S) {
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : refusal('an object')(issue)) });
}
