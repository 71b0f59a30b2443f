// Small field checkers shared by the optimizer and schedule config parsers.
// Each checker appends a message of the form "<path>: <value> is not <expectation>".

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

export interface NumberRule {
  min?: number;
  minExclusive?: boolean;
  max?: number;
  maxExclusive?: boolean;
  integer?: boolean;
}

export function formatValue(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) {
    return String(value);
  }
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeRule(rule: NumberRule): string {
  const what = rule.integer ? 'an integer' : 'a finite number';
  const { min, max } = rule;
  if (min !== undefined && max !== undefined) {
    return `${what} in ${rule.minExclusive ? '(' : '['}${min}, ${max}${rule.maxExclusive ? ')' : ']'}`;
  }
  if (min !== undefined) return `${what} ${rule.minExclusive ? '>' : '>='} ${min}`;
  if (max !== undefined) return `${what} ${rule.maxExclusive ? '<' : '<='} ${max}`;
  return what;
}

export function satisfies(value: unknown, rule: NumberRule): value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return false;
  if (rule.integer && !Number.isInteger(value)) return false;
  if (rule.min !== undefined && (rule.minExclusive ? value <= rule.min : value < rule.min)) return false;
  if (rule.max !== undefined && (rule.maxExclusive ? value >= rule.max : value > rule.max)) return false;
  return true;
}

export function checkNumber(path: string, value: unknown, rule: NumberRule, errors: string[]): boolean {
  if (satisfies(value, rule)) return true;
  errors.push(`${path}: ${formatValue(value)} is not ${describeRule(rule)}`);
  return false;
}

export function checkOneOf<T extends string | boolean>(
  path: string,
  value: unknown,
  allowed: readonly T[],
  errors: string[],
): value is T {
  if ((allowed as readonly unknown[]).includes(value)) return true;
  errors.push(`${path}: ${formatValue(value)} is not one of ${allowed.join(', ')}`);
  return false;
}

/** Reports fields of `input` not in `allowed` (typos such as `weight_decay` would otherwise be silently ignored). */
export function checkKnownFields(
  path: string,
  input: Record<string, unknown>,
  allowed: readonly string[],
  errors: string[],
  context = '',
): void {
  for (const key of Object.keys(input)) {
    if (!allowed.includes(key)) {
      errors.push(`${path}.${key}: unknown field; allowed fields${context}: ${allowed.join(', ')}`);
    }
  }
}

/** Defaults overlaid with the defined fields of `input` (an explicit `undefined` counts as absent). */
export function withDefaults(defaults: object, input: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(input)) {
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}
