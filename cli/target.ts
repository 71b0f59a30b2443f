// Which API a command talks to, and with which token; one rule for every command:
//   URL:   --url > $EDGETRAIN_URL > config file "url" > the local cluster serving the state (its
//          server.json) > http://127.0.0.1:8787; an explicit --state skips $EDGETRAIN_URL and config URLs
//   token: $EDGETRAIN_TOKEN > config file "token" > for a local URL, <state>/api-token
// Config files, first found first: .edgetrain/config.json in the working folder, then
// $XDG_CONFIG_HOME/edgetrain/config.json (or ~/.config/edgetrain/config.json): {"url": "…", "token": "…"}.
// A config file's token is only sent to its own URL (or to any, when the file names no URL).
import { readFileSync, rmSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { ApiClient, type Fetch } from '../workers/gradient/client';
import { UsageError } from './args';

export const URL_ENV = 'EDGETRAIN_URL';
export const TOKEN_ENV = 'EDGETRAIN_TOKEN';
export const DEFAULT_URL = 'http://127.0.0.1:8787';
export const DEFAULT_STATE = path.join('.edgetrain', 'state');
/** Written by `edgetrain start` into its state folder while it serves: where its API listens. */
export const SERVER_FILE = 'server.json';

export type UrlSource = 'flag' | 'env' | 'config' | 'server' | 'default';

export interface Target {
  /** The API's base URL, without a trailing slash. */
  readonly url: string;
  readonly urlSource: UrlSource;
  /** Where the URL came from, in words ("--url", "$EDGETRAIN_URL", a file). */
  readonly urlFrom: string;
  readonly token?: string;
  /** Where the token came from, in words; undefined when there is none. */
  readonly tokenFrom?: string;
  /** 127.0.0.1, localhost or ::1. */
  readonly local: boolean;
  /** The local state folder (absolute) whose token a local URL uses. */
  readonly state: string;
  /** The state's server.json when its process is gone and the URL fell back to the default: why it may not answer. */
  readonly staleServer?: ServerFile;
}

export interface TargetEnvironment {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly home?: string;
}

interface ConfigFile {
  readonly file: string;
  readonly url?: string;
  readonly token?: string;
}

let last: Target | undefined;
/** The target the command resolved last (for error messages). */
export const lastTarget = (): Target | undefined => last;
export const noteTarget = (t: Target): Target => (last = t);

/** The config files looked at, in order. */
export function configFiles({ env = process.env, cwd = process.cwd(), home = homedir() }: TargetEnvironment = {}): string[] {
  const user = env.XDG_CONFIG_HOME ? path.join(env.XDG_CONFIG_HOME, 'edgetrain', 'config.json') : path.join(home, '.config', 'edgetrain', 'config.json');
  return [path.resolve(cwd, '.edgetrain', 'config.json'), user];
}

async function readConfig(file: string): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${(e as Error).message}); expected {"url": "…", "token": "…"}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`${file}: expected a JSON object {"url": "…", "token": "…"}`);
  const { url, token } = json as Record<string, unknown>;
  for (const [key, value] of [['url', url], ['token', token]] as const) {
    if (value !== undefined && (typeof value !== 'string' || !value)) throw new UsageError(`${file}: "${key}" must be a non-empty string`);
  }
  return { file, url: url as string | undefined, token: token as string | undefined };
}

/** A URL's canonical form (no trailing slash); a usage error naming its source when it is not http(s). */
export function normalizeUrl(raw: string, from: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`${from}: '${raw}' is not a URL (expected e.g. https://edgetrain.example.workers.dev or ${DEFAULT_URL})`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${from}: '${raw}' is not an http(s) URL`);
  return u.href.replace(/\/+$/, '');
}

export const isLocalUrl = (url: string): boolean => ['127.0.0.1', 'localhost', '[::1]', '::1'].includes(new URL(url).hostname);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const notFound = (e: unknown) => ['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '');

/** A state's server.json, as `edgetrain start` writes it. */
export interface ServerFile {
  readonly file: string;
  readonly url: string;
  /** The `edgetrain start` process that wrote it. */
  readonly pid: number;
  /** Whether that process still runs; a file whose process is gone is stale. */
  readonly running: boolean;
}

/** The state's server.json; undefined when there is none; an error naming the file when it is not what `start` writes. */
export function readServerFile(state: string): ServerFile | undefined {
  const file = path.join(state, SERVER_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (notFound(e)) return undefined;
    throw e;
  }
  const fix = 'written by `edgetrain start` while it serves this state: delete it if no cluster serves it';
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message}); ${fix}`);
  }
  const { url, pid } = (json ?? {}) as { url?: unknown; pid?: unknown };
  if (typeof url !== 'string' || !Number.isInteger(pid)) throw new Error(`${file}: expected {"url": "…", "pid": N}; ${fix}`);
  return { file, url, pid: pid as number, running: alive(pid as number) };
}

