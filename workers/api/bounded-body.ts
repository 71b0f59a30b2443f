// Reading an answer's body within the bounds its lease token carries: no more bytes than the lease's
// frame can have, and no longer than a deadline, so a caller holding a valid lease can neither make
// the API buffer more than its answer nor hold a request open by trickling it. Callers reach this only
// with a valid credential and lease token (everyone else is refused before a byte is read).
import type { Context } from 'hono';
import type { LeaseTokenClaims } from '../../shared/auth';
import type { ErrorBody } from './respond';

/** A body may take the lease's remaining time to arrive, but at least BODY_MIN_MS and at most BODY_MAX_MS. */
export const BODY_MIN_MS = 10_000;
export const BODY_MAX_MS = 120_000;

/**
 * The most the API takes in of one answer, kept or not: a lease's own bound (its token's maxBytes) is
 * usually far lower. Below Cloudflare's request body limit on every plan (100 MB Free and Pro, 200 MB
 * Business, 500 MB Enterprise: https://developers.cloudflare.com/workers/platform/limits/#request-limits).
 */
export const FRAME_LIMIT = 64 * 1024 * 1024;

export const bodyDeadlineMs = (lease: LeaseTokenClaims, now = Date.now()) => Math.min(BODY_MAX_MS, Math.max(BODY_MIN_MS, lease.expiresAt - now));

const tooLarge = (c: Context, limit: number) =>
  c.json<ErrorBody>({ error: `request body exceeds ${limit} bytes, the largest answer this lease can have`, reason: 'too-large' }, 413);

/**
 * The body, or the refusal: 413 when Content-Length or the bytes read exceed `lease.maxBytes`, 408
 * when it has not all arrived by the deadline. Nothing past maxBytes is kept. An over-size body up to
 * FRAME_LIMIT is read to its end and dropped before the 413, since answering while a client still
 * uploads resets its connection and loses the answer; one declared or grown past FRAME_LIMIT is
 * refused at once.
 */
export async function readBoundedBody(c: Context, lease: LeaseTokenClaims): Promise<Uint8Array<ArrayBuffer> | Response> {
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > FRAME_LIMIT) return tooLarge(c, lease.maxBytes);
  let oversize = declared !== undefined && Number(declared) > lease.maxBytes;
  const stream = c.req.raw.body;
  if (!stream) return new Uint8Array(0);
  const reader = stream.getReader();
  const deadlineMs = bodyDeadlineMs(lease);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), deadlineMs)));
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), timedOut]);
      if (next === 'timeout') {
        void reader.cancel().catch(() => {});
        return c.json<ErrorBody>({ error: `the request body did not arrive within ${Math.round(deadlineMs / 1000)} s (${total} bytes came)`, reason: 'body-timeout' }, 408);
      }
      if (next.done) break;
      total += next.value.byteLength;
      if (total > FRAME_LIMIT) {
        void reader.cancel().catch(() => {});
        return tooLarge(c, lease.maxBytes);
      }
      oversize ||= total > lease.maxBytes;
      if (!oversize) chunks.push(next.value);
    }
  } finally {
    clearTimeout(timer);
  }
  if (oversize) return tooLarge(c, lease.maxBytes);
  const body = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}

/** The most of a refused worker request's body read anyway (a few of a small model's answers). */
export const REFUSED_DRAIN_BYTES = 8 * 1024 * 1024;
const REFUSED_DRAIN_MS = 5_000;

/**
 * Reads and drops a refused request's body when it is small (up to REFUSED_DRAIN_BYTES, within 5 s):
 * answering while the client still uploads resets its connection, and it would see "fetch failed"
 * instead of the refusal. A larger, undeclared-and-growing or slow body is left unread.
 */
export async function drainRefusedBody(c: Context): Promise<void> {
  const declared = c.req.header('content-length');
  const stream = c.req.raw.body;
  if (!stream || (declared !== undefined && !(Number(declared) <= REFUSED_DRAIN_BYTES))) return;
  const reader = stream.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), REFUSED_DRAIN_MS)));
  let total = 0;
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), timedOut]);
      if (next === 'timeout' || next.done) break;
      total += next.value.byteLength;
      if (total > REFUSED_DRAIN_BYTES) break;
    }
  } finally {
    clearTimeout(timer);
    void reader.cancel().catch(() => {});
  }
}
