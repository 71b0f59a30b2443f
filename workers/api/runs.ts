// /v1/runs: create, list, status, metrics, cancel, model export, and the workers' lease/submit protocol.
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { zValidator } from '@hono/zod-validator';
import { z } from 'zod';
import { leaseToken, signingKey, workerCredential, workerToken } from '../../shared/auth';
import { runRequestSchema, resolveRunConfig, type FieldIssue, type LeaseReply, type RunCreated, type RunStatus, type RunSummary, type SubmitReply, type WorkerIdentity } from '../../shared/protocol';
import { fieldIssuesOf } from '../../shared/schema/issues';
import { RUN_INDEX_PREFIX, paramsKey, runRequestKey } from '../../shared/storage-keys';
import type { Env } from '../env';
import { TEXT_DIM } from '../../shared/models/heads';
import { findHead, type ModelConfig } from '../../shared/models/presets';
import { CAPTIONS_PREFIX, captionSetSizeProblem, precomputeCaptionSet, type CaptionSetEntry } from '../../shared/text/caption-store';
import { IMAGE_CAPTIONS_PREFIX, type ImageCaptionIndex } from '../../shared/text/image-captions';
import { PLACEHOLDER_ENCODER_ID, placeholderCaptionSet } from '../../shared/training/caption-feed';
import { requireAccess, requireLeaseToken, type App } from './auth';
import { FRAME_LIMIT, readBoundedBody } from './bounded-body';
import { kvCaptionStore, kvHead } from './captions';
import { findManifest } from './datasets';
import { findTargetDataset } from './target-dataset';
import { readVersion } from '../../shared/params-cache';
import { isLeaseId, leaseIdProblem } from '../../shared/wire';
import { clip } from '../../shared/schema/clip';
import type { Outcome } from '../../coordinator/outcome';
import { IMMUTABLE_PRIVATE, aggregator, coordinator, durableObjectBusy, failure, runIdError, type CoordinatorRpc, type ErrorBody } from './respond';
import { fitWorkerMemory } from './worker-memory';
import { jsonBody } from './json-body';
import { KV_LIST_MAX_PAGES, listKeys } from './kv-list';

const JSON_LIMIT = 64 * 1024;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{16,128}$/;
/** How long a run creation's Idempotency-Key is remembered. */
const IDEMPOTENCY_TTL_S = 24 * 3600;
/** Cloudflare's ceiling on a queue's concurrent consumer invocations. */
const QUEUE_CONCURRENCY_MAX = 250;
/** How long a run's worker token lives unless ?ttlHours= says otherwise, and the longest it may. */
const WORKER_TOKEN_TTL_HOURS = 7 * 24;
const WORKER_TOKEN_MAX_HOURS = 90 * 24;

const tooLarge = (limit: number) => bodyLimit({ maxSize: limit, onError: (c) => c.json<ErrorBody>({ error: `request body exceeds ${limit} bytes`, reason: 'too-large' }, 413) });

/** One issue per bad field; an unknown key is named in the path, not only the message. */
const issuesOf = (error: z.core.$ZodError): FieldIssue[] => fieldIssuesOf(error).map((i) => (i.path ? i : { ...i, path: '(body)' }));

const runRequest = zValidator('json', runRequestSchema, (result, c) => {
  if (!result.success) return c.json<ErrorBody>({ error: 'invalid run config', reason: 'config', issues: issuesOf(result.error) }, 400);
});

/** A chain invocation's ticket: its generation and its delivery (`message id/attempts/nonce`). */
const ticketSchema = z.object({ generation: z.number().int().min(1), invocation: z.string().regex(/^[A-Za-z0-9._:-]{1,128}\/\d{1,4}\/[0-9a-f]{8,32}$/, "'<message id>/<attempts>/<nonce>'") }).strict();

const workerBody = zValidator('json', z.object({ ticket: ticketSchema.optional() }).strict(), (result, c) => {
  if (!result.success) return c.json<ErrorBody>({ error: 'invalid lease request', reason: 'body', issues: issuesOf(result.error) }, 400);
});

