// Credentials: the operator's API token, per-run worker tokens and per-lease tokens.
//
// Only the API token is a stored secret (the Worker's API_TOKEN). Everything else is an HMAC-SHA256
// signature under a key derived from it, so the API checks a worker or lease token without storage:
//   worker token  `etw.<runId>.<sig("worker:" runId)>`           lets a worker take leases of that run
//   lease token   `<sig("lease:" runId ":" leaseId ":" worker)>`  proves the submitter holds that lease
// Rotating API_TOKEN invalidates every worker and lease token.

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/** The HMAC key derived from an API token (cached per token: importing costs a microtask or two). */
export function signingKey(apiToken: string): Promise<CryptoKey> {
  let key = keys.get(apiToken);
  if (!key) {
    key = crypto.subtle
      .digest('SHA-256', encoder.encode(`edgetrain signing key\0${apiToken}`))
      .then((raw) => crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']));
    keys.set(apiToken, key);
  }
  return key;
}

async function sign(key: CryptoKey, message: string): Promise<string> {
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(message)));
  let binary = '';
  for (const b of mac) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Compares without an early exit, so the time taken does not tell how much of a guess was right. */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ (y[i % Math.max(1, y.length)] ?? 0);
  return diff === 0;
}

const WORKER_TOKEN = /^etw\.([a-z0-9][a-z0-9-]{0,63})\.([A-Za-z0-9_-]{43})$/;

export async function workerToken(key: CryptoKey, runId: string): Promise<string> {
  return `etw.${runId}.${await sign(key, `worker:${runId}`)}`;
}

/** The run a worker token was issued for, when its signature is valid; undefined otherwise. */
export async function verifyWorkerToken(key: CryptoKey, token: string): Promise<string | undefined> {
  const m = WORKER_TOKEN.exec(token);
  if (!m) return undefined;
  return constantTimeEqual(await sign(key, `worker:${m[1]}`), m[2]) ? m[1] : undefined;
}

export const isWorkerToken = (token: string) => token.startsWith('etw.');

export function leaseToken(key: CryptoKey, runId: string, leaseId: string, worker: string): Promise<string> {
  return sign(key, `lease:${runId}:${leaseId}:${worker}`);
}

export async function verifyLeaseToken(key: CryptoKey, runId: string, leaseId: string, worker: string, token: string): Promise<boolean> {
  return constantTimeEqual(await leaseToken(key, runId, leaseId, worker), token);
}
