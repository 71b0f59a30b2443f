// The identity of a run's training graph: the hex SHA-256 of the bytes a worker compiles. The
// coordinator records it in the run spec at creation; every worker compares it with the graph it
// built before computing anything, so a worker built from other code refuses instead of sending
// gradients of a different graph.
import { sha256Hex } from './data/blocks';
import { buildTrainingGraph } from './models/compile';
import type { RunConfig, RunSpec } from './protocol';

/** Examples per run of the training graph: `cluster.graphBatch`, or the whole lease when 0. */
export const graphBatchOf = (config: RunConfig): number => config.cluster.graphBatch || config.cluster.microBatch;

export const graphHash = (bytes: Uint8Array): Promise<string> => sha256Hex(bytes);

/** The hash of the training graph a run of `config` runs (compiling it takes milliseconds). */
export const runGraphHash = (config: RunConfig): Promise<string> => graphHash(buildTrainingGraph(config.train.model, graphBatchOf(config)).bytes);

/** Why a worker that built a graph of hash `built` must not work on `spec`'s run, or undefined. */
export function graphMismatch(spec: RunSpec, built: string): string | undefined {
  if (spec.graphHash === undefined || spec.graphHash === built) return undefined;
  return `run ${spec.runId} trains the graph ${spec.graphHash}, but this worker built ${built} from its code: update the worker`;
}