const ticketBody = zValidator('json', ticketSchema, (result, c) => {
  if (!result.success) return c.json<ErrorBody>({ error: 'invalid chain ticket', reason: 'body', issues: issuesOf(result.error) }, 400);
});

const CHAIN_ID = /^chain-\d{1,4}$/;

const sinceQuery = zValidator('query', z.object({ since: z.coerce.number().int().min(-1).optional() }).strict(), (result, c) => {
  if (!result.success) return c.json<ErrorBody>({ error: 'invalid query', reason: 'query', issues: issuesOf(result.error) }, 400);
});

/** GET /v1/runs?limit=N: only the newest N runs. */
const limitQuery = zValidator('query', z.object({ limit: z.coerce.number().int().min(1).max(KV_LIST_MAX_PAGES * 1000).optional() }).strict(), (result, c) => {
  if (!result.success) return c.json<ErrorBody>({ error: 'invalid query', reason: 'query', issues: issuesOf(result.error) }, 400);
});

/** How long a read of the current version waits for its R2 write (tens of ms for megabytes) before answering 503. */
const STORE_WAIT_MS = 2000;

const tagQuery = zValidator('query', z.object({ tag: z.string().regex(/^[0-9a-f]{8}$/, 'must be 8 hex digits: the paramsTag of a lease').optional() }).strict(), (result, c) => {
  if (!result.success) return c.json<ErrorBody>({ error: 'invalid query', reason: 'query', issues: issuesOf(result.error) }, 400);
});

const headReadsCaptions = (m: ModelConfig) => findHead(m.head).textInput({ batch: 1, classes: m.classes, captionsPerClass: m.captionsPerClass }) !== null;

/** A run id unique enough across concurrent creations and readable in listings: time + random. */
function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `r${t}-${crypto.randomUUID().slice(0, 8)}`;
}

function runStub(c: Context<App>) {
  const id = c.req.param('id') ?? '';
  const bad = runIdError(id);
  return bad ? { bad } : { stub: coordinator(c.env.COORDINATOR, id) };
}

const ttlQuery = zValidator('query', z.object({ ttlHours: z.coerce.number().int().min(1).max(WORKER_TOKEN_MAX_HOURS).optional() }).strict(), (result, c) => {
  if (!result.success) return c.json<ErrorBody>({ error: 'invalid query', reason: 'query', issues: issuesOf(result.error) }, 400);
});

/** The run's worker token, expiring `ttlHours` from now. */
async function runWorkerToken(c: Context<App>, runId: string, ttlHours = WORKER_TOKEN_TTL_HOURS): Promise<{ token: string; expiresAt: number }> {
  const expiresAt = Date.now() + ttlHours * 3_600_000;
  return { token: await workerToken(await signingKey(c.env.API_TOKEN!), runId, expiresAt), expiresAt };
}

/** The answer to a run creation: the run's status and a fresh worker token for it. */
async function runCreated(c: Context<App>, status: RunStatus): Promise<RunCreated> {
  const joined = await runWorkerToken(c, status.runId);
  return { ...status, workerToken: joined.token, workerTokenExpiresAt: joined.expiresAt };
}

/** A minted (or renewed) identity with its credential signed. */
async function identityOf(c: Context<App>, runId: string, minted: { workerId: string; expiresAt: number }): Promise<WorkerIdentity> {
  const credential = await workerCredential(await signingKey(c.env.API_TOKEN!), { runId, ...minted });
  return { ...minted, credential };
}

/** A chain route's run and chain: the chain must be the credential's worker. */
function chainCall(c: Context<App>): { stub: CoordinatorRpc; chain: string } | Response {
  const { bad, stub } = runStub(c);
  if (bad) return c.json(bad, 400);
  const chain = c.req.param('chain') ?? '';
  if (!CHAIN_ID.test(chain)) return c.json<ErrorBody>({ error: `chain '${chain.slice(0, 40)}' is malformed: 'chain-' and a number`, reason: 'chain' }, 400);
  const worker = c.get('identity').workerId;
  if (worker !== chain) return c.json<ErrorBody>({ error: `worker ${worker} is not chain ${chain}: only the chain's own credential works on it`, reason: 'chain' }, 403);
  return { stub, chain };
}

