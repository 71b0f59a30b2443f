// Flag parsing shared by the CLI commands: unknown flags and bad values name the valid choices.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { z } from 'zod';

/**
 * A command line the CLI cannot act on (unknown flag, missing or bad value). The first line of the
 * message is the problem; the CLI prints it with a pointer to `edgetrain COMMAND --help` and exits 2.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Edit distance with transpositions (optimal string alignment), for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The closest of `choices` to `word` when it is plausibly a typo of it (a prefix, or ≤ 2 edits). */
export function closest(word: string, choices: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of choices) {
    const d = word.length >= 3 && (c.startsWith(word) || word.startsWith(c)) ? 0.5 : distance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.min(2, Math.max(1, Math.floor(word.length / 3))) ? best : undefined;
}

function parseError(e: unknown, options: Options, command: string): UsageError {
  const valid = Object.keys(options).map((k) => `--${k}`);
  const message = (e as Error).message;
  const ambiguous = /^Option '(--[^' ]+)' argument is ambiguous/.exec(message)?.[1];
  let problem = ambiguous
    ? `${ambiguous} needs a value; one starting with '-' goes as ${ambiguous}=VALUE`
    : message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '').replace(/\. This command does not take positional arguments$/, ' (this command takes options only)');
  const unknown = /^Unknown option '(--?[^'=]+)/.exec(problem)?.[1];
  const suggestion = unknown && closest(unknown.replace(/^-+/, ''), Object.keys(options));
  if (suggestion) problem += ` (did you mean --${suggestion}?)`;
  return new UsageError(`${command}: ${problem}\nvalid options: ${valid.join(', ')}`);
}

export function parseFlags<O extends Options>(argv: string[], options: O, command: string) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw parseError(e, options, command);
  }
}

/**
 * Flags plus named positional arguments (`status ID`): every name in `required` must be given, at most
 * `required.length + optional.length` in all.
 */
export function parseCommand<O extends Options>(argv: string[], options: O, command: string, required: readonly string[], optional: readonly string[] = []) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw parseError(e, options, command);
  }
  const { values, positionals } = parsed;
  if (positionals.length < required.length) throw new UsageError(`${command}: missing ${required.slice(positionals.length).join(' ')}`);
  const names = [...required, ...optional];
  if (positionals.length > names.length) throw new UsageError(`${command}: unexpected argument '${positionals[names.length]}'`);
  const args: Record<string, string | undefined> = {};
  names.forEach((n, i) => (args[n] = positionals[i]));
  return { values, args };
}

export function numberFlag(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${name}: '${raw}' is not a number`);
  return v;
}

/** An integer flag of at least `min`. */
export function intFlag(name: string, raw: string | undefined, fallback: number, min = 0): number {
  const v = numberFlag(name, raw, fallback);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name}: '${raw}' is not an integer ≥ ${min}`);
  return v;
}

/** A number flag held to a config field's schema, so the flag has the bounds the API and trainer have. */
export function fieldFlag(name: string, raw: string | undefined, fallback: number, schema: z.ZodType<number>): number {
  const v = numberFlag(name, raw, fallback);
  const r = schema.safeParse(v);
  if (!r.success) throw new UsageError(`--${name}: ${r.error.issues[0].message}`);
  return v;
}

export function choiceFlag<T extends string>(name: string, raw: string | undefined, choices: readonly T[], fallback: T): T {
  if (raw === undefined) return fallback;
  if (!choices.includes(raw as T)) throw new UsageError(`--${name}: '${raw}' is not one of ${choices.join(', ')}`);
  return raw as T;
}
