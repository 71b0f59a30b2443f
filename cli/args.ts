// Flag parsing shared by the CLI commands: unknown flags and bad values name the valid choices.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<O extends Options>(argv: string[], options: O, command: string) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    const valid = Object.keys(options).map((k) => `--${k}`).join(', ');
    throw new UsageError(`${command}: ${(e as Error).message.split('\n')[0]}\nvalid options: ${valid}`);
  }
}

export function numberFlag(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v)) throw new UsageError(`--${name}: '${raw}' is not a number`);
  return v;
}

export function choiceFlag<T extends string>(name: string, raw: string | undefined, choices: readonly T[], fallback: T): T {
  if (raw === undefined) return fallback;
  if (!choices.includes(raw as T)) throw new UsageError(`--${name}: '${raw}' is not one of ${choices.join(', ')}`);
  return raw as T;
}
