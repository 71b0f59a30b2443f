// /v1/datasets: content-addressed dataset blocks and named manifests in R2, written once by `prepare`.
import { clip } from '../../shared/schema/clip';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { R2Bucket } from '@cloudflare/workers-types/index';
import { checkManifest, sha256Hex, type DatasetManifest } from '../../shared/data/blocks';
import { blockKey, datasetNameKey, manifestKey } from '../../shared/storage-keys';
import type { Env } from '../env';
import { requireAccess } from './auth';
import { jsonBody } from './json-body';
import { IMMUTABLE_PRIVATE, type ErrorBody } from './respond';

const control = requireAccess('control');
const anyWorker = requireAccess('any-worker');

type App = { Bindings: Env };

const BLOCK_LIMIT = 64 * 1024 * 1024;
const SHA256 = /^[0-9a-f]{64}$/;
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;


/** A manifest by name or id; undefined when none is stored. */
export async function findManifest(bucket: R2Bucket, nameOrId: string): Promise<DatasetManifest | undefined> {
  let id = nameOrId;
  if (!SHA256.test(nameOrId)) {
    if (!NAME.test(nameOrId)) return undefined;
    const pointer = await bucket.get(datasetNameKey(nameOrId));
    if (!pointer) return undefined;
    id = await pointer.text();
  }
  const key = manifestKey(id);
  const object = await bucket.get(key);
  if (!object) return undefined;
  const text = await object.text();
  try {
    return checkManifest(JSON.parse(text));
  } catch (e) {
    // Stored state, not the request, is wrong: say which dataset and which object, and the way out.
    throw new Error(`dataset '${clip(nameOrId, 80)}': its stored manifest (R2 ${key}) is corrupt (${clip(e instanceof Error ? e.message : String(e), 200)}); prepare the dataset again (\`edgetrain prepare\`)`);
  }
}

export const datasets = new Hono<App>()
  .put('/blocks/:sha256', control, bodyLimit({ maxSize: BLOCK_LIMIT, onError: (c) => c.json<ErrorBody>({ error: `block exceeds ${BLOCK_LIMIT} bytes`, reason: 'too-large' }, 413) }), async (c) => {
    // The body is read before any answer: answering before it is read resets the connection.
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    const sha = c.req.param('sha256');
    if (!SHA256.test(sha)) return c.json<ErrorBody>({ error: `'${sha.slice(0, 80)}' is not a SHA-256 hex digest`, reason: 'hash' }, 400);
    if (await c.env.DATA.head(blockKey(sha))) return c.json({ stored: false, sha256: sha });
    const actual = await sha256Hex(bytes);
    if (actual !== sha) return c.json<ErrorBody>({ error: `body hashes to ${actual}, not ${sha}`, reason: 'hash' }, 400);
    await c.env.DATA.put(blockKey(sha), bytes);
    return c.json({ stored: true, sha256: sha }, 201);
  })
  .get('/blocks/:sha256', anyWorker, async (c) => {
    const sha = c.req.param('sha256');
    if (!SHA256.test(sha)) return c.json<ErrorBody>({ error: `'${sha.slice(0, 80)}' is not a SHA-256 hex digest`, reason: 'hash' }, 400);
    const object = await c.env.DATA.get(blockKey(sha));
    if (!object) return c.json<ErrorBody>({ error: `no dataset block ${sha}`, reason: 'unknown-block' }, 404);
    return c.body(await object.arrayBuffer(), 200, { 'content-type': 'application/octet-stream', 'cache-control': IMMUTABLE_PRIVATE });
  })
  .put('/:name', control, bodyLimit({ maxSize: 1024 * 1024, onError: (c) => c.json<ErrorBody>({ error: 'manifest exceeds 1 MiB', reason: 'too-large' }, 413) }), jsonBody(), async (c) => {
    const name = c.req.param('name');
    if (!NAME.test(name)) return c.json<ErrorBody>({ error: `dataset name '${name.slice(0, 80)}' is malformed: lowercase letters, digits, '.', '_', '-'`, reason: 'name' }, 400);
    let manifest: DatasetManifest;
    try {
      manifest = await checkManifest(await c.req.json());
    } catch (e) {
      return c.json<ErrorBody>({ error: e instanceof Error ? e.message : String(e), reason: 'manifest' }, 400);
    }
    const blocks = [...manifest.train.blocks, ...manifest.test.blocks];
    const present = await Promise.all(blocks.map((b) => c.env.DATA.head(blockKey(b.sha256))));
    const missing = blocks.filter((_, i) => !present[i]).map((b) => b.sha256);
    if (missing.length) return c.json<ErrorBody>({ error: `${missing.length} block(s) are not uploaded: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}`, reason: 'missing-blocks' }, 409);
    const existing = await c.env.DATA.head(manifestKey(manifest.id));
    if (!existing) await c.env.DATA.put(manifestKey(manifest.id), JSON.stringify(manifest));
    await c.env.DATA.put(datasetNameKey(name), manifest.id);
    return c.json({ id: manifest.id, name, stored: !existing }, existing ? 200 : 201);
  })
  .get('/:name', anyWorker, async (c) => {
    const manifest = await findManifest(c.env.DATA, c.req.param('name'));
    if (!manifest) return c.json<ErrorBody>({ error: `dataset '${c.req.param('name').slice(0, 80)}' is not prepared`, reason: 'unknown-dataset' }, 404);
    return c.json(manifest);
  });
