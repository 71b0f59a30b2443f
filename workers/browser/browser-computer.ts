// The page's LeaseComputer: a comlink proxy to the Web Worker that runs ORT (compute-worker.ts), on WebGPU
// when the browser offers an adapter and ORT can run the training graph there, on WASM otherwise. A
// WebGPU worker whose session creation or run fails (or whose answer is not finite) is replaced by a
// WASM worker, which prepares the same run and computes the same call again; the reason is kept.
import * as Comlink from 'comlink';
import type { Lease, RunSpec } from '../../shared/protocol';
import type { StepResult } from '../../shared/training/step';
import type { LeaseComputer } from '../gradient/lease-computer';
import type { EvalResult, LeaseExamples } from '../gradient/gradient-engine';
import type { BrowserEp } from '../ort/browser';
import type { BrowserCompute } from './compute-worker';

/** 'auto': WebGPU when an adapter is offered and ORT runs the graph on it, else WASM; 'webgpu': WebGPU or fail; 'wasm': WASM. */
export type EpChoice = 'auto' | BrowserEp;

export interface ComputerEvents {
  /** The execution provider now in use, the WebGPU adapter seen, and why WebGPU is not (or no longer) used. */
  onEp?(ep: BrowserEp, info: { adapter?: string; webgpuUnavailable?: string; fallback?: string }): void;
  log?(line: string): void;
}

interface GpuLike {
  requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string } } | null>;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Why a result computed on WebGPU cannot be trusted, or undefined. */
function nonFinite(r: { loss: number; grads?: Float32Array; stats?: Float32Array } | { lossSum: number; correct: number }): string | undefined {
  if ('lossSum' in r) return Number.isFinite(r.lossSum) ? undefined : `non-finite eval loss ${r.lossSum}`;
  if (!Number.isFinite(r.loss)) return `non-finite loss ${r.loss}`;
  for (const [name, v] of [['gradient', r.grads], ['batch statistics', r.stats]] as const) {
    if (!v) continue;
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return `non-finite ${name} value at ${i}`;
  }
  return undefined;
}

export class BrowserComputer implements LeaseComputer {
  private worker: Worker | undefined;
  private remote!: Comlink.Remote<BrowserCompute>;
  private prepared: { spec: RunSpec; captions?: Float32Array } | undefined;
  /** Milliseconds per lease computed, by execution provider and lease kind (the Web Worker round trip included). */
  readonly ms: Record<BrowserEp, { train: number[]; eval: number[] }> = { webgpu: { train: [], eval: [] }, wasm: { train: [], eval: [] } };
  ep: BrowserEp = 'wasm';
  adapter: string | undefined;
  /** Why WebGPU was never tried (no navigator.gpu, no adapter). */
  webgpuUnavailable: string | undefined;
  /** Why this page left WebGPU for WASM. */
  fallback: string | undefined;

  private constructor(
    private readonly choice: EpChoice,
    private readonly workerUrl: URL,
    private readonly wasmPaths: string,
    private readonly events: ComputerEvents,
  ) {}

  /**
   * Starts the Web Worker on the chosen execution provider (see EpChoice). `webgpuOff`: why WebGPU is
   * not on offer whatever the browser has (the page was served without ORT's WebGPU build).
   */
  static async start(choice: EpChoice, workerUrl: URL, wasmPaths: string, events: ComputerEvents = {}, webgpuOff?: string): Promise<BrowserComputer> {
    if (!['auto', 'webgpu', 'wasm'].includes(choice)) throw new Error(`ep must be auto, webgpu or wasm, not '${choice}'`);
    const c = new BrowserComputer(choice, workerUrl, wasmPaths, events);
    if (choice === 'wasm') {
      await c.spawn('wasm');
    } else {
      const unavailable = webgpuOff ?? (await c.probeWebGpu());
      if (unavailable && choice === 'webgpu') throw new Error(unavailable);
      if (unavailable) {
        c.webgpuUnavailable = unavailable;
        events.log?.(`WebGPU not used: ${unavailable}`);
        await c.spawn('wasm');
      } else {
        try {
          await c.spawn('webgpu');
        } catch (e) {
          if (choice === 'webgpu') throw e;
          await c.fallBack(`starting ORT on WebGPU failed: ${message(e)}`);
        }
      }
    }
    c.announce();
    return c;
  }

