// Parameter versions in the data center's cache (the Cache API), in front of R2: the coordinator puts
// each new version there when it publishes it, and the API looks there before R2. A version's bytes
// never change (its key names its checksum), so a cached copy is never stale. Cache contents stay in
// the data center that wrote them, and on *.workers.dev the Cache API does nothing: every read then
// goes to R2 (https://developers.cloudflare.com/workers/runtime-apis/cache/).
import type { R2Bucket } from '@cloudflare/workers-types/index';

/** The cache key: not a routable URL, so only this code can fill it, and no token is part of it. */
const cacheUrl = (key: string) => `https://params.edgetrain.internal/${key}`;

/** How long a data center keeps a version at most (the coordinator deletes it once it is superseded). */
const CACHE_SECONDS = 120;

const defaultCache = (): Cache | undefined => (typeof caches === 'undefined' ? undefined : (caches as unknown as { default: Cache }).default);

export async function cacheDelete(key: string): Promise<void> {
  await defaultCache()?.delete(cacheUrl(key));
}

export async function cachePut(key: string, bytes: Uint8Array<ArrayBuffer>): Promise<void> {
  await defaultCache()?.put(cacheUrl(key), new Response(bytes, { headers: { 'cache-control': `public, max-age=${CACHE_SECONDS}` } }));
}

/**
 * The bytes stored under `key`: from the cache, else from R2 (then cached), polling R2 for up to
 * `waitMs` while it does not have them yet. Undefined when neither has them.
 */
export async function readVersion(bucket: R2Bucket, key: string, waitMs = 0): Promise<ArrayBuffer | undefined> {
  const hit = await defaultCache()?.match(cacheUrl(key));
  if (hit) return hit.arrayBuffer();
  const until = Date.now() + waitMs;
  for (;;) {
    const object = await bucket.get(key);
    if (object) {
      const bytes = new Uint8Array(await object.arrayBuffer());
      await cachePut(key, bytes);
      return bytes.buffer;
    }
    if (Date.now() >= until) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}
