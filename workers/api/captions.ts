// /v1/captions: class caption sets embedded once and kept in KV, content-addressed, with a manifest.
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { KVNamespace } from '@cloudflare/workers-types/index';
import { CAPTIONS_PREFIX, captionSetErrors, captionSetSizeProblem, captionSetKey, precomputeCaptionSet, type CaptionSetEntry, type CaptionStore, type ClassCaptions } from '../../shared/text/caption-store';
import { checkCaptionText } from '../../shared/text/caption-file';
import { CAPTION_CHUNKS_PREFIX, CHUNK_ROWS, IMAGE_CAPTIONS_PREFIX, chunkHash, imageCaptionHash, type ImageCaptionIndex } from '../../shared/text/image-captions';
import { WORKERS_AI_DIM, WORKERS_AI_ENCODER_ID, WorkersAiEncoder } from '../../shared/text/workers-ai-encoder';
import { embeddingsBytes, encodeEmbeddings } from '../../shared/wire/embeddings';
import { fieldIssues } from '../../shared/protocol';
import { int } from '../../shared/schema/fields';
import { schemaErrors } from '../../shared/schema/issues';
import type { Env } from '../env';
import { requireAccess } from './auth';
import { jsonBody } from './json-body';
import { listKeys } from './kv-list';
import { IMMUTABLE_PRIVATE, type ErrorBody } from './respond';

const control = requireAccess('control');
const anyWorker = requireAccess('any-worker');
const json = jsonBody();

type App = { Bindings: Env };

const HASH = /^[0-9a-f]{64}$/;
const NAME = /^[\w.-]{1,64}$/;
const EMBEDDING_DIM = int(1, 4096);
const LIMIT = 16 * 1024 * 1024;
const tooLarge = bodyLimit({ maxSize: LIMIT, onError: (c) => c.json<ErrorBody>({ error: `request body exceeds ${LIMIT} bytes`, reason: 'too-large' }, 413) });

/** Whether a key exists and its metadata, without reading the value (its stream is cancelled). */
export async function kvHead<M>(kv: KVNamespace, key: string): Promise<{ metadata: M | null } | undefined> {
  const { value, metadata } = await kv.getWithMetadata<M>(key, 'stream');
  if (value === null) return undefined;
  await value.cancel();
  return { metadata };
}

export function kvCaptionStore(kv: KVNamespace): CaptionStore {
  return {
    entry: async (key) => (await kvHead<CaptionSetEntry>(kv, key))?.metadata ?? undefined,
    put: (entry, _classes, vectors) => kv.put(entry.key, encodeEmbeddings({ encoder: entry.encoder, rows: entry.classes * entry.perClass, dim: entry.dim, data: vectors }), { metadata: entry }),
  };
}

function bodyErrors(body: unknown, fields: readonly string[]): string[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['(body): must be a JSON object'];
  const unknown = Object.keys(body).filter((k) => !fields.includes(k));
  return unknown.map((k) => `${k}: unknown field`);
}

const invalid = (errors: string[]): ErrorBody => ({ error: 'invalid caption set', reason: 'captions', issues: fieldIssues(errors) });

function base64ToFloats(b64: string): Float32Array | undefined {
  try {
    const bin = atob(b64);
    if (bin.length % 4 !== 0) return undefined;
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  } catch {
    return undefined;
  }
}

async function listMetadata<T>(kv: KVNamespace, prefix: string): Promise<T[]> {
  const { keys } = await listKeys<T>(kv, prefix);
  return keys.flatMap((k) => (k.metadata ? [k.metadata] : []));
}

/** What the manifest says of an image caption set. */
export interface ImageCaptionEntry {
  readonly hash: string;
  readonly name: string;
  readonly encoder: string;
  readonly dim: number;
  readonly train: number;
  readonly test: number;
}

const nameErrors = (name: unknown): string[] => (typeof name === 'string' && NAME.test(name) ? [] : [`name: must be 1–64 letters, digits, '.', '_' or '-'`]);
const badHash = (hash: string): ErrorBody => ({ error: `'${hash.slice(0, 80)}' is not a hash (64 hex digits)`, reason: 'hash' });