  /** Why WebGPU cannot be used here, or undefined when the page sees an adapter. */
  private async probeWebGpu(): Promise<string | undefined> {
    const gpu = (navigator as Navigator & { gpu?: GpuLike }).gpu;
    if (!gpu) return 'navigator.gpu is not available (no WebGPU in this browser, or not a secure context)';
    try {
      const a = await gpu.requestAdapter();
      if (!a) return 'navigator.gpu.requestAdapter() returned no adapter';
      this.adapter = [a.info?.vendor, a.info?.architecture, a.info?.description].filter(Boolean).join(' / ') || 'unknown adapter';
      return undefined;
    } catch (e) {
      return `navigator.gpu.requestAdapter() failed: ${message(e)}`;
    }
  }

  private async spawn(ep: BrowserEp): Promise<void> {
    const worker = new Worker(this.workerUrl, { type: 'module', name: `edgetrain-compute-${ep}` });
    this.worker = worker;
    this.remote = Comlink.wrap<BrowserCompute>(worker);
    this.ep = ep;
    // A Web Worker that fails to load reports on the worker object, not through comlink: race them.
    const failed = new Promise<never>((_, reject) =>
      worker.addEventListener('error', (e) => reject(new Error(`the compute Web Worker failed to load: ${e.message || 'script error'}`)), { once: true }),
    );
    failed.catch(() => undefined); // an error event after init is no concern of this race
    try {
      const info = await Promise.race([this.remote.init({ ep, wasmPaths: this.wasmPaths }), failed]);
      if (info.adapter) this.adapter = info.adapter;
    } catch (e) {
      this.terminate();
      throw e;
    }
  }

  /** Ends the current Web Worker (idempotent). */
  private terminate(): void {
    if (!this.worker) return;
    this.remote[Comlink.releaseProxy]();
    this.worker.terminate();
    this.worker = undefined;
  }

  private announce(): void {
    this.events.onEp?.(this.ep, { adapter: this.adapter, webgpuUnavailable: this.webgpuUnavailable, fallback: this.fallback });
  }

  /** Leaves WebGPU for a fresh WASM Web Worker, prepared for the same run. */
  private async fallBack(reason: string): Promise<void> {
    this.fallback = reason;
    this.events.log?.(`falling back to WASM: ${reason}`);
    this.terminate();
    await this.spawn('wasm');
    if (this.prepared) await this.remote.prepare(this.prepared.spec, this.prepared.captions);
    this.announce();
  }

  /**
   * Runs `op` on the current Web Worker; on WebGPU (with 'auto'), a failure or an untrustworthy result
   * moves to WASM and runs it again there. A successful attempt's time is charged to its provider.
   */
  private async guarded<T>(what: string, kind: 'train' | 'eval' | undefined, op: (remote: Comlink.Remote<BrowserCompute>) => Promise<T>, check: (r: T) => string | undefined = () => undefined): Promise<T> {
    const attempt = async () => {
      const ep = this.ep;
      const t0 = performance.now();
      const r = await op(this.remote);
      const bad = ep === 'webgpu' ? check(r) : undefined;
      if (bad) throw new Error(bad);
      if (kind) this.ms[ep][kind].push(performance.now() - t0);
      return r;
    };
    try {
      return await attempt();
    } catch (e) {
      if (this.ep !== 'webgpu' || this.choice !== 'auto') throw e;
      await this.fallBack(`${what} on WebGPU failed: ${message(e)}`);
      return attempt();
    }
  }

  async prepare(spec: RunSpec, captions?: Float32Array): Promise<void> {
    this.prepared = { spec, captions };
    await this.guarded('creating the training session', undefined, (r) => r.prepare(spec, captions));
  }

  train(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<StepResult> {
    return this.guarded(`training step ${lease.step} shard ${lease.shard}`, 'train', (r) => r.train(lease, params, buffers, data), nonFinite);
  }

  evaluate(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<EvalResult> {
    return this.guarded(`evaluating step ${lease.step} shard ${lease.shard}`, 'eval', (r) => r.evaluate(lease, params, buffers, data), nonFinite);
  }

  dispose(): void {
    this.terminate();
  }
}
