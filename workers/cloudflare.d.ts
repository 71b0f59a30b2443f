// The `cloudflare:workers` module as far as this project uses it (workerd provides it at run time).
// The class carries the Durable Object brand, so `DurableObjectNamespace<TrainingCoordinator>` yields
// stubs typed from the class's own methods.
declare module 'cloudflare:workers' {
  import type { DurableObjectState, Rpc } from '@cloudflare/workers-types/index';

  export abstract class DurableObject<Env = unknown> implements Rpc.DurableObjectBranded {
    [Rpc.__DURABLE_OBJECT_BRAND]: never;
    protected readonly ctx: DurableObjectState;
    protected readonly env: Env;
    constructor(ctx: DurableObjectState, env: Env);
  }
}