/**
 * Cloudflare Queues runs at most max_concurrency consumer invocations of a queue at once (at most 250:
 * https://developers.cloudflare.com/queues/platform/limits/); chains beyond it would wait in the queue
 * while the coordinator counts them as workers. WORK_MAX_CONCURRENCY mirrors the consumer's setting.
 */
function fleetLimitProblem(env: Env, workers: number): string | undefined {
  if (!env.WORK) return undefined;
  const limit = Number(env.WORK_MAX_CONCURRENCY ?? QUEUE_CONCURRENCY_MAX);
  if (workers <= limit) return undefined;
  return `${workers} workers, but the gradient queue runs at most ${limit} consumer invocations at once: lower cluster.workers (--workers), or raise max_concurrency in workers/gradient/wrangler.toml and WORK_MAX_CONCURRENCY in wrangler.toml together (Cloudflare allows ${QUEUE_CONCURRENCY_MAX})`;
}

const control = requireAccess('control');
const read = requireAccess('read');
const runWorker = requireAccess('run-worker');
const json = jsonBody();
const mint = requireAccess('mint');
const identity = requireAccess('identity');

export const runs = new Hono<App>()
  .post('/', control, tooLarge(JSON_LIMIT), json, runRequest, async (c) => {
    // A client resending a creation whose answer it lost sends the same Idempotency-Key: it gets the
    // run its first request created, not a second one.
    const requestKey = c.req.header('idempotency-key');
    if (requestKey !== undefined && !IDEMPOTENCY_KEY.test(requestKey)) {
      return c.json<ErrorBody>({ error: `Idempotency-Key '${clip(requestKey, 40)}' is malformed: 16–128 letters, digits, '-' or '_'`, reason: 'idempotency-key' }, 400);
    }
    const earlier = requestKey ? await c.env.KV.get(runRequestKey(requestKey)) : null;
    if (earlier) {
      const r = await coordinator(c.env.COORDINATOR, earlier).status();
      return r.ok ? c.json<RunCreated>(await runCreated(c, r.value), 200) : failure(c, r);
    }
    let config = resolveRunConfig(c.req.valid('json'));
    const manifest = await findManifest(c.env.DATA, config.dataset);
    if (!manifest) {
      return c.json<ErrorBody>(
        { error: `dataset '${config.dataset}' is not prepared: run \`edgetrain prepare\` (or npm start, which prepares it) first`, reason: 'dataset', issues: [{ path: 'dataset', message: 'not found' }] },
        400,
      );
    }
    // The model's classes are the dataset's: unset, they follow it; set otherwise, the run would train a
    // head that cannot name every label (or names labels that never occur).
    const datasetClasses = manifest.classes.length;
    if (c.req.valid('json').model?.classes === undefined) config = { ...config, train: { ...config.train, model: { ...config.train.model, classes: datasetClasses } } };
    else if (config.train.model.classes !== datasetClasses) {
      const problem = `${config.train.model.classes}, but dataset '${config.dataset}' has ${datasetClasses} classes: leave model.classes unset or set it to ${datasetClasses}`;
      return c.json<ErrorBody>({ error: `model.classes is ${problem}`, reason: 'config', issues: [{ path: 'model.classes', message: problem }] }, 400);
    }
    const target = await findTargetDataset(c.env.DATA, config, manifest);
    if ('refusal' in target) return c.json<ErrorBody>(target.refusal, 400);
    const fitted = fitWorkerMemory(config, manifest, c.env, target.manifest);
    if (!('config' in fitted)) return c.json<ErrorBody>(fitted.body, fitted.status);
    config = fitted.config;
    // Every run reads caption vectors from KV; one that names no set gets the seeded placeholders,
    // stored there like any set.
    if (!config.captions && headReadsCaptions(config.train.model)) {
      const { classes, captionsPerClass } = config.train.model;
      // Checked before the placeholder vectors are made: too many would not fit the Worker's memory either.
      const oversize = captionSetSizeProblem(PLACEHOLDER_ENCODER_ID, classes * captionsPerClass, TEXT_DIM);
      if (oversize) {
        const problem = `the placeholder caption set (${classes} classes × ${captionsPerClass} captions) is too large: ${oversize}; lower model.captionsPerClass`;
        return c.json<ErrorBody>({ error: problem, reason: 'captions', issues: [{ path: 'model.captionsPerClass', message: problem }] }, 400);
      }
      const { texts, encoder } = placeholderCaptionSet(classes, captionsPerClass, TEXT_DIM);
      const { entry } = await precomputeCaptionSet(kvCaptionStore(c.env.KV), encoder, 'placeholder', texts);
      config = { ...config, captions: entry.key.slice(CAPTIONS_PREFIX.length) };
    }
    if (config.captions) {
      const metadata = (await kvHead<CaptionSetEntry>(c.env.KV, `${CAPTIONS_PREFIX}${config.captions}`))?.metadata;
      const problem = !metadata
        ? 'is not in KV: embed it first with `edgetrain captions` (a BERT model) or POST /v1/captions (Workers AI), then pass the hash it prints'
        : metadata.classes !== config.train.model.classes || metadata.perClass < config.train.model.captionsPerClass || metadata.dim !== TEXT_DIM
          ? `holds ${metadata.classes} classes × ${metadata.perClass} captions × ${metadata.dim}; the model needs ${config.train.model.classes} × ≥${config.train.model.captionsPerClass} × ${TEXT_DIM}`
          : undefined;
      if (problem) return c.json<ErrorBody>({ error: `caption set ${config.captions} ${problem}`, reason: 'captions', issues: [{ path: 'captions', message: problem }] }, 400);
    }
    if (config.imageCaptions) {
      const index = await c.env.KV.get<ImageCaptionIndex>(`${IMAGE_CAPTIONS_PREFIX}${config.imageCaptions}`, 'json');
      const problem = !index
        ? 'is not in KV: embed the caption files first with `edgetrain captions --images FILE --test-images FILE`, then pass the hash it prints'
        : index.train.count !== manifest.train.count || index.test.count !== manifest.test.count || index.dim !== TEXT_DIM
          ? `covers ${index.train.count} train + ${index.test.count} test records × ${index.dim}; dataset '${config.dataset}' has ${manifest.train.count} + ${manifest.test.count} and the head takes ${TEXT_DIM}`
          : undefined;
      if (problem) return c.json<ErrorBody>({ error: `image caption set ${config.imageCaptions} ${problem}`, reason: 'captions', issues: [{ path: 'imageCaptions', message: problem }] }, 400);
    }
    const fleetProblem = fleetLimitProblem(c.env, config.cluster.workers);
    if (fleetProblem) return c.json<ErrorBody>({ error: fleetProblem, reason: 'config', issues: [{ path: 'cluster.workers', message: fleetProblem }] }, 400);
    const runId = newRunId();
    // The coordinator starts the run's worker chains itself (where the Worker has its work queue).
    const created = await coordinator(c.env.COORDINATOR, runId).create(runId, config, manifest, target.manifest);
    if (!created.ok) return failure(c, created);
    // KV is eventually consistent (https://developers.cloudflare.com/kv/concepts/how-kv-works/): a
    // resend reaching another location within about a minute may not see this yet.
    if (requestKey) await c.env.KV.put(runRequestKey(requestKey), runId, { expirationTtl: IDEMPOTENCY_TTL_S });
    return c.json<RunCreated>(await runCreated(c, created.value), 201);
  })
  .get('/', read, limitQuery, async (c) => {
    const { keys, complete } = await listKeys<RunSummary>(c.env.KV, RUN_INDEX_PREFIX);
    const summaries = await Promise.all(keys.map(async (k) => k.metadata ?? ((await c.env.KV.get<RunSummary>(k.name, 'json')) as RunSummary | null)));
    const all = summaries.filter((s): s is RunSummary => s !== null).sort((a, b) => b.createdAt - a.createdAt);
    const { limit } = c.req.valid('query');
    return c.json({ runs: limit === undefined ? all : all.slice(0, limit), ...(complete ? {} : { truncated: true }) });
  })
  .get('/:id', read, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.status();
    return r.ok ? c.json<RunStatus>(r.value) : failure(c, r);
  })
  .get('/:id/metrics', read, sinceQuery, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.metrics(c.req.valid('query').since ?? -1);
    return r.ok ? c.json(r.value) : failure(c, r);
  })
  .post('/:id/cancel', control, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.cancel();
    return r.ok ? c.json<RunStatus>(r.value) : failure(c, r);
  })
  .post('/:id/resume', control, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.resume();
    return r.ok ? c.json<RunStatus>(r.value) : failure(c, r);
  })
  .post('/:id/reset', control, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.status();
    if (!r.ok) return failure(c, r);
    // The reset fails the call that asked for it, like every other call in flight.
    const error = await stub.reset().then(() => undefined, (e: unknown) => e);
    if (error !== undefined && !durableObjectBusy(error)) throw error;
    return c.json({ runId: r.value.runId, reset: true }, 202);
  })
  .get('/:id/worker-token', control, ttlQuery, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.status();
    if (!r.ok) return failure(c, r);
    const { token, expiresAt } = await runWorkerToken(c, r.value.runId, c.req.valid('query').ttlHours);
    return c.json({ runId: r.value.runId, token, expiresAt });
  })
  .post('/:id/workers', mint, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.mintWorker();
    return r.ok ? c.json<WorkerIdentity>(await identityOf(c, c.req.param('id'), r.value), 201) : failure(c, r);
  })
  .post('/:id/workers/renew', identity, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.renewWorker(c.get('identity').workerId);
    return r.ok ? c.json<WorkerIdentity>(await identityOf(c, c.req.param('id'), r.value)) : failure(c, r);
  })
  .get('/:id/model.onnx', control, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.model();
    if (!r.ok) return failure(c, r);
    return c.body(r.value, 200, { 'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename="${c.req.param('id')}.onnx"` });
  })
  .get('/:id/spec', runWorker, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const r = await stub.spec();
    return r.ok ? c.json(r.value) : failure(c, r);
  })
  .get('/:id/params/:version', runWorker, tagQuery, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const runId = c.req.param('id');
    const raw = c.req.param('version');
    // Decimal digits only: Number() would also read '0x10', '1e1', '+1' and ' 1'.
    if (!/^\d{1,15}$/.test(raw)) return c.json<ErrorBody>({ error: `version '${clip(raw, 40)}' is not an integer ≥ 0 in decimal digits`, reason: 'version' }, 400);
    const version = Number(raw);
    // Workers send the tag their lease carries, so the coordinator is not asked; without one, it says
    // which bytes are the current version (or that the version is gone or not there yet).
    let tag = c.req.valid('query').tag;
    if (tag === undefined) {
      const r = await stub.paramsVersion(version);
      if (!r.ok) return failure(c, r);
      tag = r.value.tag;
    }
    const key = paramsKey(runId, version, tag);
    let bytes = await readVersion(c.env.DATA, key);
    if (!bytes) {
      const r = await stub.paramsVersion(version);
      if (!r.ok) return failure(c, r);
      if (r.value.tag !== tag) return c.json<ErrorBody>({ error: `parameter version ${version} has no frame tagged ${tag}; the current one is tagged ${r.value.tag}`, reason: 'tag' }, 404);
      // The current version, not in this data center's cache and still being written to R2.
      bytes = await readVersion(c.env.DATA, key, STORE_WAIT_MS);
      if (!bytes) {
        c.header('retry-after', '1');
        return c.json<ErrorBody>({ error: `parameter version ${version} is still being written; ask again`, reason: 'writing' }, 503);
      }
    }
    return c.body(bytes, 200, { 'content-type': 'application/octet-stream', 'cache-control': IMMUTABLE_PRIVATE, 'x-params-tag': tag });
  })
  .post('/:id/leases', identity, tooLarge(JSON_LIMIT), json, workerBody, async (c) => {
    const { bad, stub } = runStub(c);
    if (bad) return c.json(bad, 400);
    const worker = c.get('identity').workerId;
    const r = await stub.lease(worker, c.req.valid('json').ticket);
    if (!r.ok) return failure(c, r);
    if (r.value.type !== 'lease') return c.json<LeaseReply>(r.value);
    const lease = r.value.lease;
    const token = await leaseToken(await signingKey(c.env.API_TOKEN!), lease.runId, lease.leaseId, worker, { expiresAt: lease.expiresAt, maxBytes: Math.min(lease.maxBytes, FRAME_LIMIT) });
    return c.json<LeaseReply>({ type: 'lease', lease: { ...lease, token } });
  })
  .post('/:id/chains/:chain/claim', identity, tooLarge(JSON_LIMIT), json, ticketBody, async (c) => {
    const call = chainCall(c);
    if (call instanceof Response) return call;
    const r = await call.stub.claimChain(call.chain, c.req.valid('json'));
    return r.ok ? c.json(r.value) : failure(c, r);
  })
  .post('/:id/chains/:chain/handover', identity, tooLarge(JSON_LIMIT), json, ticketBody, async (c) => {
    const call = chainCall(c);
    if (call instanceof Response) return call;
    const r = await call.stub.handOver(call.chain, c.req.valid('json'));
    return r.ok ? c.json(r.value) : failure(c, r);
  })
  .post('/:id/leases/:lease/heartbeat', identity, (c) => leaseCall(c, (stub, lease, worker) => stub.heartbeat(lease, worker)))
  // The answer routes check the credential and the lease token before reading a byte of the body,
  // then read no more than the lease's frame can have, within a deadline (bounded-body.ts). Refusing
  // first may reset the connection of a large upload: only a caller without a valid lease sees that.
  .post('/:id/leases/:lease/gradient', identity, (c) => {
    const group = c.req.header('x-aggregator');
    if (group === undefined) return leaseCall(c, (stub, lease, worker, body) => stub.submitGradient(lease, body, worker), true);
    if (!/^\d{1,3}$/.test(group)) return c.json<ErrorBody>({ error: `x-aggregator '${group.slice(0, 20)}' is not an aggregator number (0–255)`, reason: 'aggregator' }, 400);
    const runId = c.req.param('id');
    return leaseCall(c, (_stub, lease, worker, body) => aggregator(c.env.AGGREGATOR, runId, Number(group)).submit(runId, Number(group), lease, body, worker), true);
  })
  .post('/:id/leases/:lease/eval', identity, (c) => leaseCall(c, (stub, lease, worker, body) => stub.submitEval(lease, body, worker), true));

/**
 * A call on one lease: run id, lease id and lease token (signed for the credential's worker) checked
 * before the coordinator sees it; with `withBody`, then the body read within the token's bounds.
 */
async function leaseCall<T extends SubmitReply | { deadline: number }>(
  c: Context<App>,
  call: (stub: CoordinatorRpc, lease: string, worker: string, body: ArrayBuffer) => Promise<Outcome<T>>,
  withBody = false,
) {
  const { bad, stub } = runStub(c);
  if (bad) return c.json(bad, 400);
  const lease = c.req.param('lease') ?? '';
  if (!isLeaseId(lease)) return c.json<ErrorBody>({ error: leaseIdProblem(lease), reason: 'lease-id' }, 400);
  const worker = c.get('identity').workerId;
  const bounds = await requireLeaseToken(c, c.req.param('id')!, lease, worker);
  if (bounds instanceof Response) return bounds;
  const body = withBody ? await readBoundedBody(c, bounds) : new Uint8Array(0);
  if (body instanceof Response) return body;
  const r = await call(stub, lease, worker, body.buffer);
  return r.ok ? c.json(r.value) : failure(c, r);
}
