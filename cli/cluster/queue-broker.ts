// Cloudflare Queues' delivery, locally, for the work queue: Miniflare delivers a queue's messages to
// one consumer invocation at a time in one process, and one workerd process runs all its JavaScript on
// one thread, so parallel consumer invocations need consumer processes and a broker in front of them.
// The API Worker sends to its real (Miniflare) queue; a relay Worker in the same Miniflare hands each
// batch to this broker, which runs every message as one consumer invocation in an idle process (as
// many at once as there are processes: max_concurrency), retries a failed one after retryDelay, up to
// maxRetries, then hands it to the dead-letter queue's consumer, and kills an invocation that runs past
// Cloudflare's consumer wall-clock limit.
import type { WorkerOptions } from 'miniflare';

/** A message as a consumer's queue handler receives it. */
export interface QueuedMessage<T = unknown> {
  readonly id: string;
  readonly timestamp: number;
  readonly attempts: number;
  readonly body: T;
}

/** What a consumer invocation did with its one message. */
export type Delivered = 'ack' | 'retry';

/** A Worker's queue handler as Miniflare exposes it (`(await mf.getWorker(name)).queue`). */
export interface QueueHandler {
  queue(queue: string, messages: { id: string; timestamp: Date; attempts: number; body: unknown }[]): Promise<{ outcome: string; retryBatch: { retry: boolean }; retryMessages: { msgId: string }[] }>;
}

/**
 * Runs `worker`'s queue handler with one message, as a queue delivers it. Cloudflare acknowledges a
 * message whose handler returned without retrying it (implicit ack).
 */
export async function deliverTo(worker: QueueHandler, queue: string, message: QueuedMessage): Promise<Delivered> {
  const r = await worker.queue(queue, [{ id: message.id, timestamp: new Date(message.timestamp), attempts: message.attempts, body: message.body }]);
  const retried = r.outcome !== 'ok' || r.retryBatch.retry || r.retryMessages.some((m) => m.msgId === message.id);
  return retried ? 'retry' : 'ack';
}

/** A process that runs consumer invocations, one at a time. */
export interface ConsumerSlot {
  readonly name: string;
  /** Runs one invocation of the consumer's queue handler with `message`; rejects when the process died. */
  deliver(queue: string, message: QueuedMessage): Promise<Delivered>;
}

export interface BrokerOptions<S extends ConsumerSlot> {
  readonly queue: string;
  readonly maxRetries: number;
  readonly retryDelayS: number;
  /** Where a message goes after its last failed attempt (the dead-letter queue's consumer). */
  readonly deadLetter: (message: QueuedMessage) => Promise<void>;
  /** An invocation running this long is killed and counts as failed (Cloudflare: 15 minutes of wall clock). */
  readonly wallLimitMs: number;
  /** Called when an invocation overran its wall limit: the slot's process is to be replaced. */
  readonly onOverrun?: (slot: S) => Promise<void>;
  readonly log?: (line: string) => void;
}

/** The Worker-side relay: consumes `queue` and posts each batch to the broker (service binding BROKER). */
export function relayWorker(queue: string, broker: (request: Request) => Promise<Response>): WorkerOptions {
  return {
    name: 'queue-relay',
    modules: true,
    script: `export default {
      async queue(batch, env) {
        const messages = batch.messages.map((m) => ({ id: m.id, timestamp: m.timestamp.getTime(), attempts: m.attempts, body: m.body }));
        const res = await env.BROKER.fetch('http://broker/', { method: 'POST', body: JSON.stringify(messages) });
        if (!res.ok) throw new Error('broker refused the batch: ' + res.status);
        batch.ackAll();
      },
    };`,
    queueConsumers: { [queue]: { maxBatchSize: 100, maxBatchTimeout: 0, maxRetries: 0 } },
    serviceBindings: { BROKER: broker as never },
  };
}

export class QueueBroker<S extends ConsumerSlot = ConsumerSlot> {
  private readonly pending: QueuedMessage[] = [];
  private readonly idle: S[] = [];
  private readonly busy = new Map<S, QueuedMessage>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  /** Every delivery's result, in order (for tests and logs). */
  readonly history: { slot: string; message: QueuedMessage; result: Delivered | 'failed' | 'overran' | 'dead-lettered' }[] = [];
  private closed = false;

  constructor(private readonly o: BrokerOptions<S>) {}

  /** The relay's POST handler. */
  readonly receive = async (request: Request): Promise<Response> => {
    this.push(...((await request.json()) as QueuedMessage[]));
    return new Response('ok');
  };

  push(...messages: QueuedMessage[]): void {
    this.pending.push(...messages);
    this.pump();
  }

  addSlot(slot: S): void {
    this.idle.push(slot);
    this.pump();
  }

  /** Takes a slot out of service (its process is going away); its invocation in flight fails and is retried. */
  removeSlot(slot: S): void {
    const i = this.idle.indexOf(slot);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** The message each busy slot is running. */
  running(): ReadonlyMap<S, QueuedMessage> {
    return this.busy;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
  }

  private pump(): void {
    while (!this.closed && this.pending.length && this.idle.length) {
      const slot = this.idle.shift()!;
      const message = this.pending.shift()!;
      this.busy.set(slot, message);
      void this.run(slot, message);
    }
  }

  private async run(slot: S, message: QueuedMessage): Promise<void> {
    let overran = false;
    const limit = setTimeout(() => {
      overran = true;
      void this.o.onOverrun?.(slot);
    }, this.o.wallLimitMs);
    let result: Delivered | 'failed';
    try {
      result = await slot.deliver(this.o.queue, message);
    } catch (e) {
      this.o.log?.(`${slot.name}: invocation of ${message.id} (attempt ${message.attempts}) died: ${e instanceof Error ? e.message : String(e)}`);
      result = 'failed';
    } finally {
      clearTimeout(limit);
    }
    this.busy.delete(slot);
    this.history.push({ slot: slot.name, message, result: overran ? 'overran' : result });
    if (!overran && result !== 'failed') this.idle.push(slot);
    if (result !== 'ack' || overran) this.retry(message);
    this.pump();
  }

  private retry(message: QueuedMessage): void {
    if (this.closed) return;
    if (message.attempts > this.o.maxRetries) {
      this.history.push({ slot: '-', message, result: 'dead-lettered' });
      void this.o.deadLetter(message).catch((e: unknown) => this.o.log?.(`dead-lettering ${message.id} failed: ${String(e)}`));
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.push({ ...message, attempts: message.attempts + 1 });
    }, this.o.retryDelayS * 1000);
    this.timers.add(timer);
  }
}
