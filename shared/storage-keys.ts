// Where things live in R2 and KV: one place for the storage layout.
export const blockKey = (sha256: string) => `datasets/blocks/${sha256}`;
export const manifestKey = (id: string) => `datasets/manifests/${id}.json`;
export const datasetNameKey = (name: string) => `datasets/names/${name}`;
export const snapshotKey = (runId: string, step: number) => `runs/${runId}/checkpoints/step-${String(step).padStart(8, '0')}.etck`;
export const RUN_INDEX_PREFIX = 'runs/';
export const runIndexKey = (runId: string) => `${RUN_INDEX_PREFIX}${runId}`;
/** KV: the run a `POST /v1/runs` with this Idempotency-Key created (outside RUN_INDEX_PREFIX: not a run). */
export const runRequestKey = (idempotencyKey: string) => `run-requests/${idempotencyKey}`;
/** A committed parameter version: immutable, named by run, version and the frame's checksum (its tag). */
export const paramsPrefix = (runId: string) => `runs/${runId}/params/`;
export const paramsKey = (runId: string, version: number, tag: string) => `${paramsPrefix(runId)}${String(version).padStart(8, '0')}-${tag}.etpv`;
