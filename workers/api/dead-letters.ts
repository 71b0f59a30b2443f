// The dead-letter queue of gradient work: a chain message whose every delivery failed (an isolate over
// its memory or CPU limit, a crash) lands here, and the run's coordinator starts the chain again after a
// delay, without waiting for its alarm to notice the silence.
import type { MessageBatch } from '@cloudflare/workers-types/index';
import type { ChainMessage } from '../../shared/protocol';
import type { Env } from '../env';
import { coordinator, runIdError } from './respond';

const isChainMessage = (body: unknown): body is ChainMessage => {
  const m = body as Partial<ChainMessage> | null;
  return typeof m?.runId === 'string' && typeof m.chain === 'string' && Number.isInteger(m.generation) && runIdError(m.runId) === undefined;
};

export async function deadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const body = message.body;
    // Anything else (a hand-started worker's message) has nobody to restart it: logged and dropped.
    if (isChainMessage(body)) {
      const r = await coordinator(env.COORDINATOR, body.runId).chainFailed(body.chain, body.generation);
      console.warn(`dead-lettered ${body.chain} generation ${body.generation} of run ${body.runId}: ${r.ok ? (r.value.restarted ? 'started again' : 'already superseded') : r.error}`);
    } else console.warn(`dead-lettered message without a chain dropped: ${JSON.stringify(body).slice(0, 200)}`);
    message.ack();
  }
}
