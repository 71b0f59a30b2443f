// Runs the real `edgetrain` CLI in a child process, from any working folder: node with tsx's loader by
// absolute URL (a bare `--import tsx` would resolve from the child's cwd) and cli/main.ts by path.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN = path.join(ROOT, 'cli', 'main.ts');
export const BIN = path.join(ROOT, 'cli', 'bin.mjs');
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A home without config files, so the user's own ~/.config/edgetrain never leaks into a test. */
const EMPTY_HOME = mkdtempSync(path.join(tmpdir(), 'edgetrain-cli-home-'));

/** The environment of a CLI child: no EDGETRAIN_* from the outside, an empty home, plus `env`. */
export function cliEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EDGETRAIN_')));
  const merged: NodeJS.ProcessEnv = { ...base, HOME: EMPTY_HOME, XDG_CONFIG_HOME: path.join(EMPTY_HOME, '.config'), NO_COLOR: '1', ...env };
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];
  return merged;
}

export interface SpawnOptions {
  readonly env?: Record<string, string | undefined>;
  readonly cwd?: string;
  /** Run cli/bin.mjs (the package's `edgetrain` executable) instead of cli/main.ts through tsx. */
  readonly bin?: boolean;
}

export type CliProcess = ChildProcess & {
  readonly result: Promise<CliResult>;
  /** The stdout so far. */
  output(): string;
};

export function spawnCli(args: readonly string[], opts: SpawnOptions = {}): CliProcess {
  const argv = opts.bin ? [BIN, ...args] : ['--import', TSX_LOADER, MAIN, ...args];
  const child = spawn(process.execPath, argv, { cwd: opts.cwd ?? ROOT, env: cliEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return Object.assign(child, { result, output: () => stdout });
}

export const cli = (args: readonly string[], opts: SpawnOptions = {}): Promise<CliResult> => spawnCli(args, opts).result;

/** The first match of `pattern` in the process's stdout; rejects when it exits first or after `ms`. */
export async function waitForOutput(child: CliProcess, pattern: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
  const until = Date.now() + ms;
  let exited = false;
  void child.result.then(() => (exited = true));
  for (;;) {
    const m = child.output().match(pattern);
    if (m) return m;
    if (exited || Date.now() > until) {
      const r = exited ? await child.result : undefined;
      throw new Error(`no ${pattern} ${exited ? `before exit ${r?.code}` : `in ${ms} ms`}; stdout:\n${child.output()}${r ? `\nstderr:\n${r.stderr}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An error message is one line with no stack trace. */
export const oneLine = (stderr: string) => stderr.trim().split('\n').length === 1 && !stderr.includes('    at ');
