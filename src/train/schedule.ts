/**
 * Learning-rate (and momentum) schedules as pure functions of the step: resuming a run at step k
 * gives exactly the values an uninterrupted run had there.
 */
import { GraftError } from '../errors.js';

export type ScheduleName = 'one-cycle' | 'cosine' | 'step' | 'constant' | 'exponential';

export interface ScheduleConfig {
  name: ScheduleName;
  /** Peak (one-cycle) or initial learning rate. */
  lr: number;
  totalSteps: number;
  /** one-cycle: fraction of steps spent warming up (fastai default 0.25). */
  pctStart?: number;
  /** one-cycle: start at lr / divFactor (25) and end at lr / finalDiv (1e5), as fastai does. */
  divFactor?: number;
  finalDiv?: number;
  /** one-cycle: momentum / β1 goes max → min → max (0.95 → 0.85 → 0.95). */
  momentum?: [number, number];
  /** cosine / constant: linear warm-up steps. */
  warmupSteps?: number;
  /** exponential (the LR range test): from startLr at step 0 to lr at totalSteps. */
  startLr?: number;
  /** step: multiply by gamma every stepSize steps. */
  stepSize?: number;
  gamma?: number;
}

export interface ScheduleValue {
  lr: number;
  /** Momentum (SGD) or β1 (Adam) to use, when the schedule cycles it. */
  momentum?: number;
}

const cosineInterp = (from: number, to: number, pct: number) => to + ((from - to) / 2) * (1 + Math.cos(Math.PI * pct));

export function scheduleAt(c: ScheduleConfig, step: number): ScheduleValue {
  if (!(c.lr > 0)) throw new GraftError('INVALID_ARGUMENT', `the learning rate must be positive, not ${c.lr}.`);
  const total = Math.max(1, c.totalSteps);
  const s = Math.min(Math.max(step, 0), total);
  switch (c.name) {
    case 'one-cycle': {
      const pctStart = c.pctStart ?? 0.25;
      const div = c.divFactor ?? 25;
      const finalDiv = c.finalDiv ?? 1e5;
      const [mMax, mMin] = c.momentum ?? [0.95, 0.85];
      const warm = Math.max(1, Math.round(total * pctStart));
      if (s < warm) {
        const p = s / warm;
        return { lr: cosineInterp(c.lr / div, c.lr, p), momentum: cosineInterp(mMax, mMin, p) };
      }
      const p = (s - warm) / Math.max(1, total - warm);
      return { lr: cosineInterp(c.lr, c.lr / finalDiv, p), momentum: cosineInterp(mMin, mMax, p) };
    }
    case 'cosine': {
      const warm = c.warmupSteps ?? 0;
      if (s < warm) return { lr: (c.lr * (s + 1)) / warm };
      return { lr: cosineInterp(c.lr, 0, (s - warm) / Math.max(1, total - warm)) };
    }
    case 'step':
      return { lr: c.lr * (c.gamma ?? 0.1) ** Math.floor(s / Math.max(1, c.stepSize ?? Math.ceil(total / 3))) };
    case 'exponential': {
      const from = c.startLr ?? c.lr / 1e7;
      return { lr: from * (c.lr / from) ** (s / total) };
    }
    case 'constant': {
      const warm = c.warmupSteps ?? 0;
      return { lr: s < warm ? (c.lr * (s + 1)) / warm : c.lr };
    }
  }
}
