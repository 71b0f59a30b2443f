// The one place an error becomes what the user sees: a short message saying what to do, and an exit
// code. Stack traces only with --debug or EDGETRAIN_DEBUG=1.
import { ApiError } from '../workers/gradient/client';
import { UsageError } from './args';
import { TOKEN_ENV, URL_ENV, staleServerMessage, type Target } from './target';

export const EXIT = {
  ok: 0,
  /** A run failed, the API refused the request (bad config, conflict), or anything unexpected. */
  failed: 1,
  usage: 2,
  unreachable: 3,
  /** `status --watch`, `run --watch`: the run ended cancelled. */
  cancelled: 3,
  token: 4,
  unknownRun: 5,
  interrupted: 130,
} as const;

export const EXIT_CODES_USAGE = `exit codes: 0 ok · 1 run failed, or the API refused the request · 2 usage error · 3 API unreachable (with --watch: run cancelled)
            4 token refused · 5 unknown run · 130 interrupted (Ctrl-C)`;

export interface ErrorContext {
  /** The command being run (for "see `edgetrain COMMAND --help`"). */
  readonly command?: string;
  /** The API the command talked to. */
  readonly target?: Target;
  /** The run the command is about. */
  readonly runId?: string;
}

/** An error the CLI has already phrased, with its exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed TLS certificate',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS certificate does not match the host',
};

/** Why a request got no answer, when `e` is a network failure (fetch failed, a timeout). */
export function networkReason(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const err = c as { name?: string; code?: string; errors?: { code?: string }[] };
    if (err.name === 'TimeoutError') return 'no answer in time';
    const code = err.code ?? err.errors?.find((x) => x.code)?.code;
    if (code && code in NETWORK_CODES) return `${NETWORK_CODES[code]} (${code})`;
  }
  if (e instanceof TypeError && e.message === 'fetch failed') {
    const cause = (e as { cause?: unknown }).cause;
    return `the request failed${cause instanceof Error && cause.message ? ` (${cause.message})` : ''}`;
  }
  return undefined;
}

const firstLine = (s: string) => s.split('\n')[0];

function usageMessage(e: UsageError, command: string | undefined): string {
  const help = command ? `edgetrain ${command} --help` : 'edgetrain --help';
  if (!command) return `edgetrain: ${firstLine(e.message)} — see \`${help}\``;
  const text = e.message.startsWith(`${command}: `) ? e.message.slice(command.length + 2) : e.message;
  // The parser's "valid options" line is what --help shows; other usage errors keep their detail lines.
  const lines = text.split('\n').filter((l) => !l.startsWith('valid options: '));
  lines[0] = `edgetrain ${command}: ${lines[0]} — see \`${help}\``;
  return lines.join('\n');
}

function apiMessage(e: ApiError, ctx: ErrorContext): { message: string; code: number } {
  const at = ctx.target ? ` at ${ctx.target.url}` : '';
  const { status, body } = e;
  if (status === 401 || (status === 403 && body.reason !== 'excluded')) {
    const t = ctx.target;
    const which = !t?.token ? 'no token was sent' : `the token from ${t.tokenFrom}`;
    return {
      code: EXIT.token,
      message: `the API${at} refused the request (${which}: ${body.error}): set ${TOKEN_ENV} or the config file's "token" to the API token${t?.local ? ` (a local cluster's is in ${t.state}/api-token)` : ''}`,
    };
  }
  if ((status === 404 && body.reason === 'unknown-run') || (status === 400 && body.reason === 'run-id')) {
    const id = ctx.runId ?? '?';
    return { code: EXIT.unknownRun, message: `no run ${id}${at}${body.reason === 'run-id' ? ' (run ids are lowercase letters, digits and -)' : ''}: \`edgetrain runs\` lists them` };
  }
  const issues = body.issues?.length ? `\n${body.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}` : '';
  if (status === 404) return { code: EXIT.failed, message: `the API${at} answered 404 (${body.error}): is this an edgetrain API? check --url / ${URL_ENV}` };
  if (status >= 500) return { code: EXIT.failed, message: `the API${at} failed (HTTP ${status}): ${firstLine(body.error)}` };
  return { code: EXIT.failed, message: `error: ${body.error}${issues}` };
}

/** The message and exit code for an error thrown by a command. */
export function explain(e: unknown, ctx: ErrorContext = {}): { message: string; code: number } {
  if (e instanceof CliError) return { message: e.message, code: e.code };
  if (e instanceof UsageError) return { message: usageMessage(e, ctx.command), code: EXIT.usage };
  if (e instanceof ApiError) return apiMessage(e, ctx);
  const reason = networkReason(e);
  if (reason) {
    const t = ctx.target;
    const where = t ? `${t.url}${t.urlSource === 'default' || t.urlSource === 'flag' ? '' : ` (from ${t.urlFrom})`}` : 'the API';
    if (t?.staleServer) return { code: EXIT.unreachable, message: `cannot reach ${where} (${reason}): ${staleServerMessage(t.staleServer, t.state)}` };
    const hint = !t || t.local ? 'is the local cluster running (`edgetrain start --serve`)? or pass --url / set EDGETRAIN_URL' : `check the URL, or pass --url / set ${URL_ENV}`;
    return { code: EXIT.unreachable, message: `cannot reach ${where}: ${reason} — ${hint}` };
  }
  if (e instanceof Error) return { code: EXIT.failed, message: `error: ${e.message}` };
  return { code: EXIT.failed, message: `error: ${String(e)}` };
}

export const debugEnabled = (argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean =>
  argv.includes('--debug') || ['1', 'true', 'yes'].includes((env.EDGETRAIN_DEBUG ?? '').toLowerCase());

/** The stack of `e` and its causes, for --debug. */
export function stackOf(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    parts.push(depth ? `caused by: ${c instanceof Error ? (c.stack ?? c.message) : String(c)}` : c instanceof Error ? (c.stack ?? c.message) : String(c));
  }
  return parts.join('\n');
}
