// Listing a KV prefix past one page. A list() call returns at most 1,000 keys, in lexicographic order,
// with `list_complete` false and a `cursor` for the rest (https://developers.cloudflare.com/kv/api/list-keys/).
import type { KVNamespace, KVNamespaceListKey } from '@cloudflare/workers-types/index';

/**
 * Pages one listing may read: 100,000 keys. Each page is one of the 1,000 operations a Worker
 * invocation may make (https://developers.cloudflare.com/kv/platform/limits/), so a listing stays far
 * under that and within seconds however large the prefix grows.
 */
export const KV_LIST_MAX_PAGES = 100;

export interface KeyListing<M> {
  readonly keys: KVNamespaceListKey<M>[];
  /** False when the listing stopped at `maxPages` with keys left (the lexicographically last ones). */
  readonly complete: boolean;
}

/** Every key under `prefix`, following the cursor until the list is complete or `maxPages` are read. */
export async function listKeys<M>(kv: KVNamespace, prefix: string, maxPages = KV_LIST_MAX_PAGES): Promise<KeyListing<M>> {
  const keys: KVNamespaceListKey<M>[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const result = await kv.list<M>({ prefix, cursor });
    keys.push(...result.keys);
    if (result.list_complete) return { keys, complete: true };
    cursor = result.cursor;
  }
  return { keys, complete: false };
}