/** The URL of the local cluster serving `state`, when one is (its server.json names a live process). */
export function servingUrl(state: string): string | undefined {
  const server = readServerFile(state);
  return server?.running ? server.url : undefined;
}

/** Why a stale server.json's state has no local cluster, and what to do. */
export const staleServerMessage = (s: ServerFile, state: string): string =>
  `${s.file} is stale: the \`edgetrain start\` that wrote it (pid ${s.pid}, serving ${s.url}) is not running, so no local cluster serves ${state} — start it again (\`edgetrain start --serve\`), or pass --url / set ${URL_ENV}`;

/** Written whole or not at all (through a rename): a reader never sees half of it. */
export async function writeServerFile(state: string, url: string): Promise<void> {
  const file = path.join(state, SERVER_FILE);
  await writeFile(`${file}.${process.pid}.tmp`, `${JSON.stringify({ url, pid: process.pid })}\n`);
  await rename(`${file}.${process.pid}.tmp`, file);
}

/**
 * A state's api-token file: its token, undefined when there is none, an error naming the file when it
 * holds no token (empty, several words or lines, characters outside printable ASCII).
 */
export async function readTokenFile(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (notFound(e)) return undefined;
    throw e;
  }
  const token = text.trim();
  if (!/^[!-~]+$/.test(token)) {
    const what = !token ? 'empty' : 'not one token (spaces, several lines or characters outside printable ASCII)';
    throw new Error(`${file}: ${what}; it holds the local cluster's API token: delete it and a new one is written, or put the token back`);
  }
  return token;
}

/** Removes the state's server.json if this process wrote it (synchronous: it also runs on 'exit'). */
export function removeServerFile(state: string): void {
  const file = path.join(state, SERVER_FILE);
  try {
    if ((JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid === process.pid) rmSync(file, { force: true });
  } catch {
    // Gone already, or not ours.
  }
}

/** Resolves the target of a command from its flags, the environment and the config files. */
export async function resolveTarget(flags: { url?: string; state?: string }, where: TargetEnvironment = {}): Promise<Target> {
  const env = where.env ?? process.env;
  const cwd = where.cwd ?? process.cwd();
  const state = path.resolve(cwd, flags.state ?? DEFAULT_STATE);
  const configs: ConfigFile[] = [];
  for (const file of configFiles({ ...where, env, cwd })) {
    const c = await readConfig(file);
    if (c) configs.push(c);
  }
  const fromConfig = configs.find((c) => c.url);
  const server = readServerFile(state);
  const serving = server?.running ? server.url : undefined;
  // An explicit --state names a local cluster: $EDGETRAIN_URL and config URLs do not apply.
  const localOnly = flags.state !== undefined;
  const [raw, urlSource, urlFrom]: [string, UrlSource, string] = flags.url
    ? [flags.url, 'flag', '--url']
    : env[URL_ENV] && !localOnly
      ? [env[URL_ENV]!, 'env', `$${URL_ENV}`]
      : fromConfig && !localOnly
        ? [fromConfig.url!, 'config', fromConfig.file]
        : serving
          ? [serving, 'server', `the local cluster serving ${state}`]
          : [DEFAULT_URL, 'default', 'the local cluster default'];
  const url = normalizeUrl(raw, urlFrom);
  const local = isLocalUrl(url);
  let token: string | undefined;
  let tokenFrom: string | undefined;
  const configToken = configs.find((c) => c.token && (!c.url || normalizeUrl(c.url, c.file) === url));
  if (env[TOKEN_ENV]) [token, tokenFrom] = [env[TOKEN_ENV], `$${TOKEN_ENV}`];
  else if (configToken) [token, tokenFrom] = [configToken.token, configToken.file];
  else if (local) {
    // No local state here: the request goes without a token and the API says what it wants.
    const file = path.join(state, 'api-token');
    token = await readTokenFile(file);
    if (token) tokenFrom = file;
  }
  const stale = server && !server.running && urlSource === 'default' ? server : undefined;
  return noteTarget({ url, urlSource, urlFrom, token, tokenFrom, local, state, ...(stale ? { staleServer: stale } : {}) });
}

/** A fetch that gives up after `ms` without an answer (a hung API fails the command instead of hanging it). */
export function fetchWithTimeout(ms: number): Fetch {
  return (input, init) => {
    const timeout = AbortSignal.timeout(ms);
    return globalThis.fetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
  };
}

/** How long the CLI keeps asking an API that answers 502/503/504 (a coordinator being reset, say). */
const CLI_RETRY_MS = 30_000;

/** The typed client for a target. */
export function apiFor(target: Target, timeoutMs = 120_000): ApiClient {
  return new ApiClient(target.url, { token: target.token, fetch: fetchWithTimeout(timeoutMs), retryForMs: CLI_RETRY_MS });
}
