// Turning coordinator outcomes and validation failures into HTTP responses with JSON error bodies.
import type { Context } from 'hono';
import type { DurableObjectNamespace, DurableObjectStub } from '@cloudflare/workers-types/index';
import type { GradientAggregator } from '../../coordinator/aggregator';
import type { TrainingCoordinator } from '../../coordinator/coordinator';
import type { Failure } from '../../coordinator/outcome';
import type { FieldIssue } from '../../shared/protocol';

export interface ErrorBody {
  readonly error: string;
  readonly reason?: string;
  readonly issues?: readonly FieldIssue[];
}

export const errorBody = (f: Pick<Failure, 'error' | 'reason'>, issues?: readonly FieldIssue[]): ErrorBody => ({
  error: f.error,
  ...(f.reason ? { reason: f.reason } : {}),
  ...(issues ? { issues } : {}),
});

export function failure(c: Context, f: Failure) {
  if (f.retryMs !== undefined) c.header('retry-after', String(Math.ceil(f.retryMs / 1000)));
  return c.json(errorBody(f), f.status);
}

/** The coordinator as the API sees it: a Durable Object stub typed from the class (every method async). */
export type CoordinatorRpc = DurableObjectStub<TrainingCoordinator>;

/**
 * Content-addressed bytes (dataset blocks, caption vectors, parameter versions) never change, so any
 * cache may keep them a year; but every route serving them needs a token, so `private`: a shared cache
 * (Cloudflare's included, which follows the origin's Cache-Control:
 * https://developers.cloudflare.com/cache/about/cache-control/) must not hand them to callers without one.
 */
export const IMMUTABLE_PRIVATE = 'private, max-age=31536000, immutable';

export const RUN_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;

export function coordinator(ns: DurableObjectNamespace<TrainingCoordinator>, runId: string): CoordinatorRpc {
  return ns.get(ns.idFromName(runId));
}

/** Aggregator `group` of a run. */
export function aggregator(ns: DurableObjectNamespace<GradientAggregator>, runId: string, group: number): DurableObjectStub<GradientAggregator> {
  return ns.get(ns.idFromName(`${runId}/${group}`));
}

/** A run id in the path: validated before any Durable Object is addressed. */
export function runIdError(runId: string): ErrorBody | undefined {
  return RUN_ID.test(runId) ? undefined : { error: `run id '${runId.slice(0, 80)}' is malformed: lowercase letters, digits and '-', at most 64`, reason: 'run-id' };
}

/**
 * A Durable Object error the caller may retry: `.retryable` (moved, a transient fault) or
 * `.durableObjectReset` (reset by a deploy or by `ctx.abort`, as workerd marks it) soon; `.overloaded`
 * only after a pause, since retrying at once adds to the overload
 * (https://developers.cloudflare.com/durable-objects/best-practices/error-handling/). The next call
 * makes a new stub, so it reaches the object restarted.
 */
export function durableObjectBusy(e: unknown): { error: string; reason: string; retryAfterS: number } | undefined {
  const { retryable, overloaded, durableObjectReset, message } = (e ?? {}) as { retryable?: unknown; overloaded?: unknown; durableObjectReset?: unknown; message?: unknown };
  if (overloaded === true) return { error: `the run's coordinator is overloaded (${String(message)}); retry later`, reason: 'overloaded', retryAfterS: 10 };
  if (retryable === true || durableObjectReset === true) return { error: `the run's coordinator was interrupted (${String(message)}); retry`, reason: 'retryable', retryAfterS: 1 };
  return undefined;
}
