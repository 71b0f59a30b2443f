// What the coordinator keeps in R2 rather than in itself, so that neither its egress nor its storage
// writes grow with the number of workers or the model's optimizer state:
//   parameter versions  written once per step; workers read them through the API from R2 (and the
//                       Cache API), never from the Durable Object. Named by run, version and the
//                       frame's checksum, so a cached copy can never stand for other bytes.
//   the update log      each step's mean gradient and batch statistics: with the full state written
//                       every few steps, a step is durable with one 2.6 MB write instead of 7.9 MB
//                       (parameters + Adam's two moments), and a restart replays the log.
import type { R2Bucket } from '@cloudflare/workers-types/index';
import { paramsKey, paramsPrefix, updateKey, updatesPrefix } from '../shared/storage-keys';
import { decodeUpdate, encodeParams, encodeUpdate, frameTag, type StepUpdate } from '../shared/wire';

export interface PublishedVersion {
  readonly version: number;
  /** The frame's checksum, 8 hex digits: leases carry it and workers check the bytes they get against it. */
  readonly tag: string;
}

export class VersionStore {
  constructor(
    private readonly bucket: R2Bucket,
    private readonly runId: string,
  ) {}

  /** Writes version `version` of the parameters; resolves once workers can read it. */
  async publish(version: number, params: Float32Array, buffers: Float32Array): Promise<PublishedVersion> {
    const frame = encodeParams({ version, params, buffers });
    const tag = frameTag(frame);
    await this.bucket.put(paramsKey(this.runId, version, tag), frame);
    return { version, tag };
  }

  /** Appends one step's update to the log; resolves once it is durable. */
  async logUpdate(update: StepUpdate): Promise<void> {
    await this.bucket.put(updateKey(this.runId, update.step), encodeUpdate(update));
  }

  /** The logged update that produced version `step`. */
  async readUpdate(step: number): Promise<StepUpdate> {
    const object = await this.bucket.get(updateKey(this.runId, step));
    if (!object) throw new Error(`run ${this.runId}: the update log has no entry for step ${step} (${updateKey(this.runId, step)})`);
    const update = decodeUpdate(new Uint8Array(await object.arrayBuffer()));
    if (update.step !== step) throw new Error(`run ${this.runId}: update log entry ${updateKey(this.runId, step)} holds step ${update.step}`);
    return update;
  }

  /** Deletes one parameter version. */
  forget(version: PublishedVersion): Promise<void> {
    return this.bucket.delete(paramsKey(this.runId, version.version, version.tag));
  }

  /** Deletes parameter versions other than `keep` (every version when omitted). */
  forgetVersions(keep?: PublishedVersion): Promise<void> {
    const kept = keep && paramsKey(this.runId, keep.version, keep.tag);
    return this.deleteUnder(paramsPrefix(this.runId), (key) => key !== kept);
  }

  /** Deletes the log's entries for steps ≤ `step` (the full state now covers them). */
  forgetUpdatesThrough(step: number): Promise<void> {
    const last = updateKey(this.runId, step);
    return this.deleteUnder(updatesPrefix(this.runId), (key) => key <= last);
  }

  private async deleteUnder(prefix: string, doomed: (key: string) => boolean): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix, cursor });
      const keys = page.objects.map((o) => o.key).filter(doomed);
      if (keys.length) await this.bucket.delete(keys);
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  }
}
