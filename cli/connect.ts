// How a data command (prepare, captions) reaches the API: the target of cli/target.ts when a URL is
// given (--url, $EDGETRAIN_URL, a config file) or a local cluster serves the state; otherwise a local
// coordinator of its own, started on the state folder, whose token is kept beside its state.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ApiClient } from '../workers/gradient/client';
import { UsageError } from './args';
import { startCoordinator, type LocalCoordinator } from './cluster/local';
import { TOKEN_ENV, apiFor, noteTarget, readTokenFile, resolveTarget } from './target';

export { DEFAULT_STATE, TOKEN_ENV } from './target';

/**
 * The API token of a local state directory: EDGETRAIN_TOKEN when set, else the one in <state>/api-token,
 * written (owner-only) the first time the state is used.
 */
export async function localToken(stateDir: string): Promise<string> {
  const fromEnv = process.env[TOKEN_ENV];
  if (fromEnv) return fromEnv;
  const file = path.join(stateDir, 'api-token');
  const stored = await readTokenFile(file);
  if (stored) return stored;
  const token = `et_${randomBytes(24).toString('base64url')}`;
  await mkdir(stateDir, { recursive: true });
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  return (await readTokenFile(file)) ?? token;
}

export interface Connection {
  readonly api: ApiClient;
  /** Set when this command started its own coordinator. */
  readonly local?: LocalCoordinator;
  close(): Promise<void>;
}

/**
 * The API a URL names (--url, $EDGETRAIN_URL or a config file; token as cli/target.ts resolves it), the
 * local cluster serving --state (`edgetrain start`; a second coordinator must not open the same
 * state), or else a coordinator of this command's own on --state.
 */
export async function connect(flags: { url?: string; state?: string }): Promise<Connection> {
  const target = await resolveTarget(flags);
  if (target.urlSource !== 'default') {
    if (!target.token) {
      throw new UsageError(`${target.url} (from ${target.urlFrom}) needs a token: set ${TOKEN_ENV} to the deployment's API token (the API_TOKEN secret) or put "token" in .edgetrain/config.json`);
    }
    return { api: apiFor(target, 600_000), close: async () => undefined };
  }
  const token = await localToken(target.state);
  const local = await startCoordinator({ persistDir: target.state, token });
  noteTarget({ ...target, url: local.url, token, tokenFrom: path.join(target.state, 'api-token') });
  return { api: apiFor({ ...target, url: local.url, token }, 600_000), local, close: () => local.dispose() };
}
