// How a command reaches the API: a deployed or running one (--url, token from EDGETRAIN_TOKEN), or a
// local coordinator started on a state directory whose token is kept beside its state.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApiClient } from '../workers/gradient/client';
import { UsageError } from './args';
import { startCoordinator, type LocalCoordinator } from './cluster/local';

export const DEFAULT_STATE = path.join('.edgetrain', 'state');
export const TOKEN_ENV = 'EDGETRAIN_TOKEN';

/**
 * The API token of a local state directory: EDGETRAIN_TOKEN when set, else the one in <state>/api-token,
 * written (owner-only) the first time the state is used.
 */
export async function localToken(stateDir: string): Promise<string> {
  const fromEnv = process.env[TOKEN_ENV];
  if (fromEnv) return fromEnv;
  const file = path.join(stateDir, 'api-token');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = `et_${randomBytes(24).toString('base64url')}`;
  await mkdir(stateDir, { recursive: true });
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  return (await readFile(file, 'utf8')).trim();
}

export interface Connection {
  readonly api: ApiClient;
  /** Set when this command started its own coordinator. */
  readonly local?: LocalCoordinator;
  close(): Promise<void>;
}

/** The API named by --url (token from EDGETRAIN_TOKEN), or a local coordinator on --state. */
export async function connect(flags: { url?: string; state?: string }, workerId: string): Promise<Connection> {
  if (flags.url) {
    const token = process.env[TOKEN_ENV];
    if (!token) throw new UsageError(`--url ${flags.url}: set ${TOKEN_ENV} to the deployment's API token (the API_TOKEN secret)`);
    return { api: new ApiClient(flags.url, { workerId, token }), close: async () => undefined };
  }
  const state = path.resolve(flags.state ?? DEFAULT_STATE);
  const token = await localToken(state);
  const local = await startCoordinator({ persistDir: state, token });
  return { api: new ApiClient(local.url, { workerId, token }), local, close: () => local.dispose() };
}
