// One queue delivery of gradient work. A supervised chain's message (the coordinator minted it, with the
// chain's credential) claims its chain, works under the chain's id with the delivery's ticket, and at
// the end of its budget asks the coordinator to send the chain's next message. A hand-started worker's
// message (local clusters started by the CLI) carries the run's worker token: each invocation mints an
// identity of its own and re-enqueues the message. Failures propagate: the queue
// retries the message (retry_delay), and dead-letters it after max_retries.
import type { ChainMessage, ChainTicket } from '../../shared/protocol';
import type { BlockCache } from './block-cache';
import type { ApiClient } from './client';
import type { LeaseComputer } from './lease-computer';
import { workLoop, type WorkReport } from './loop';

/** A hand-started worker's message: no chain; it re-enqueues itself while the run trains. */
export interface HandStartedMessage {
  readonly runId: string;
  readonly token: string;
  readonly chain?: undefined;
}

export type WorkMessage = ChainMessage | HandStartedMessage;

/** A delivery as the queue handler sees it. */
export interface Delivery {
  readonly id: string;
  readonly attempts: number;
  readonly body: WorkMessage;
}

export interface InvocationContext {
  /** A client of the API with `token`: a chain's credential, or the run's worker token (it mints an identity). */
  readonly api: (token: string) => ApiClient;
  readonly computer: LeaseComputer;
  readonly cache: BlockCache;
  /** What the per-image caption cache may hold. */
  readonly captionCacheBytes: number;
  readonly budgetMs: number;
  /** Sends a hand-started worker's message again (its own queue); absent: it ends at its budget. */
  readonly requeue?: (message: HandStartedMessage) => Promise<void>;
  readonly log: (line: string) => void;
}

export async function runInvocation(delivery: Delivery, o: InvocationContext): Promise<WorkReport | undefined> {
  const message = delivery.body;
  const loop = { runId: message.runId, computer: o.computer, cache: o.cache, captionCacheBytes: o.captionCacheBytes, budgetMs: o.budgetMs, log: o.log };
  if (message.chain === undefined) {
    const report = await workLoop({ ...loop, api: o.api(message.token) });
    if (report.reason === 'budget') await o.requeue?.(message);
    return report;
  }
  const nonce = crypto.randomUUID().replaceAll('-', '').slice(0, 16);
  const ticket: ChainTicket = { generation: message.generation, invocation: `${delivery.id}/${delivery.attempts}/${nonce}` };
  const api = o.api(message.token);
  const claim = await api.claimChain(message.runId, ticket);
  if (claim.type === 'stop') {
    o.log(`${message.chain} generation ${message.generation}: not started: ${claim.error}`);
    return undefined;
  }
  const report = await workLoop({ ...loop, api, ticket });
  if (report.reason === 'budget') await api.handOver(message.runId, ticket);
  return report;
}
