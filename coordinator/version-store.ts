// Parameter versions, where workers read them without the coordinator: written once per step to R2
// (and offered to the data center's cache first), read by workers through the API, never from the
// Durable Object, so its egress does not grow with the number of workers. Named by run, version and
// the frame's checksum, so a cached copy can never stand for other bytes.
import type { R2Bucket } from '@cloudflare/workers-types/index';
import { paramsKey, paramsPrefix } from '../shared/storage-keys';
import { encodeParams, frameTag, type ValueEncoding } from '../shared/wire';
import { cacheDelete, cachePut } from '../shared/params-cache';

export interface PublishedVersion {
  readonly version: number;
  /** The frame's checksum, 8 hex digits: leases carry it and workers check the bytes they get against it. */
  readonly tag: string;
}

export class VersionStore {
  constructor(
    private readonly bucket: R2Bucket,
    private readonly runId: string,
    /** The run's parameter encoding (cluster.compression.params); fp32: the dense frame. */
    private readonly encoding?: ValueEncoding,
  ) {}

  /** Version `version`'s frame and its name. */
  encode(version: number, params: Float32Array, buffers: Float32Array): { version: PublishedVersion; frame: Uint8Array<ArrayBuffer> } {
    const frame = encodeParams({ version, params, buffers }, this.encoding);
    return { version: { version, tag: frameTag(frame) }, frame };
  }

  /**
   * Offers a version to this data center's cache, where the API looks first: milliseconds, where an R2
   * write of megabytes takes tens. It may store nothing (on *.workers.dev the Cache API does nothing),
   * so readers fall back to R2 and wait there for `store`.
   */
  async cache(version: PublishedVersion, frame: Uint8Array<ArrayBuffer>): Promise<void> {
    const key = paramsKey(this.runId, version.version, version.tag);
    await cachePut(key, frame);
  }

  /** Writes a version to R2, where every worker can read it. */
  async store(version: PublishedVersion, frame: Uint8Array<ArrayBuffer>): Promise<void> {
    await this.bucket.put(paramsKey(this.runId, version.version, version.tag), frame);
  }

  /** Encodes, caches and stores version `version`; resolves once it is in R2. */
  async publish(version: number, params: Float32Array, buffers: Float32Array): Promise<PublishedVersion> {
    const encoded = this.encode(version, params, buffers);
    await Promise.all([this.cache(encoded.version, encoded.frame), this.store(encoded.version, encoded.frame)]);
    return encoded.version;
  }

  /** Deletes one parameter version, from R2 and from this data center's cache. */
  async forget(version: PublishedVersion): Promise<void> {
    const key = paramsKey(this.runId, version.version, version.tag);
    await Promise.all([this.bucket.delete(key), cacheDelete(key)]);
  }

  /** Deletes parameter versions other than `keep`. */
  forgetVersions(keep: PublishedVersion): Promise<void> {
    const kept = paramsKey(this.runId, keep.version, keep.tag);
    return this.deleteUnder(paramsPrefix(this.runId), (key) => key !== kept);
  }

  /** At most this many pages of a listing are swept at once (a run keeps one or two versions). */
  private async deleteUnder(prefix: string, doomed: (key: string) => boolean, pages = 10): Promise<void> {
    let cursor: string | undefined;
    for (let page = 0; page < pages; page++) {
      const listing = await this.bucket.list({ prefix, cursor });
      const keys = listing.objects.map((o) => o.key).filter(doomed);
      if (keys.length) await this.bucket.delete(keys);
      if (!listing.truncated || listing.cursor === cursor) return;
      cursor = listing.cursor;
    }
  }
}
