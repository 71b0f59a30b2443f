import { z } from 'zod';
import { bool, int, oneOfNames, real, strictObject } from '../schema/fields';
import { checked } from '../schema/issues';
import { BACKBONES, type Backbone } from './backbones';
import { HEADS, type Head } from './heads';

/** What a user picks: the image branch (preset), the head, DANN, and the loss's smoothing. */
export interface ModelConfig {
  readonly preset: string;
  readonly head: string;
  readonly dann: boolean;
  readonly classes: number;
  /** Caption embeddings per class (the attention head's K). */
  readonly captionsPerClass: number;
  readonly labelSmoothing: number;
}

export const DEFAULT_MODEL_CONFIG: ModelConfig = {
  preset: 'seed-cnn',
  head: 'align',
  dann: false,
  classes: 10,
  captionsPerClass: 4,
  labelSmoothing: 0,
};

export const PRESET_NAMES = BACKBONES.map((b) => b.name);
export const HEAD_NAMES = HEADS.map((h) => h.name);

export function findBackbone(name: string): Backbone {
  const found = BACKBONES.find((b) => b.name === name);
  if (!found) throw new Error(`unknown preset '${name}'; valid presets: ${PRESET_NAMES.join(', ')}`);
  return found;
}

export function findHead(name: string): Head {
  const found = HEADS.find((h) => h.name === name);
  if (!found) throw new Error(`unknown head '${name}'; valid heads: ${HEAD_NAMES.join(', ')}`);
  return found;
}

export const modelConfigSchema = strictObject({
  preset: oneOfNames(PRESET_NAMES),
  head: oneOfNames(HEAD_NAMES),
  dann: bool(),
  classes: int(2, 1000),
  captionsPerClass: int(1, 64),
  labelSmoothing: real({ min: 0, lt: 1 }),
}) satisfies z.ZodType<ModelConfig>;

export const checkModelConfig = (c: ModelConfig): ModelConfig => checked(modelConfigSchema, c, 'model config');
