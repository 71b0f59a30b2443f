// Credentials: the operator's API token, per-run worker tokens, per-worker credentials and per-lease tokens.
//
// Only the API token is a stored secret (the Worker's API_TOKEN). Everything else is an HMAC-SHA256
// signature under a key derived from it, so the API checks a token without storage:
//   worker token  `etw.<runId>.<expiresAt>.<sig>`             the run's join token: reads its data and mints worker credentials
//   credential    `etc.<runId>.<workerId>.<expiresAt>.<sig>`  one worker identity the run's coordinator minted
//   lease token   `<expiresAt>.<maxBytes>.<sig>`              the lease was issued to that worker; its answer's size and time bounds
// Expiry times are epoch milliseconds. Rotating API_TOKEN invalidates every token but the API token.

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

const RUN = '[a-z0-9][a-z0-9-]{0,63}';
const SIG = '[A-Za-z0-9_-]{43}';
const WORKER_TOKEN = new RegExp(`^etw\\.(${RUN})\\.(\\d{1,15})\\.(${SIG})$`);
/** Worker ids the coordinator mints (`w-` + hex) and the chains of a deployment's fleet (`chain-N`). */
const WORKER = 'w-[0-9a-f]{16}|chain-\\d{1,4}';
const CREDENTIAL = new RegExp(`^etc\\.(${RUN})\\.(${WORKER})\\.(\\d{1,15})\\.(${SIG})$`);
const LEASE_TOKEN = new RegExp(`^(\\d{1,15})\\.(\\d{1,12})\\.(${SIG})$`);

export interface WorkerTokenClaims {
  readonly runId: string;
  readonly expiresAt: number;
}

export interface CredentialClaims {
  readonly runId: string;
  readonly workerId: string;
  readonly expiresAt: number;
}

export interface LeaseTokenClaims {
  /** After this the lease can no longer be extended: the bound on how long its answer may take to arrive. */
  readonly expiresAt: number;
  /** The largest answer (frame bytes) the lease can have. */
  readonly maxBytes: number;
}

export async function workerToken(key: CryptoKey, runId: string, expiresAt: number): Promise<string> {
  return `etw.${runId}.${expiresAt}.${await sign(key, `worker:${runId}:${expiresAt}`)}`;
}

/** What a worker token says, when its signature is valid (expired or not); undefined otherwise. */
export async function verifyWorkerToken(key: CryptoKey, token: string): Promise<WorkerTokenClaims | undefined> {
  const m = WORKER_TOKEN.exec(token);
  if (!m) return undefined;
  const expiresAt = Number(m[2]);
  return constantTimeEqual(await sign(key, `worker:${m[1]}:${expiresAt}`), m[3]) ? { runId: m[1], expiresAt } : undefined;
}

export const isWorkerToken = (token: string) => token.startsWith('etw.');

export async function workerCredential(key: CryptoKey, c: CredentialClaims): Promise<string> {
  return `etc.${c.runId}.${c.workerId}.${c.expiresAt}.${await sign(key, `credential:${c.runId}:${c.workerId}:${c.expiresAt}`)}`;
}

/** What a credential says, without checking its signature (a client reading its own). */
export function credentialClaims(token: string): CredentialClaims | undefined {
  const m = CREDENTIAL.exec(token);
  return m ? { runId: m[1], workerId: m[2], expiresAt: Number(m[3]) } : undefined;
}

/** What a credential says, when its signature is valid (expired or not); undefined otherwise. */
export async function verifyWorkerCredential(key: CryptoKey, token: string): Promise<CredentialClaims | undefined> {
  const claims = credentialClaims(token);
  if (!claims) return undefined;
  const sig = token.slice(token.lastIndexOf('.') + 1);
  return constantTimeEqual(await sign(key, `credential:${claims.runId}:${claims.workerId}:${claims.expiresAt}`), sig) ? claims : undefined;
}

export const isWorkerCredential = (token: string) => token.startsWith('etc.');

export async function leaseToken(key: CryptoKey, runId: string, leaseId: string, worker: string, claims: LeaseTokenClaims): Promise<string> {
  return `${claims.expiresAt}.${claims.maxBytes}.${await sign(key, `lease:${runId}:${leaseId}:${worker}:${claims.expiresAt}:${claims.maxBytes}`)}`;
}

/** The bounds a lease token carries, when it was signed for this lease of this worker; undefined otherwise. */
export async function verifyLeaseToken(key: CryptoKey, runId: string, leaseId: string, worker: string, token: string): Promise<LeaseTokenClaims | undefined> {
  const m = LEASE_TOKEN.exec(token);
  if (!m) return undefined;
  const claims = { expiresAt: Number(m[1]), maxBytes: Number(m[2]) };
  return constantTimeEqual(await sign(key, `lease:${runId}:${leaseId}:${worker}:${claims.expiresAt}:${claims.maxBytes}`), m[3]) ? claims : undefined;
}
