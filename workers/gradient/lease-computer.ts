// What a work loop asks of its compute: one engine per run, behind async calls so that it can live in
// the same isolate (workerd) or in a worker thread behind comlink (Node).
import type { OrtApi } from '../../shared/onnx/session';
import type { Lease, RunSpec } from '../../shared/protocol';
import type { StepResult } from '../../shared/training/step';
import { GradientEngine, type EvalResult, type LeaseExamples } from './gradient-engine';

export interface LeaseComputer {
  /** Compiles the run's graphs (idempotent per run) with the run's caption vectors. */
  prepare(spec: RunSpec, captions?: Float32Array): Promise<void>;
  train(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<StepResult>;
  evaluate(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<EvalResult>;
}

/** Keeps the engine of the last run prepared (a worker serves one run at a time). */
export class LocalComputer implements LeaseComputer {
  private current: { runId: string; engine: Promise<GradientEngine> } | undefined;

  constructor(private readonly ort: () => Promise<OrtApi>) {}

  async prepare(spec: RunSpec, captions?: Float32Array): Promise<void> {
    await this.engine(spec, captions);
  }

  private async engine(spec: RunSpec, captions?: Float32Array): Promise<GradientEngine> {
    if (this.current?.runId !== spec.runId) {
      const previous = this.current;
      this.current = { runId: spec.runId, engine: this.ort().then((ort) => GradientEngine.create(ort, spec, captions)) };
      this.current.engine.catch(() => (this.current = undefined));
      if (previous) await (await previous.engine.catch(() => undefined))?.release();
    }
    return this.current.engine;
  }

  private async forLease(lease: Lease): Promise<GradientEngine> {
    if (this.current?.runId !== lease.runId) throw new Error(`lease for run ${lease.runId}, but run ${this.current?.runId ?? '(none)'} is prepared`);
    return this.current.engine;
  }

  async train(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<StepResult> {
    return (await this.forLease(lease)).train(lease, params, buffers, data);
  }

  async evaluate(lease: Lease, params: Float32Array, buffers: Float32Array, data: LeaseExamples): Promise<EvalResult> {
    return (await this.forLease(lease)).evaluate(lease, params, buffers, data);
  }
}