export const captions = new Hono<App>()
  .get('/', anyWorker, async (c) => {
    const [sets, imageSets] = await Promise.all([listMetadata<CaptionSetEntry>(c.env.KV, CAPTIONS_PREFIX), listMetadata<ImageCaptionEntry>(c.env.KV, IMAGE_CAPTIONS_PREFIX)]);
    return c.json({ sets, imageSets });
  })
  .get('/chunks/:hash', anyWorker, async (c) => {
    const hash = c.req.param('hash');
    if (!HASH.test(hash)) return c.json(badHash(hash), 400);
    const { value, metadata } = await c.env.KV.getWithMetadata<{ dim: number }>(`${CAPTION_CHUNKS_PREFIX}${hash}`, 'arrayBuffer');
    if (!value) return c.json<ErrorBody>({ error: `caption chunk ${hash} is not stored`, reason: 'unknown-chunk' }, 404);
    return c.body(value, 200, { 'content-type': 'application/octet-stream', 'cache-control': IMMUTABLE_PRIVATE, 'x-caption-dim': String(metadata?.dim ?? '') });
  })
  .put('/chunks/:hash', control, tooLarge, json, async (c) => {
    const body = await c.req.json().catch(() => undefined);
    const hash = c.req.param('hash');
    if (!HASH.test(hash)) return c.json(badHash(hash), 400);
    const errors = bodyErrors(body, ['encoder', 'dim', 'texts', 'vectors']);
    const b = (body ?? {}) as { encoder?: unknown; dim?: unknown; texts?: unknown; vectors?: unknown };
    if (typeof b.encoder !== 'string' || !b.encoder) errors.push('encoder: must name the encoder');
    errors.push(...schemaErrors(EMBEDDING_DIM, b.dim, 'dim'));
    if (!Array.isArray(b.texts) || b.texts.length === 0 || b.texts.length > CHUNK_ROWS) errors.push(`texts: must list 1..${CHUNK_ROWS} captions`);
    else
      b.texts.forEach((t, i) => {
        try {
          checkCaptionText(typeof t === 'string' ? t : '', `texts[${i}]`);
        } catch (e) {
          errors.push((e as Error).message);
        }
      });
    const vectors = typeof b.vectors === 'string' ? base64ToFloats(b.vectors) : undefined;
    if (!vectors) errors.push('vectors: must be base64 of little-endian float32 values');
    if (errors.length) return c.json(invalid(errors), 400);
    const texts = b.texts as string[];
    const dim = b.dim as number;
    if (vectors!.length !== texts.length * dim || vectors!.some((v) => !Number.isFinite(v))) return c.json(invalid([`vectors: must be ${texts.length} × ${dim} finite values`]), 400);
    if ((await chunkHash(b.encoder as string, texts)) !== hash) return c.json<ErrorBody>({ error: `the texts and encoder do not hash to ${hash}`, reason: 'hash' }, 400);
    const key = `${CAPTION_CHUNKS_PREFIX}${hash}`;
    if (await kvHead(c.env.KV, key)) return c.json({ hash, hit: true });
    await c.env.KV.put(key, encodeEmbeddings({ encoder: b.encoder as string, rows: texts.length, dim, data: vectors! }), { metadata: { dim } });
    return c.json({ hash, hit: false }, 201);
  })
  .get('/images/:hash', anyWorker, async (c) => {
    const hash = c.req.param('hash');
    if (!HASH.test(hash)) return c.json(badHash(hash), 400);
    const index = await c.env.KV.get<ImageCaptionIndex>(`${IMAGE_CAPTIONS_PREFIX}${hash}`, 'json');
    if (!index) return c.json<ErrorBody>({ error: `image caption set ${hash} is not stored`, reason: 'unknown-image-captions' }, 404);
    return c.json(index);
  })
  // The index of an image caption set, written last: every chunk must be stored already.
  .put('/images/:hash', control, tooLarge, json, async (c) => {
    const index = (await c.req.json().catch(() => undefined)) as ImageCaptionIndex | undefined;
    const hash = c.req.param('hash');
    if (!HASH.test(hash)) return c.json(badHash(hash), 400);
    const errors = bodyErrors(index, ['name', 'encoder', 'dim', 'train', 'test']);
    if (!errors.length) {
      errors.push(...nameErrors(index!.name));
      for (const split of ['train', 'test'] as const) {
        const s = index![split];
        const ok = s && Number.isInteger(s.count) && s.count > 0 && Number.isInteger(s.chunkRows) && s.chunkRows > 0 && Array.isArray(s.chunks) && s.chunks.length === Math.ceil(s.count / s.chunkRows) && s.chunks.every((h) => HASH.test(h));
        if (!ok) errors.push(`${split}: must be { count, chunkRows, chunks } with one chunk hash per ${'chunkRows'} records`);
      }
    }
    if (errors.length) return c.json(invalid(errors), 400);
    if ((await imageCaptionHash(index!)) !== hash) return c.json<ErrorBody>({ error: `the index hashes to something other than ${hash}`, reason: 'hash' }, 400);
    const chunks = [...index!.train.chunks, ...index!.test.chunks];
    const stored = await Promise.all(chunks.map((h) => kvHead(c.env.KV, `${CAPTION_CHUNKS_PREFIX}${h}`)));
    const missing = chunks.filter((_, i) => !stored[i]);
    if (missing.length) return c.json<ErrorBody>({ error: `${missing.length} chunk(s) are not stored (first ${missing[0]}): store the chunks before the index`, reason: 'missing-chunks' }, 409);
    const entry: ImageCaptionEntry = { hash, name: index!.name, encoder: index!.encoder, dim: index!.dim, train: index!.train.count, test: index!.test.count };
    await c.env.KV.put(`${IMAGE_CAPTIONS_PREFIX}${hash}`, JSON.stringify(index), { metadata: entry });
    return c.json({ hash, hit: false }, 201);
  })
  .get('/:hash', anyWorker, async (c) => {
    const hash = c.req.param('hash');
    if (!HASH.test(hash)) return c.json(badHash(hash), 400);
    const { value, metadata } = await c.env.KV.getWithMetadata<CaptionSetEntry>(`${CAPTIONS_PREFIX}${hash}`, 'arrayBuffer');
    if (!value) return c.json<ErrorBody>({ error: `caption set ${hash} is not stored`, reason: 'unknown-captions' }, 404);
    return c.body(value, 200, { 'content-type': 'application/octet-stream', 'cache-control': IMMUTABLE_PRIVATE, ...(metadata ? { 'x-caption-set': JSON.stringify(metadata) } : {}) });
  })
  // Vectors encoded elsewhere (the CLI's BERT): the key is recomputed from the texts and must match.
  .put('/:hash', control, tooLarge, json, async (c) => {
    const body = await c.req.json().catch(() => undefined);
    const hash = c.req.param('hash');
    if (!HASH.test(hash)) return c.json(badHash(hash), 400);
    const errors = bodyErrors(body, ['name', 'encoder', 'dim', 'classes', 'vectors']);
    const b = (body ?? {}) as { name?: unknown; encoder?: unknown; dim?: unknown; classes?: unknown; vectors?: unknown };
    errors.push(...nameErrors(b.name));
    if (typeof b.encoder !== 'string' || !b.encoder) errors.push('encoder: must name the encoder');
    errors.push(...schemaErrors(EMBEDDING_DIM, b.dim, 'dim'));
    errors.push(...captionSetErrors(b.classes));
    const vectors = typeof b.vectors === 'string' ? base64ToFloats(b.vectors) : undefined;
    if (!vectors) errors.push('vectors: must be base64 of little-endian float32 values');
    if (errors.length) return c.json(invalid(errors), 400);
    const classes = b.classes as ClassCaptions;
    const dim = b.dim as number;
    const rows = classes.length * classes[0].length;
    if (vectors!.length !== rows * dim) return c.json(invalid([`vectors: ${vectors!.length} values; ${rows} captions × ${dim} need ${rows * dim}`]), 400);
    if (vectors!.some((v) => !Number.isFinite(v))) return c.json(invalid(['vectors: a value is not finite']), 400);
    const key = await captionSetKey(b.encoder as string, classes);
    if (key !== `${CAPTIONS_PREFIX}${hash}`) return c.json<ErrorBody>({ error: `the texts and encoder hash to ${key.slice(CAPTIONS_PREFIX.length)}, not ${hash}`, reason: 'hash' }, 400);
    const store = kvCaptionStore(c.env.KV);
    if (await store.entry(key)) return c.json({ key, hit: true });
    const entry: CaptionSetEntry = { key, name: b.name as string, encoder: b.encoder as string, classes: classes.length, perClass: classes[0].length, dim, bytes: embeddingsBytes(b.encoder as string, rows, dim) };
    await store.put(entry, classes, vectors!);
    return c.json({ key, hit: false }, 201);
  })
  // Embeds a set with Workers AI (bge-base-en-v1.5) where the AI binding exists.
  .post('/', control, tooLarge, json, async (c) => {
    const body = await c.req.json().catch(() => undefined);
    const errors = bodyErrors(body, ['name', 'classes']);
    const b = (body ?? {}) as { name?: unknown; classes?: unknown };
    errors.push(...nameErrors(b.name));
    errors.push(...captionSetErrors(b.classes));
    if (errors.length) return c.json(invalid(errors), 400);
    const classes = b.classes as ClassCaptions;
    // Before any embedding is paid for: a set that cannot be stored is refused, binding or not.
    const oversize = captionSetSizeProblem(WORKERS_AI_ENCODER_ID, classes.length * classes[0].length, WORKERS_AI_DIM);
    if (oversize) return c.json(invalid([`classes: ${oversize}`]), 400);
    if (!c.env.AI) {
      return c.json<ErrorBody>({ error: 'no Workers AI binding (AI) here: precompute with the CLI (`edgetrain captions`) and a BERT model instead', reason: 'no-encoder' }, 501);
    }
    const report = await precomputeCaptionSet(kvCaptionStore(c.env.KV), new WorkersAiEncoder(c.env.AI), b.name as string, classes);
    return c.json(report, report.hit ? 200 : 201);
  });
