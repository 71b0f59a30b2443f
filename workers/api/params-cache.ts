// Parameter versions as workers read them: from the data center's cache when another worker there has
// read the same version, else from R2 (then cached). A version's bytes never change, so a cached copy
// is never stale. The Cache API only works on a custom domain: on *.workers.dev its operations do
// nothing and every read goes to R2 (https://developers.cloudflare.com/workers/runtime-apis/cache/).
import type { R2Bucket } from '@cloudflare/workers-types/index';

/** The cache key: not a routable URL, so only this code can fill it, and no token is part of it. */
const cacheKey = (key: string) => `https://params.edgetrain.internal/${key}`;

/** How long a data center keeps a version: a step takes seconds, so minutes cover every worker's read. */
const CACHE_SECONDS = 600;

const defaultCache = (): Cache | undefined => (typeof caches === 'undefined' ? undefined : (caches as unknown as { default: Cache }).default);

/** The bytes stored under `key`, or undefined when R2 has no such object. */
export async function readVersion(bucket: R2Bucket, key: string): Promise<ArrayBuffer | undefined> {
  const cache = defaultCache();
  const hit = await cache?.match(cacheKey(key));
  if (hit) return hit.arrayBuffer();
  const object = await bucket.get(key);
  if (!object) return undefined;
  const bytes = await object.arrayBuffer();
  await cache?.put(cacheKey(key), new Response(bytes, { headers: { 'cache-control': `public, max-age=${CACHE_SECONDS}` } }));
  return bytes;
}
