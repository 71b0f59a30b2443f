// The deployed settings the local Cloudflare profile copies, read from the wrangler configs themselves
// so the two cannot drift: the gradient consumer's queue settings and budgets, the API's vars.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './bundle';

/** The value of `key = value` (quotes dropped) in a TOML text; throws when it is absent or repeated. */
export function tomlSetting(toml: string, key: string, file = 'a wrangler config'): string {
  const found = [...toml.matchAll(new RegExp(`^${key}\\s*=\\s*"?([^"\\n]*)"?\\s*$`, 'gm'))].map((m) => m[1]);
  if (found.length !== 1) throw new Error(`${file}: expected one \`${key} = …\`, found ${found.length}`);
  return found[0];
}

export const API_CONFIG = 'wrangler.toml';
export const GRADIENT_CONFIG = 'workers/gradient/wrangler.toml';

export const readConfig = (file: string): string => readFileSync(join(ROOT, file), 'utf8');

export interface DeployedSettings {
  /** The gradient consumer's invocation budget (WORKER_BUDGET_MS). */
  readonly budgetMs: number;
  readonly maxRetries: number;
  readonly retryDelayS: number;
  readonly maxConcurrency: number;
  /** The API's memory budget per gradient-worker isolate (WORKER_MEMORY_MB). */
  readonly workerMemoryMb: number;
}

export function deployedSettings(): DeployedSettings {
  const gradient = readConfig(GRADIENT_CONFIG);
  const api = readConfig(API_CONFIG);
  const num = (toml: string, key: string, file: string) => {
    const v = Number(tomlSetting(toml, key, file));
    if (!Number.isFinite(v)) throw new Error(`${file}: ${key} is not a number`);
    return v;
  };
  return {
    budgetMs: num(gradient, 'WORKER_BUDGET_MS', GRADIENT_CONFIG),
    maxRetries: num(gradient, 'max_retries', GRADIENT_CONFIG),
    retryDelayS: num(gradient, 'retry_delay', GRADIENT_CONFIG),
    maxConcurrency: num(gradient, 'max_concurrency', GRADIENT_CONFIG),
    workerMemoryMb: num(api, 'WORKER_MEMORY_MB', API_CONFIG),
  };
}
