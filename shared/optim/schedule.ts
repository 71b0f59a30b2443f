import { int, oneOf, real, strictObject } from '../schema/fields';

export const DECAY_KINDS = ['constant', 'cosine', 'linear'] as const;
export type DecayKind = (typeof DECAY_KINDS)[number];

export interface ScheduleConfig {
  /** Steps of linear warm-up from baseLr/warmupSteps up to baseLr. */
  warmupSteps: number;
  decay: DecayKind;
  /**
   * Step at which decay reaches baseLr * minLrFactor (ignored for 'constant'). 0 in a run's config means
   * the whole run, resolved by RunPlan once the data size is known.
   */
  totalSteps: number;
  minLrFactor: number;
}

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

export const scheduleFields = strictObject({ warmupSteps: int(0), decay: oneOf(DECAY_KINDS), totalSteps: int(0), minLrFactor: real({ min: 0, max: 1 }) });

/** A schedule; totalSteps 0 ("the whole run") passes, and is checked again once RunPlan resolves it. */
export const scheduleSchema = scheduleFields.superRefine((c, ctx) => {
  if (c.decay !== 'constant' && c.totalSteps !== 0 && c.totalSteps <= c.warmupSteps) {
    ctx.addIssue({ code: 'custom', path: ['totalSteps'], input: c.totalSteps, message: `${c.totalSteps} must be greater than warmupSteps (${c.warmupSteps}) for ${c.decay} decay` });
  }
});
