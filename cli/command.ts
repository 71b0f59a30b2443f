// What every `edgetrain` command module provides, and what the commands that talk to an API share:
// the target flags and their resolution (cli/target.ts), the run id for error messages.
import type { ApiClient } from '../workers/gradient/client';
import { CliError, EXIT, type ErrorContext } from './errors';
import { apiFor, resolveTarget, staleServerMessage, type Target } from './target';

export interface Output {
  /** A line of the command's output (stdout). */
  line(s: string): void;
  /** Raw text for an in-place display; only used when `tty`. */
  write(s: string): void;
  /** A note beside the output (stderr). */
  note(s: string): void;
  readonly tty: boolean;
}

/** Filled in by a command as it learns where it talks and about which run, for error messages. */
export interface CommandContext extends ErrorContext {
  command?: string;
  target?: Target;
  runId?: string;
  readonly out: Output;
}

export interface Command {
  /** Shown by `edgetrain COMMAND --help`. */
  readonly usage: string;
  /** Returns the exit code; throws for errors (cli/errors.ts explains them). */
  run(argv: string[], ctx: CommandContext): Promise<number>;
}

export const processOutput = (): Output => ({
  line: (s) => console.log(s),
  write: (s) => void process.stdout.write(s),
  note: (s) => console.error(s),
  tty: !!process.stdout.isTTY,
});

export const TARGET_FLAGS = {
  url: { type: 'string' },
  state: { type: 'string' },
} as const;

export const TARGET_USAGE = `  --url URL              the API (default: $EDGETRAIN_URL, "url" in .edgetrain/config.json or
                         ~/.config/edgetrain/config.json, else the local cluster at http://127.0.0.1:8787)
  --state DIR            talk to the local cluster of this state (default .edgetrain/state): its URL while
                         \`edgetrain start\` serves it, its api-token; given, $EDGETRAIN_URL and config URLs are skipped
  token: $EDGETRAIN_TOKEN, else "token" in the config file, else (local URL) the state's api-token`;

/** Resolves the command's target and opens the typed client on it. */
export async function connectTarget(flags: { url?: string; state?: string }, ctx: CommandContext, opts: { timeoutMs?: number } = {}): Promise<ApiClient> {
  ctx.target = await resolveTarget(flags);
  // Said before any request: whatever answers at the default URL is not the cluster the file named.
  if (ctx.target.staleServer) throw new CliError(staleServerMessage(ctx.target.staleServer, ctx.target.state), EXIT.unreachable);
  return apiFor(ctx.target, opts.timeoutMs);
}
