// The API as a gradient worker (and the CLI) speaks it: the typed Hono client over any fetch.
import { hc } from 'hono/client';
import type { DatasetManifest } from '../../shared/data/blocks';
import { CAPTIONS_PREFIX, type CaptionSetEntry, type CaptionStore, type ClassCaptions } from '../../shared/text/caption-store';
import type { ImageCaptionIndex, ImageCaptionStore } from '../../shared/text/image-captions';
import { credentialClaims } from '../../shared/auth';
import type { ChainClaim, ChainTicket, Lease, LeaseReply, RunCreated, RunMetrics, RunRequest, RunSpec, RunStatus, SubmitReply, WorkerIdentity } from '../../shared/protocol';
import { decodeParams, frameTag, type DecodedParameterSet } from '../../shared/wire';
import type { AppType } from '../api/app';
import type { ErrorBody } from '../api/respond';

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
  ) {
    super(`HTTP ${status}: ${body.error}${body.issues?.length ? `\n  ${body.issues.map((i) => `${i.path}: ${i.message}`).join('\n  ')}` : ''}`);
  }
}

async function expectOk(res: Response): Promise<Response> {
  if (res.ok) return res;
  const text = await res.text();
  let body: ErrorBody;
  try {
    body = JSON.parse(text) as ErrorBody;
  } catch {
    body = { error: text.slice(0, 500) || res.statusText };
  }
  throw new ApiError(res.status, body);
}

function floatsToBase64(vectors: Float32Array): string {
  const b = new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength);
  let binary = '';
  for (let i = 0; i < b.length; i += 0x8000) binary += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(binary);
}

type Auth = { readonly authorization: string };

const leaseParams = (lease: Lease) => ({ param: { id: lease.runId, lease: lease.leaseId } });
const leaseInit = (auth: Auth, lease: Lease, body?: Uint8Array<ArrayBuffer>) => ({
  headers: { ...auth, 'x-lease-token': lease.token, ...(body && lease.aggregator !== undefined ? { 'x-aggregator': String(lease.aggregator) } : {}) },
  ...(body ? { init: { body } } : {}),
});

/** A credential is renewed once less than this is left of it. */
const RENEW_BEFORE_MS = 60 * 60_000;

/** Whether a refusal is an expired credential's (the one case a fresh identity fixes). */
async function isExpiry(res: Response): Promise<boolean> {
  if (res.status !== 401) return false;
  const body = (await res.clone().json().catch(() => ({}))) as Partial<ErrorBody>;
  return body.reason === 'expired';
}

