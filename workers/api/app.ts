// The HTTP API: one Hono app chained from its sub-apps, whose type the typed client (`hc`) shares.
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import type { Env } from '../env';
import { captions } from './captions';
import { dashboard } from './dashboard';
import { datasets } from './datasets';
import { durableObjectBusy, type ErrorBody } from './respond';
import { runs } from './runs';

export const app = new Hono<{ Bindings: Env }>()
  // Browser workers and dashboards on other origins call the API with bearer tokens, never cookies:
  // any origin may, and nothing ambient rides along.
  .use(
    '/v1/*',
    cors({
      origin: '*',
      allowHeaders: ['authorization', 'content-type', 'x-worker-id', 'x-lease-token', 'idempotency-key'],
      exposeHeaders: ['retry-after', 'x-caption-set', 'x-caption-dim'],
      maxAge: 600,
    }),
  )
  .get('/v1/health', (c) => c.json({ ok: true }))
  .route('/v1/runs', runs)
  .route('/v1/datasets', datasets)
  .route('/v1/captions', captions)
  .route('/', dashboard)
  .notFound((c) => c.json<ErrorBody>({ error: `no route ${c.req.method} ${new URL(c.req.url).pathname}`, reason: 'route' }, 404))
  .onError((e, c) => {
    // Hono's own refusals (a JSON body that does not parse, say) keep their 4xx status.
    if (e instanceof HTTPException && e.status < 500) return c.json<ErrorBody>({ error: e.message || 'bad request', reason: 'body' }, e.status);
    const busy = durableObjectBusy(e);
    if (busy) {
      c.header('retry-after', String(busy.retryAfterS));
      return c.json<ErrorBody>({ error: busy.error, reason: busy.reason }, 503);
    }
    console.error(e);
    return c.json<ErrorBody>({ error: `internal error: ${e instanceof Error ? e.message : String(e)}`, reason: 'internal' }, 500);
  });

export type AppType = typeof app;
