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

/** Every problem with a config, each naming the field and the allowed values. */
export function modelConfigErrors(c: ModelConfig): string[] {
  const errors: string[] = [];
  if (!PRESET_NAMES.includes(c.preset)) errors.push(`preset: '${c.preset}' is not one of ${PRESET_NAMES.join(', ')}`);
  if (!HEAD_NAMES.includes(c.head)) errors.push(`head: '${c.head}' is not one of ${HEAD_NAMES.join(', ')}`);
  if (!Number.isInteger(c.classes) || c.classes < 2) errors.push(`classes: ${c.classes} must be an integer ≥ 2`);
  if (!Number.isInteger(c.captionsPerClass) || c.captionsPerClass < 1 || c.captionsPerClass > 64) {
    errors.push(`captionsPerClass: ${c.captionsPerClass} must be an integer in 1..64`);
  }
  if (!(c.labelSmoothing >= 0 && c.labelSmoothing < 1)) errors.push(`labelSmoothing: ${c.labelSmoothing} must be in [0, 1)`);
  return errors;
}

export function checkModelConfig(c: ModelConfig): ModelConfig {
  const errors = modelConfigErrors(c);
  if (errors.length) throw new Error(`invalid model config:\n  ${errors.join('\n  ')}`);
  return c;
}
