// The message the WORK queue carries: the API produces one per gradient worker of a run, the gradient
// consumer (workers/gradient/consumer.ts) consumes it and re-enqueues its successor.
export interface WorkMessage {
  readonly runId: string;
  /** The run's worker token: what the invocation authenticates with. */
  readonly token: string;
  /** Invocations of this worker chain that failed in a row. */
  readonly failures?: number;
}
