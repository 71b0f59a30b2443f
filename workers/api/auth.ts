// Who may call what. Every route but /v1/health names one access level:
//   control     the operator's API token (Authorization: Bearer <API_TOKEN>)
//   read        control, the run's worker token, or anyone when PUBLIC_READS = "true"
//   run-worker  control, or the worker token of the run in the path
//   any-worker  control, or any run's worker token (content-addressed data every run's workers read)
// Missing or malformed credentials answer 401; valid ones without the right answer 403. Both before
// any body is read or any state is touched.
import type { Context, MiddlewareHandler } from 'hono';
import { constantTimeEqual, isWorkerToken, signingKey, verifyLeaseToken, verifyWorkerToken } from '../../shared/auth';
import type { Env } from '../env';
import type { ErrorBody } from './respond';

export type Access = 'control' | 'read' | 'run-worker' | 'any-worker';

export type Principal = { readonly kind: 'operator' } | { readonly kind: 'worker'; readonly runId: string } | { readonly kind: 'public' };

type App = { Bindings: Env };

const WORKER_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function deny(c: Context, status: 401 | 403 | 503, error: string, reason: string) {
  if (status === 401) c.header('www-authenticate', 'Bearer realm="edgetrain"');
  return c.json<ErrorBody>({ error, reason }, status);
}

function bearer(c: Context): string | undefined {
  const header = c.req.header('authorization');
  const m = header ? /^Bearer ([\x21-\x7e]{1,512})$/.exec(header) : null;
  return m ? m[1] : undefined;
}

/** The principal a request's credentials prove, or the refusal to answer with. */
async function principalOf(c: Context<App>): Promise<Principal | Response> {
  const apiToken = c.env.API_TOKEN;
  if (!apiToken) return deny(c, 503, 'this deployment has no API_TOKEN secret: set one with `wrangler secret put API_TOKEN`', 'unconfigured');
  const token = bearer(c);
  if (token === undefined) {
    const why = c.req.header('authorization') === undefined ? 'no Authorization header' : 'the Authorization header is not "Bearer <token>"';
    return deny(c, 401, `${why}: send the API token (EDGETRAIN_TOKEN) or a run's worker token`, 'unauthenticated');
  }
  if (isWorkerToken(token)) {
    const runId = await verifyWorkerToken(await signingKey(apiToken), token);
    return runId ? { kind: 'worker', runId } : deny(c, 403, 'the worker token is not valid (forged, malformed, or signed before API_TOKEN was rotated)', 'forbidden');
  }
  return constantTimeEqual(token, apiToken) ? { kind: 'operator' } : deny(c, 403, 'the API token is wrong', 'forbidden');
}

export function requireAccess(access: Access): MiddlewareHandler<App> {
  return async (c, next) => {
    if (access === 'read' && c.env.PUBLIC_READS === 'true' && c.req.header('authorization') === undefined) return next();
    const principal = await principalOf(c);
    if (principal instanceof Response) return principal;
    if (principal.kind === 'worker') {
      if (access === 'control') return deny(c, 403, 'a worker token cannot control runs or write data: use the API token', 'forbidden');
      const runId = c.req.param('id');
      if (access !== 'any-worker' && runId !== principal.runId) return deny(c, 403, `this worker token is for run ${principal.runId}, not ${runId ?? 'the run list'}`, 'forbidden');
    }
    return next();
  };
}

/** The caller's worker id (x-worker-id): letters, digits and ._:- only, at most 128. */
export function workerIdOf(c: Context): string | Response {
  const id = c.req.header('x-worker-id') ?? 'anonymous';
  return WORKER_ID.test(id) ? id : c.json<ErrorBody>({ error: `x-worker-id '${id.slice(0, 40)}' is malformed: 1–128 letters, digits, '.', '_', ':' or '-'`, reason: 'worker-id' }, 400);
}

/** Checks x-lease-token: the lease in the path was issued to this worker of this run. */
export async function requireLeaseToken(c: Context<App>, runId: string, leaseId: string, worker: string): Promise<Response | undefined> {
  const token = c.req.header('x-lease-token');
  if (!token) return deny(c, 401, 'no x-lease-token header: send the token that came with the lease', 'unauthenticated');
  const valid = await verifyLeaseToken(await signingKey(c.env.API_TOKEN!), runId, leaseId, worker, token);
  return valid ? undefined : deny(c, 403, `the lease token does not match lease ${leaseId} of worker ${worker}`, 'forbidden');
}
