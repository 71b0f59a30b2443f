// Who may call what. Every route but /v1/health names one access level:
//   control     the operator's API token (Authorization: Bearer <API_TOKEN>)
//   read        control, the run's worker token or a worker credential of it, or anyone when PUBLIC_READS = "true"
//   run-worker  control, or the worker token or a worker credential of the run in the path
//   any-worker  control, or any run's worker token or worker credential (content-addressed data every run's workers read)
//   mint        control, or the worker token of the run in the path: minting a worker identity
//   identity    a worker credential of the run in the path, and nothing else: the lease, answer and
//               chain calls work under the id the credential names (shared/auth.ts)
// Missing, malformed or expired credentials answer 401 (reason 'expired' for an expired one); valid
// ones without the right 403. Both before any body is read or any state is touched.
import type { Context, MiddlewareHandler } from 'hono';
import {
  constantTimeEqual,
  isWorkerCredential,
  isWorkerToken,
  signingKey,
  verifyLeaseToken,
  verifyWorkerCredential,
  verifyWorkerToken,
  type CredentialClaims,
  type LeaseTokenClaims,
} from '../../shared/auth';
import type { Env } from '../env';
import type { ErrorBody } from './respond';
import { drainRefusedBody } from './bounded-body';

export type Access = 'control' | 'read' | 'run-worker' | 'any-worker' | 'mint' | 'identity';

export type Principal =
  | { readonly kind: 'operator' }
  | { readonly kind: 'worker'; readonly runId: string }
  | { readonly kind: 'identity'; readonly claims: CredentialClaims }
  | { readonly kind: 'public' };

/** The API's bindings, and the worker identity an `identity` route's credential proved. */
export type App = { Bindings: Env; Variables: { identity: CredentialClaims } };

function deny(c: Context, status: 400 | 401 | 403 | 503, error: string, reason: string) {
  if (status === 401) c.header('www-authenticate', 'Bearer realm="edgetrain"');
  return c.json<ErrorBody>({ error, reason }, status);
}

function bearer(c: Context): string | undefined {
  const header = c.req.header('authorization');
  const m = header ? /^Bearer ([\x21-\x7e]{1,512})$/.exec(header) : null;
  return m ? m[1] : undefined;
}

const expired = (c: Context, what: string, at: number, fix: string) => deny(c, 401, `the ${what} expired at ${new Date(at).toISOString()}: ${fix}`, 'expired');

/** The principal a request's credentials prove, or the refusal to answer with. */
async function principalOf(c: Context<App>): Promise<Principal | Response> {
  const apiToken = c.env.API_TOKEN;
  if (!apiToken) return deny(c, 503, 'this deployment has no API_TOKEN secret: set one with `wrangler secret put API_TOKEN`', 'unconfigured');
  const token = bearer(c);
  if (token === undefined) {
    const why = c.req.header('authorization') === undefined ? 'no Authorization header' : 'the Authorization header is not "Bearer <token>"';
    return deny(c, 401, `${why}: send the API token (EDGETRAIN_TOKEN), a run's worker token or a worker credential`, 'unauthenticated');
  }
  if (isWorkerToken(token)) {
    const claims = await verifyWorkerToken(await signingKey(apiToken), token);
    if (!claims) return deny(c, 403, 'the worker token is not valid (forged, malformed, or signed before API_TOKEN was rotated)', 'forbidden');
    if (claims.expiresAt <= Date.now()) return expired(c, 'worker token', claims.expiresAt, 'ask the operator for a new one (GET /v1/runs/:id/worker-token)');
    return { kind: 'worker', runId: claims.runId };
  }
  if (isWorkerCredential(token)) {
    const claims = await verifyWorkerCredential(await signingKey(apiToken), token);
    if (!claims) return deny(c, 403, 'the worker credential is not valid (forged, malformed, or signed before API_TOKEN was rotated)', 'forbidden');
    if (claims.expiresAt <= Date.now()) return expired(c, `credential of worker ${claims.workerId}`, claims.expiresAt, 'mint a new identity with POST /v1/runs/:id/workers');
    return { kind: 'identity', claims };
  }
  return constantTimeEqual(token, apiToken) ? { kind: 'operator' } : deny(c, 403, 'the API token is wrong', 'forbidden');
}

export function requireAccess(access: Access): MiddlewareHandler<App> {
  return async (c, next) => {
    if (access === 'read' && c.env.PUBLIC_READS === 'true' && c.req.header('authorization') === undefined) return next();
    const principal = await principalOf(c);
    if (principal instanceof Response) return principal;
    const runId = c.req.param('id');
    if (access === 'identity') {
      if (principal.kind !== 'identity') {
        return deny(c, 403, `lease, answer and chain calls take a worker credential: mint one with POST /v1/runs/${runId ?? ':id'}/workers (the run's worker token or the API token) and send it as the bearer token`, 'credential-required');
      }
      const { claims } = principal;
      if (claims.runId !== runId) return deny(c, 403, `this credential is for run ${claims.runId}, not ${runId}`, 'forbidden');
      // The id is the credential's; a stale client still naming one gets told, not silently another's answer.
      const named = c.req.header('x-worker-id');
      if (named !== undefined && named !== claims.workerId) {
        return deny(c, 400, `x-worker-id '${named.slice(0, 40)}' is not the credential's worker ${claims.workerId}: the worker id comes from the credential; drop the header`, 'worker-id');
      }
      c.set('identity', claims);
      return next();
    }
    if (principal.kind === 'operator') return next();
    if (access === 'control') return deny(c, 403, 'a worker token or credential cannot control runs or write data: use the API token', 'forbidden');
    const principalRun = principal.kind === 'worker' ? principal.runId : principal.kind === 'identity' ? principal.claims.runId : undefined;
    if (access === 'mint' && principal.kind === 'identity') return deny(c, 403, 'a worker credential cannot mint identities: use the run\'s worker token', 'forbidden');
    if (access !== 'any-worker' && runId !== principalRun) return deny(c, 403, `this ${principal.kind === 'identity' ? 'credential' : 'worker token'} is for run ${principalRun}, not ${runId ?? 'the run list'}`, 'forbidden');
    return next();
  };
}

/** Checks x-lease-token: the lease in the path was issued to this worker of this run. Its claims bound the answer. */
export async function requireLeaseToken(c: Context<App>, runId: string, leaseId: string, worker: string): Promise<LeaseTokenClaims | Response> {
  const token = c.req.header('x-lease-token');
  if (!token) return deny(c, 401, 'no x-lease-token header: send the token that came with the lease', 'unauthenticated');
  const claims = await verifyLeaseToken(await signingKey(c.env.API_TOKEN!), runId, leaseId, worker, token);
  if (claims) return claims;
  // The worker's credential was valid: a small answer sent to the wrong lease is read and dropped, so
  // the worker sees this refusal rather than a reset connection.
  await drainRefusedBody(c);
  return deny(c, 403, `the lease token does not match lease ${leaseId} of worker ${worker}`, 'forbidden');
}
