// A zod error as one issue per bad field: "path: message", an unknown key named in the path.
import type { z } from 'zod';

export interface FieldIssue {
  readonly path: string;
  readonly message: string;
}

const joinPath = (prefix: string, path: readonly PropertyKey[]) => [prefix, ...path.map(String)].filter(Boolean).join('.');

export function fieldIssuesOf(error: z.core.$ZodError, prefix = ''): FieldIssue[] {
  return error.issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => ({ path: joinPath(prefix, [...i.path, k]), message: `unknown field '${k}'` }));
    return [{ path: joinPath(prefix, i.path), message: i.message }];
  });
}

/** Issues as "path: message" lines; empty when `value` satisfies `schema`. */
export function schemaErrors(schema: z.ZodType, value: unknown, prefix = ''): string[] {
  const r = schema.safeParse(value);
  return r.success ? [] : fieldIssuesOf(r.error, prefix).map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
}

/** `value` when it satisfies `schema`; else throws naming `what` and every bad field, one per line. */
export function checked<T>(schema: z.ZodType, value: T, what: string, prefix = ''): T {
  const errors = schemaErrors(schema, value, prefix);
  if (errors.length) throw new Error(`invalid ${what}:\n  ${errors.join('\n  ')}`);
  return value;
}

interface PendingIssue {
  readonly code: string;
  /** Unset while zod has not yet placed the issue (a root type error, unknown keys). */
  readonly path?: readonly PropertyKey[];
}

/**
 * A refinement's `when`: run the rule once the top-level fields it reads are valid, whatever the state
 * of the others (zod's default waits for every field), so a cross-field problem is reported alongside
 * the field problems instead of after they are fixed.
 */
export const whenValid =
  (...fields: string[]) =>
  (payload: { readonly issues: readonly PendingIssue[] }): boolean =>
    payload.issues.every((i) => i.code === 'unrecognized_keys' || (i.path !== undefined && i.path.length > 0 && !fields.includes(String(i.path[0]))));

/** Re-reports another parse's issues (e.g. of a merged sub-config) under `prefix`. */
export function addIssues(ctx: z.RefinementCtx, error: z.core.$ZodError, prefix: readonly PropertyKey[]): void {
  for (const i of error.issues) ctx.addIssue({ ...i, path: [...prefix, ...i.path] } as Parameters<z.RefinementCtx['addIssue']>[0]);
}
