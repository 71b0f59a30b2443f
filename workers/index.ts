// The edgetrain API script (wrangler.toml): the HTTP API (fetch), the Durable Object classes, and the
// consumer of the work queue's dead letters (chains whose every delivery failed, restarted by their
// coordinator). The gradient workers are a script of their own (workers/gradient/consumer.ts) that
// consumes the WORK queue the coordinators produce; nothing here may import onnxruntime-web
// (test/unit/layering.test.ts).
import type { MessageBatch } from '@cloudflare/workers-types/index';
import { app } from './api/app';
import { deadLetters } from './api/dead-letters';
import type { Env } from './env';

export { TrainingCoordinator } from '../coordinator/coordinator';
export { GradientAggregator } from '../coordinator/aggregator';

export default {
  fetch: app.fetch,
  async queue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
    await deadLetters(batch, env);
  },
};
