// The edgetrain API script (wrangler.toml): the HTTP API (fetch) and the Durable Object classes. The
// gradient workers are a script of their own (workers/gradient/consumer.ts) that consumes the WORK
// queue this one produces; nothing here may import onnxruntime-web (test/unit/layering.test.ts).
import { app } from './api/app';

export { TrainingCoordinator } from '../coordinator/coordinator';
export { GradientAggregator } from '../coordinator/aggregator';

export default { fetch: app.fetch };
