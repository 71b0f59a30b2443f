// The `cloudflare:workers` module as far as this project uses it (workerd provides it at run time).
declare module 'cloudflare:workers' {
  import type { DurableObjectState } from '@cloudflare/workers-types/index';

  export abstract class DurableObject<Env = unknown> {
    protected readonly ctx: DurableObjectState;
    protected readonly env: Env;
    constructor(ctx: DurableObjectState, env: Env);
  }
}
