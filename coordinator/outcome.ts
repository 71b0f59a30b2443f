// What a coordinator call returns across the RPC boundary: a value, or a refusal the API turns into
// an HTTP status with a JSON body naming the problem.
export type FailureStatus = 400 | 403 | 404 | 409 | 410 | 413 | 422 | 429;

export interface Failure {
  readonly ok: false;
  readonly status: FailureStatus;
  readonly error: string;
  /** A short machine-readable cause, e.g. 'stale', 'checksum', 'length'. */
  readonly reason?: string;
  /** With 429: milliseconds until a retry may succeed. */
  readonly retryMs?: number;
}

export type Outcome<T> = { readonly ok: true; readonly value: T } | Failure;

export const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const fail = (status: FailureStatus, error: string, reason?: string): Failure => ({ ok: false, status, error, ...(reason ? { reason } : {}) });
