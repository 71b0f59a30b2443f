// /v1/captions: class caption sets embedded once and kept in KV, content-addressed, with a manifest.
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { KVNamespace } from '@cloudflare/workers-types/index';
import { CAPTIONS_PREFIX, captionSetErrors, captionSetKey, precomputeCaptionSet, type CaptionSetEntry, type CaptionStore, type ClassCaptions } from '../../shared/text/caption-store';
import { WorkersAiEncoder } from '../../shared/text/workers-ai-encoder';
import { embeddingsBytes, encodeEmbeddings } from '../../shared/wire/embeddings';
import type { Env } from '../env';
import type { ErrorBody } from './respond';

type App = { Bindings: Env };

const HASH = /^[0-9a-f]{64}$/;
const NAME = /^[\w.-]{1,64}$/;
const LIMIT = 16 * 1024 * 1024;
const tooLarge = bodyLimit({ maxSize: LIMIT, onError: (c) => c.json<ErrorBody>({ error: `request body exceeds ${LIMIT} bytes`, reason: 'too-large' }, 413) });

export function kvCaptionStore(kv: KVNamespace): CaptionStore {
  return {
    entry: async (key) => (await kv.getWithMetadata<CaptionSetEntry>(key, 'stream').then(({ value, metadata }) => (void value?.cancel(), metadata))) ?? undefined,
    put: (entry, _classes, vectors) => kv.put(entry.key, encodeEmbeddings({ encoder: entry.encoder, rows: entry.classes * entry.perClass, dim: entry.dim, data: vectors }), { metadata: entry }),
  };
}

/** The stored vectors of a set, or null. */
export function readCaptionSet(kv: KVNamespace, hash: string): Promise<{ value: ArrayBuffer | null; metadata: CaptionSetEntry | null }> {
  return kv.getWithMetadata<CaptionSetEntry>(`${CAPTIONS_PREFIX}${hash}`, 'arrayBuffer');
}

function bodyErrors(body: unknown, fields: readonly string[]): string[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['(body): must be a JSON object'];
  const unknown = Object.keys(body).filter((k) => !fields.includes(k));
  return unknown.map((k) => `${k}: unknown field`);
}

const invalid = (errors: string[]): ErrorBody => ({
  error: 'invalid caption set',
  reason: 'captions',
  issues: errors.map((e) => {
    const colon = e.indexOf(':');
    return { path: e.slice(0, colon), message: e.slice(colon + 1).trim() };
  }),
});

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

export const captions = new Hono<App>()
  .get('/', async (c) => {
    const entries: CaptionSetEntry[] = [];
    let cursor: string | undefined;
    do {
      const page = await c.env.KV.list<CaptionSetEntry>({ prefix: CAPTIONS_PREFIX, cursor });
      for (const k of page.keys) if (k.metadata) entries.push(k.metadata);
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    return c.json({ sets: entries });
  })
  .get('/:hash', async (c) => {
    const hash = c.req.param('hash');
    if (!HASH.test(hash)) return c.json<ErrorBody>({ error: `'${hash.slice(0, 80)}' is not a caption set hash (64 hex digits)`, reason: 'hash' }, 400);
    const { value, metadata } = await readCaptionSet(c.env.KV, hash);
    if (!value) return c.json<ErrorBody>({ error: `caption set ${hash} is not stored`, reason: 'unknown-captions' }, 404);
    return c.body(value, 200, { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=31536000, immutable', ...(metadata ? { 'x-caption-set': JSON.stringify(metadata) } : {}) });
  })
  // Vectors encoded elsewhere (the CLI's BERT): the key is recomputed from the texts and must match.
  .put('/:hash', tooLarge, async (c) => {
    const body = await c.req.json().catch(() => undefined);
    const hash = c.req.param('hash');
    if (!HASH.test(hash)) return c.json<ErrorBody>({ error: `'${hash.slice(0, 80)}' is not a caption set hash (64 hex digits)`, reason: 'hash' }, 400);
    const errors = bodyErrors(body, ['name', 'encoder', 'dim', 'classes', 'vectors']);
    const b = (body ?? {}) as { name?: unknown; encoder?: unknown; dim?: unknown; classes?: unknown; vectors?: unknown };
    if (typeof b.name !== 'string' || !NAME.test(b.name)) errors.push(`name: must be 1–64 letters, digits, '.', '_' or '-'`);
    if (typeof b.encoder !== 'string' || !b.encoder) errors.push('encoder: must name the encoder');
    if (!Number.isInteger(b.dim) || (b.dim as number) < 1 || (b.dim as number) > 4096) errors.push('dim: must be an integer in 1..4096');
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
  .post('/', tooLarge, async (c) => {
    const body = await c.req.json().catch(() => undefined);
    const errors = bodyErrors(body, ['name', 'classes']);
    const b = (body ?? {}) as { name?: unknown; classes?: unknown };
    if (typeof b.name !== 'string' || !NAME.test(b.name)) errors.push(`name: must be 1–64 letters, digits, '.', '_' or '-'`);
    errors.push(...captionSetErrors(b.classes));
    if (errors.length) return c.json(invalid(errors), 400);
    if (!c.env.AI) {
      return c.json<ErrorBody>({ error: 'no Workers AI binding (AI) here: precompute with the CLI (`edgetrain captions`) and a BERT model instead', reason: 'no-encoder' }, 501);
    }
    const report = await precomputeCaptionSet(kvCaptionStore(c.env.KV), new WorkersAiEncoder(c.env.AI), b.name as string, b.classes as ClassCaptions);
    return c.json(report, report.hit ? 200 : 201);
  });
