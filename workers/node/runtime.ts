// A gradient worker in Node: the same work loop as the Workers runtime, with ORT (onnxruntime-web
// WASM, or native onnxruntime-node) in a worker thread behind comlink.
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { Lease, RunSpec } from '../../shared/protocol';
import { BlockCache } from '../gradient/block-cache';
import type { ApiClient } from '../gradient/client';
import type { LeaseComputer } from '../gradient/lease-computer';
import type { LeaseExamples } from '../gradient/gradient-engine';
import { workLoop, type WorkOptions, type WorkReport } from '../gradient/loop';
import type { ThreadOptions } from './thread';

export interface NodeWorkerOptions extends ThreadOptions {
  readonly cacheMb?: number;
}

export class NodeWorker {
  private readonly remote: Comlink.Remote<LeaseComputer>;
  private readonly cache: BlockCache;

  constructor(
    private readonly thread: Worker,
    opts: NodeWorkerOptions,
  ) {
    this.remote = Comlink.wrap<LeaseComputer>(nodeEndpoint(thread));
    this.cache = new BlockCache((opts.cacheMb ?? 256) * 1024 * 1024);
  }

  static start(opts: NodeWorkerOptions): NodeWorker {
    // The entry is TypeScript: a small .mjs loads it through tsx, as the CLI itself runs.
    const thread = new Worker(new URL('./thread-entry.mjs', import.meta.url), {
      workerData: { entry: new URL('./thread.ts', import.meta.url).href, runtime: opts.runtime, threads: opts.threads } satisfies ThreadOptions & { entry: string },
    });
    return new NodeWorker(thread, opts);
  }

  /**
   * Works on a run until it ends (or `signal` aborts). `wrap` puts something between the loop and the
   * compute thread (the integrity experiment's dishonest worker).
   */
  run(api: ApiClient, runId: string, signal?: AbortSignal, observe: Pick<WorkOptions, 'log' | 'onLease'> = {}, wrap: (c: LeaseComputer) => LeaseComputer = (c) => c): Promise<WorkReport> {
    const remote = this.remote;
    // Inputs are copied to the thread (the parameters stay cached here for the next shard).
    const computer: LeaseComputer = {
      prepare: (spec: RunSpec, captions?: Float32Array) => remote.prepare(spec, captions),
      train: (lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples) => remote.train(lease, params, buffers, data),
      evaluate: (lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples) => remote.evaluate(lease, params, buffers, data),
    };
    return workLoop({ api, runId, computer: wrap(computer), cache: this.cache, budgetMs: Number.POSITIVE_INFINITY, heartbeat: true, signal, ...observe });
  }

  async dispose(): Promise<void> {
    this.remote[Comlink.releaseProxy]();
    await this.thread.terminate();
  }
}