const json = async <T>(res: Response): Promise<T> => (await (await expectOk(res)).json()) as T;
const bytes = async (res: Response): Promise<Uint8Array> => new Uint8Array(await (await expectOk(res)).arrayBuffer());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends a request again when no answer came back: at once, once, when a pooled keep-alive socket turned
 * out closed (seen after the client's event loop was blocked by a compute step); with backoff for up to
 * `retryForMs` when the API is unreachable or answers 502/503/504 (a coordinator restarting or reset,
 * after its Retry-After when it sends one) or 429 (rate-limited, after its Retry-After). Every body this
 * client sends is a buffer or string, so it can be sent again; the coordinator counts a repeated
 * submission once, and a run creation carries an Idempotency-Key the API answers a resend of with
 * the run it already created.
 */
function retrying(fetch: Fetch, retryForMs: number): Fetch {
  return async (input, init) => {
    const until = Date.now() + retryForMs;
    let staleRetried = false;
    for (let attempt = 0; ; attempt++) {
      const backoff = Math.min(2000, 100 * 2 ** attempt);
      let res: Response;
      try {
        res = await fetch(input, init);
      } catch (e) {
        const code = (e as { cause?: { code?: string } }).cause?.code;
        if (!staleRetried && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) {
          staleRetried = true;
          continue;
        }
        if ((e as Error).name === 'AbortError' || Date.now() + backoff > until) throw e;
        await sleep(backoff);
        continue;
      }
      const after = Number(res.headers.get('retry-after') ?? NaN) * 1000;
      const wait = res.status === 429 ? (Number.isFinite(after) ? after : 1000) : [502, 503, 504].includes(res.status) ? Math.max(backoff, Number.isFinite(after) ? after : 0) : 0;
      if (!wait || Date.now() + wait > until) return res;
      await res.body?.cancel();
      await sleep(wait);
    }
  };
}

export interface ApiClientOptions {
  /**
   * The API token (operator), a run's worker token, or a worker credential, sent as a bearer token.
   * With either of the first two the client mints a worker identity the first time it works on a run
   * (POST /v1/runs/:id/workers) and sends its credential on the lease, answer and chain calls,
   * renewing it before it expires and minting again when it did; a credential is used as it is.
   */
  readonly token?: string;
  readonly fetch?: Fetch;
  /** How long to keep retrying while the API is unreachable or restarting (default 0: fail at once). */
  readonly retryForMs?: number;
}

export class ApiClient {
  private readonly client: ReturnType<typeof hc<AppType>>;
  private readonly fetch: Fetch;
  private readonly headers: Record<string, string>;
  /** The worker identity per run: minted on first use, or the credential the client was given. */
  private readonly identities = new Map<string, Promise<WorkerIdentity>>();
  /** Whether the token can mint identities (an API or worker token, not a credential). */
  private readonly mints: boolean;
  private latest: WorkerIdentity | undefined;

  constructor(
    readonly baseUrl: string,
    opts: ApiClientOptions = {},
  ) {
    const fetch = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.fetch = retrying(fetch, opts.retryForMs ?? 0);
    this.headers = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
    this.client = hc<AppType>(baseUrl, { fetch: this.fetch, headers: this.headers });
    const given = opts.token ? credentialClaims(opts.token) : undefined;
    this.mints = opts.token !== undefined && !given;
    if (given) {
      this.latest = { workerId: given.workerId, credential: opts.token!, expiresAt: given.expiresAt };
      this.identities.set(given.runId, Promise.resolve(this.latest));
    }
  }

  /** The id the coordinator gave this client's latest identity (undefined before its first lease call). */
  get workerId(): string | undefined {
    return this.latest?.workerId;
  }

  /** A new worker identity for run `id` (needs the run's worker token or the API token). */
  mintWorker(id: string): Promise<WorkerIdentity> {
    return this.client.v1.runs[':id'].workers.$post({ param: { id } }).then((r) => json<WorkerIdentity>(r));
  }

  /** This client's identity on run `id`: minted on first use, renewed when little of it is left. */
  async identity(id: string): Promise<WorkerIdentity> {
    let current = this.identities.get(id);
    if (!current) {
      if (!this.mints) throw new Error(`this client holds no worker identity for run ${id} and its token cannot mint one: give it the run's worker token`);
      current = this.mintWorker(id);
      this.identities.set(id, current);
      current.catch(() => this.identities.delete(id));
    }
    let identity = await current;
    // A chain's credential comes with its queue message and is not renewed (its invocations last minutes).
    const renewable = !identity.workerId.startsWith('chain-');
    if (renewable && identity.expiresAt - Date.now() < RENEW_BEFORE_MS && identity.expiresAt > Date.now()) {
      const renewed = this.client.v1.runs[':id'].workers.renew.$post({ param: { id } }, { headers: { authorization: `Bearer ${identity.credential}` } }).then((r) => json<WorkerIdentity>(r));
      this.identities.set(id, renewed);
      renewed.catch(() => this.identities.delete(id));
      identity = await renewed;
    }
    this.latest = identity;
    return identity;
  }

  /** Sends a worker call with the run's credential; an expired one is replaced by a fresh identity and the call sent again. */
  private async asWorker(id: string, send: (auth: Auth) => Promise<Response>): Promise<Response> {
    const identity = await this.identity(id);
    const res = await send({ authorization: `Bearer ${identity.credential}` });
    if (!this.mints || !(await isExpiry(res))) return res;
    const current = this.identities.get(id);
    if (current && (await current) === identity) this.identities.delete(id);
    const fresh = await this.identity(id);
    return send({ authorization: `Bearer ${fresh.credential}` });
  }

  /** Sent once: a repeated creation would start a second run. */
  createRun(request: RunRequest): Promise<RunCreated> {
    // Retried like any call, under one Idempotency-Key: a resend gets the run the first request made.
    return this.client.v1.runs.$post({ json: request }, { headers: { 'idempotency-key': crypto.randomUUID() } }).then((r) => json<RunCreated>(r));
  }

  resume(id: string): Promise<RunStatus> {
    return this.client.v1.runs[':id'].resume.$post({ param: { id } }).then((r) => json<RunStatus>(r));
  }

  /** The token a run's workers join with (needs the API token), valid `ttlHours` (default: the API's, 7 days). */
  workerToken(id: string, ttlHours?: number): Promise<string> {
    return this.client.v1.runs[':id']['worker-token']
      .$get({ param: { id }, query: ttlHours === undefined ? {} : { ttlHours: String(ttlHours) } })
      .then((r) => json<{ token: string }>(r))
      .then((r) => r.token);
  }

  /** Runs, newest first; with `limit`, only the newest that many. */
  listRuns(limit?: number) {
    return this.client.v1.runs.$get({ query: limit === undefined ? {} : { limit: String(limit) } }).then((r) => json<{ runs: { runId: string; state: string; createdAt: number }[]; truncated?: true }>(r));
  }

  status(id: string): Promise<RunStatus> {
    return this.client.v1.runs[':id'].$get({ param: { id } }).then((r) => json<RunStatus>(r));
  }

  metrics(id: string, since = -1): Promise<RunMetrics> {
    return this.client.v1.runs[':id'].metrics.$get({ param: { id }, query: { since: String(since) } }).then((r) => json<RunMetrics>(r));
  }

  cancel(id: string): Promise<RunStatus> {
    return this.client.v1.runs[':id'].cancel.$post({ param: { id } }).then((r) => json<RunStatus>(r));
  }

  model(id: string): Promise<Uint8Array> {
    return this.client.v1.runs[':id']['model.onnx'].$get({ param: { id } }).then(bytes);
  }

  spec(id: string): Promise<RunSpec> {
    return this.client.v1.runs[':id'].spec.$get({ param: { id } }).then((r) => json<RunSpec>(r));
  }

  /**
   * Parameter version `version`. With `tag` (a lease's paramsTag) it is read from storage without asking
   * the coordinator, and the bytes must be that frame; without, the coordinator names the current one.
   */
  async params(id: string, version: number, tag?: string): Promise<DecodedParameterSet> {
    const frame = await this.client.v1.runs[':id'].params[':version'].$get({ param: { id, version: String(version) }, query: tag ? { tag } : {} }).then(bytes);
    if (tag !== undefined && frameTag(frame) !== tag) throw new Error(`parameter version ${version}: got the frame tagged ${frameTag(frame)}, the lease names ${tag}`);
    const set = decodeParams(frame);
    if (set.version !== version) throw new Error(`asked for parameter version ${version}, got version ${set.version}`);
    return set;
  }

  /** A lease, or why not; a supervised chain's invocation sends its ticket. */
  lease(id: string, ticket?: ChainTicket): Promise<LeaseReply> {
    return this.asWorker(id, (headers) => this.client.v1.runs[':id'].leases.$post({ param: { id }, json: ticket ? { ticket } : {} }, { headers })).then((r) => json<LeaseReply>(r));
  }

  /** Claims the chain this client's credential names for the delivery `ticket`: go on, or stop. */
  async claimChain(id: string, ticket: ChainTicket): Promise<ChainClaim> {
    const chain = (await this.identity(id)).workerId;
    return this.asWorker(id, (headers) => this.client.v1.runs[':id'].chains[':chain'].claim.$post({ param: { id, chain }, json: ticket }, { headers })).then((r) => json<ChainClaim>(r));
  }

  /** Hands the chain over to its next invocation (the coordinator sends its message). */
  async handOver(id: string, ticket: ChainTicket): Promise<{ handedOver: boolean }> {
    const chain = (await this.identity(id)).workerId;
    return this.asWorker(id, (headers) => this.client.v1.runs[':id'].chains[':chain'].handover.$post({ param: { id, chain }, json: ticket }, { headers })).then((r) => json<{ handedOver: boolean }>(r));
  }

  heartbeat(lease: Lease): Promise<{ deadline: number }> {
    return this.asWorker(lease.runId, (auth) => this.client.v1.runs[':id'].leases[':lease'].heartbeat.$post(leaseParams(lease), leaseInit(auth, lease))).then((r) => json<{ deadline: number }>(r));
  }

  /** Posts a gradient frame; resolves to the coordinator's reply, rejects with ApiError on refusal. */
  submitGradient(lease: Lease, frame: Uint8Array<ArrayBuffer>): Promise<SubmitReply> {
    return this.asWorker(lease.runId, (auth) => this.client.v1.runs[':id'].leases[':lease'].gradient.$post(leaseParams(lease), leaseInit(auth, lease, frame))).then((r) => json<SubmitReply>(r));
  }

  submitEval(lease: Lease, frame: Uint8Array<ArrayBuffer>): Promise<SubmitReply> {
    return this.asWorker(lease.runId, (auth) => this.client.v1.runs[':id'].leases[':lease'].eval.$post(leaseParams(lease), leaseInit(auth, lease, frame))).then((r) => json<SubmitReply>(r));
  }

  /** A caption set's stored vectors (an embeddings frame). */
  captionSet(hash: string): Promise<Uint8Array> {
    return this.client.v1.captions[':hash'].$get({ param: { hash } }).then(bytes);
  }

  /** The response headers of a HEAD request, or undefined when the resource is not there (404). */
  private async head(url: URL): Promise<Headers | undefined> {
    const res = await this.fetch(url, { method: 'HEAD', headers: this.headers });
    if (res.status === 404) return undefined;
    return (await expectOk(res)).headers;
  }

  /** PUTs a JSON body (hono's client has no typed JSON body for routes that parse it themselves). */
  private putJson<T>(url: URL, body: unknown): Promise<T> {
    return this.fetch(url, { method: 'PUT', headers: { ...this.headers, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => json<T>(r));
  }

  /** A stored set's manifest entry (a HEAD request), or undefined. */
  async captionSetEntry(hash: string): Promise<CaptionSetEntry | undefined> {
    const header = (await this.head(this.client.v1.captions[':hash'].$url({ param: { hash } })))?.get('x-caption-set');
    return header ? (JSON.parse(header) as CaptionSetEntry) : undefined;
  }

  captionSets(): Promise<{ sets: CaptionSetEntry[] }> {
    return this.client.v1.captions.$get().then((r) => json<{ sets: CaptionSetEntry[] }>(r));
  }

  /** The API as a caption store, for sets encoded on this side (the CLI's BERT). */
  captionStore(): CaptionStore {
    return {
      entry: (key) => this.captionSetEntry(key.slice(CAPTIONS_PREFIX.length)),
      put: async (entry, classes, vectors) => {
        await this.putCaptionSet(entry.key.slice(CAPTIONS_PREFIX.length), { name: entry.name, encoder: entry.encoder, dim: entry.dim, classes, vectors: floatsToBase64(vectors) });
      },
    };
  }

  /** The API as a store of per-image caption sets (chunks, then the index). */
  imageCaptionStore(): ImageCaptionStore {
    const chunkUrl = (hash: string) => this.client.v1.captions.chunks[':hash'].$url({ param: { hash } });
    const indexUrl = (hash: string) => this.client.v1.captions.images[':hash'].$url({ param: { hash } });
    return {
      chunkDim: async (hash) => {
        const headers = await this.head(chunkUrl(hash));
        return headers ? Number(headers.get('x-caption-dim')) : undefined;
      },
      putChunk: async (hash, encoder, dim, texts, vectors) => void (await this.putJson(chunkUrl(hash), { encoder, dim, texts, vectors: floatsToBase64(vectors) })),
      hasIndex: async (hash) => (await this.head(indexUrl(hash))) !== undefined,
      putIndex: async (hash, index) => void (await this.putJson(indexUrl(hash), index)),
    };
  }

  imageCaptionIndex(hash: string): Promise<ImageCaptionIndex> {
    return this.client.v1.captions.images[':hash'].$get({ param: { hash } }).then((r) => json<ImageCaptionIndex>(r));
  }

  captionChunk(hash: string): Promise<Uint8Array> {
    return this.client.v1.captions.chunks[':hash'].$get({ param: { hash } }).then(bytes);
  }

  /** Stores vectors encoded here; `hit` when the set was already stored. */
  putCaptionSet(hash: string, body: { name: string; encoder: string; dim: number; classes: ClassCaptions; vectors: string }): Promise<{ key: string; hit: boolean }> {
    return this.putJson(this.client.v1.captions[':hash'].$url({ param: { hash } }), body);
  }

  block(sha256: string): Promise<Uint8Array> {
    return this.client.v1.datasets.blocks[':sha256'].$get({ param: { sha256 } }).then(bytes);
  }

  /** Uploads a block; false when it was already stored. */
  putBlock(sha256: string, data: Uint8Array<ArrayBuffer>): Promise<boolean> {
    return this.client.v1.datasets.blocks[':sha256'].$put({ param: { sha256 } }, { init: { body: data } }).then((r) => json<{ stored: boolean }>(r)).then((r) => r.stored);
  }

  putManifest(name: string, manifest: DatasetManifest): Promise<{ id: string; stored: boolean }> {
    return this.putJson(this.client.v1.datasets[':name'].$url({ param: { name } }), manifest);
  }

  async manifest(name: string): Promise<DatasetManifest | undefined> {
    const res = await this.client.v1.datasets[':name'].$get({ param: { name } });
    if (res.status === 404) return undefined;
    return json<DatasetManifest>(res);
  }
}
