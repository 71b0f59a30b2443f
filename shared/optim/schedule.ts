import {
  checkKnownFields,
  checkNumber,
  checkOneOf,
  formatValue,
  isRecord,
  type ParseResult,
  withDefaults,
} from './validate.js';

export const DECAY_KINDS = ['constant', 'cosine', 'linear'] as const;
export type DecayKind = (typeof DECAY_KINDS)[number];

export interface ScheduleConfig {
  /** Steps of linear warm-up from baseLr/warmupSteps up to baseLr. */
  warmupSteps: number;
  decay: DecayKind;
  /** Step at which decay reaches baseLr * minLrFactor (ignored for 'constant'). */
  totalSteps: number;
  minLrFactor: number;
}

const SCHEDULE_FIELDS = ['warmupSteps', 'decay', 'totalSteps', 'minLrFactor'] as const;

export function defaultScheduleConfig(): ScheduleConfig {
  return { warmupSteps: 0, decay: 'constant', totalSteps: 0, minLrFactor: 0 };
}

/**
 * Learning rate for the update with 0-based index `step`.
 * Warm-up uses (step + 1) / warmupSteps so the first update is small but not wasted at 0;
 * the last warm-up step and step `warmupSteps` both use baseLr. Decay runs from step
 * `warmupSteps` (baseLr) to step `totalSteps` (baseLr * minLrFactor) and stays there after.
 */
export function learningRate(baseLr: number, schedule: ScheduleConfig, step: number): number {
  const s = Math.max(0, step);
  const { warmupSteps, totalSteps, minLrFactor } = schedule;
  if (s < warmupSteps) return (baseLr * (s + 1)) / warmupSteps;
  if (schedule.decay === 'constant') return baseLr;
  const span = totalSteps - warmupSteps;
  const progress = span > 0 ? Math.min(1, (s - warmupSteps) / span) : 1;
  const shape = schedule.decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return baseLr * (minLrFactor + (1 - minLrFactor) * shape);
}

export function validateScheduleConfig(schedule: ScheduleConfig, path = 'schedule'): string[] {
  const errors: string[] = [];
  const c = schedule as unknown as Record<string, unknown>;
  const warmupOk = checkNumber(`${path}.warmupSteps`, c.warmupSteps, { min: 0, integer: true }, errors);
  const decayOk = checkOneOf(`${path}.decay`, c.decay, DECAY_KINDS, errors);
  const totalOk = checkNumber(`${path}.totalSteps`, c.totalSteps, { min: 0, integer: true }, errors);
  checkNumber(`${path}.minLrFactor`, c.minLrFactor, { min: 0, max: 1 }, errors);
  if (warmupOk && decayOk && totalOk && c.decay !== 'constant') {
    const total = c.totalSteps as number;
    const warmup = c.warmupSteps as number;
    if (total <= warmup) {
      errors.push(`${path}.totalSteps: ${total} must be greater than warmupSteps (${warmup}) for ${c.decay} decay`);
    }
  }
  return errors;
}

/** Parses an untyped value into a schedule; missing fields take `defaultScheduleConfig()`. */
export function parseScheduleConfig(input: unknown, path = 'schedule'): ParseResult<ScheduleConfig> {
  if (!isRecord(input)) return { ok: false, errors: [`${path}: ${formatValue(input)} is not an object`] };
  const errors: string[] = [];
  checkKnownFields(path, input, SCHEDULE_FIELDS, errors);
  const merged = withDefaults(defaultScheduleConfig(), input) as unknown as ScheduleConfig;
  errors.push(...validateScheduleConfig(merged, path));
  return errors.length === 0 ? { ok: true, value: merged } : { ok: false, errors };
}
