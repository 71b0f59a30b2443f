// Hand-driven gradient workers for coordinator tests: leases taken and frames posted by the test
// itself, with known gradients, so every applied update, duplicate and refusal can be checked exactly.
import { credentialClaims } from '../../shared/auth';
import { encodeEval, encodeGradient } from '../../shared/wire';
import type { Lease, RunSpec } from '../../shared/protocol';
import { ApiError, type ApiClient } from '../../workers/gradient/client';

/**
 * A lease for `client`, asking again on 'wait' as the worker loop does (a long-polling request may
 * answer 'wait' before a shard frees up); fails on 'done' or after `timeoutMs`.
 */
export async function leaseOrFail(client: ApiClient, runId: string, timeoutMs = 5000): Promise<Lease> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const reply = await client.lease(runId);
    if (reply.type === 'lease') return reply.lease;
    if (reply.type === 'done' || reply.type === 'stop' || Date.now() > until) throw new Error(`expected a lease, got ${JSON.stringify(reply)}`);
  }
}

export interface FrameOptions {
  loss?: number;
  correct?: number;
  count?: number;
  version?: number;
  step?: number;
  shard?: number;
  leaseId?: string;
  gradLength?: number;
  stats?: number | Float32Array;
}

/** A gradient frame for `lease`: every gradient `value` (or value(i)), stats likewise from options. */
export function gradientFrame(lease: Lease, spec: RunSpec, value: number | ((i: number) => number), o: FrameOptions = {}): Uint8Array<ArrayBuffer> {
  const grads = new Float32Array(o.gradLength ?? spec.paramCount);
  if (typeof value === 'number') grads.fill(value);
  else for (let i = 0; i < grads.length; i++) grads[i] = value(i);
  const stats = o.stats instanceof Float32Array ? o.stats : new Float32Array(spec.bufferCount).fill(o.stats ?? 0);
  const count = o.count ?? lease.indices.length;
  return encodeGradient({
    leaseId: o.leaseId ?? lease.leaseId,
    version: o.version ?? lease.version,
    step: o.step ?? lease.step,
    shard: o.shard ?? lease.shard,
    count,
    loss: o.loss ?? 2.3,
    // Within the shard: more than its examples is refused as impossible.
    correct: o.correct ?? Math.min(3, count),
    grads,
    stats,
  });
}

export function evalFrame(lease: Lease, lossSum: number, correct: number, count = lease.indices.length): Uint8Array<ArrayBuffer> {
  return encodeEval({ leaseId: lease.leaseId, version: lease.version, step: lease.step, shard: lease.shard, count, lossSum, correct });
}

/** The refusal of `p` (an ApiError); fails when `p` succeeds. */
export async function refusal(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected the API to refuse the request, but it succeeded');
}

export const statusAndReason = (e: ApiError) => ({ status: e.status, reason: e.body.reason });

/** Up to 5 indices where `actual` differs from `expected(i)` (exact float32 equality); [] when equal. */
export function mismatches(actual: Float32Array, expected: (i: number) => number, length = actual.length): { i: number; actual: number; expected: number }[] {
  const out: { i: number; actual: number; expected: number }[] = [];
  if (actual.length !== length) return [{ i: -1, actual: actual.length, expected: length }];
  for (let i = 0; i < actual.length && out.length < 5; i++) {
    const e = Math.fround(expected(i));
    if (!Object.is(actual[i], e)) out.push({ i, actual: actual[i], expected: e });
  }
  return out;
}

/** Polls `read` every 25 ms until `done` holds (returns the value) or `timeoutMs` passes (throws). */
export async function waitFor<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(v)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Worker clients by name: the same name is the same client, so it works under the same minted identity
 * on each run (its id: `client.workerId`, once it has called).
 */
export function namedWorkers(make: () => ApiClient): (name: string) => ApiClient {
  const clients = new Map<string, ApiClient>();
  return (name) => {
    let client = clients.get(name);
    if (!client) clients.set(name, (client = make()));
    return client;
  };
}

/** The worker a proxied request was sent as: the id its credential names ('' for any other bearer). */
export function workerOfRequest(headers: Record<string, string | string[] | undefined>): string {
  const m = /^Bearer (\S+)$/.exec(String(headers['authorization'] ?? ''));
  return (m && credentialClaims(m[1])?.workerId) ?? '';
}
