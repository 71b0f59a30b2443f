// The bounds of cluster.compression and cluster.diloco in a run request (and the CLI's flags).
import { z } from 'zod';
import { DENSE_CODECS, GRADIENT_CODECS } from '../wire/codec';
import { bool, int, oneOf, real, strictObject } from '../schema/fields';
import type { CompressionConfig, DilocoConfig } from './communication';

export const compressionFields = strictObject({
  gradients: oneOf(GRADIENT_CODECS),
  params: oneOf(DENSE_CODECS),
  topK: real({ gt: 0, max: 1 }),
  errorFeedback: bool(),
  momentumCorrection: real({ min: 0, lt: 1 }),
}) satisfies z.ZodType<CompressionConfig>;

export const dilocoFields = strictObject({
  innerSteps: int(0, 10_000),
  outerLr: real({ gt: 0, max: 10 }),
  outerMomentum: real({ min: 0, lt: 1 }),
  outerNesterov: bool(),
}) satisfies z.ZodType<DilocoConfig>;
