/**
 * The learning-rate range test (Smith 2015; fastai's lr_find): train for a short while with the rate
 * growing exponentially from 1e-7 to 10, record the smoothed loss, stop once it explodes, and suggest
 * the rate where the loss falls fastest. The weights and optimizer state are restored afterwards.
 */
import { GraftError, throwIfAborted } from '../errors.js';
import type { TaskHandle } from '../runtime/index.js';
import { toInt64, type BatchSource, type TrainerMethods } from './fit.js';
import type { ScheduleConfig } from './schedule.js';
import { restoreTransfer } from './trainer.js';
import type { StepResult, TrainerState } from './trainer.task.js';

export interface LrFindResult {
  lrs: number[];
  /** Exponentially smoothed (bias-corrected) losses, one per lr. */
  losses: number[];
  /** Where the smoothed loss falls fastest (per log-lr): the suggested rate. */
  suggestion: number;
  /** The rate of the smallest loss divided by 10: fastai's conservative alternative. */
  minimumOver10: number;
}

export interface LrFindOptions {
  trainer: TaskHandle<TrainerMethods>;
  source: BatchSource;
  /** The schedule to restore afterwards. */
  schedule: ScheduleConfig;
  start?: number;
  end?: number;
  steps?: number;
  signal?: AbortSignal;
}

export async function lrFind(o: LrFindOptions): Promise<LrFindResult> {
  const start = o.start ?? 1e-7;
  const end = o.end ?? 10;
  const steps = o.steps ?? Math.min(100, Math.max(20, o.source.trainBatches * 3));
  const saved = (await o.trainer.call('state', undefined as never)) as TrainerState;
  await o.trainer.call('setSchedule', { name: 'exponential', lr: end, startLr: start, totalSteps: steps } satisfies ScheduleConfig as never);
  const lrs: number[] = [];
  const losses: number[] = [];
  let avg = 0;
  let best = Infinity;
  try {
    let step = 0;
    outer: for (let epoch = 0; ; epoch++) {
      for await (const b of o.source.train(10_000 + epoch)) {
        throwIfAborted(o.signal);
        const r = (await o.trainer.call('step', { data: b.data, labels: toInt64(b.labels), step }, [(b.data.data as Float32Array).buffer as ArrayBuffer])) as StepResult;
        step++;
        if (!Number.isFinite(r.loss)) break outer;
        avg = 0.98 * avg + 0.02 * r.loss;
        const smooth = avg / (1 - 0.98 ** step);
        lrs.push(r.lr);
        losses.push(smooth);
        best = Math.min(best, smooth);
        if (step >= steps || (step > 5 && smooth > 4 * best)) break outer;
      }
      if (o.source.trainBatches === 0) break;
    }
  } finally {
    await o.trainer.call('restore', saved as never, restoreTransfer(saved));
    await o.trainer.call('setSchedule', o.schedule as never);
  }
  if (lrs.length < 5) throw new GraftError('TRAINING_DIVERGED', 'the learning-rate range test diverged at once; check the data and model, or pass --lr explicitly.');
  return { lrs, losses, ...suggest(lrs, losses) };
}

/**
 * Steepest descent of the loss per log-lr, over the part of the curve before its minimum. The first few
 * smoothed values average only a handful of batches, so the minimum and the descent are looked for after
 * them: a lucky first batch (a warmed-up head starts low) would otherwise be "the minimum". When the loss
 * never falls by more than the smoothing's noise before its minimum — fine-tuning a warmed-up head often
 * starts near its best — there is no descent to ride: a tenth of the rate where the loss starts climbing.
 */
export function suggest(lrs: readonly number[], losses: readonly number[]): { suggestion: number; minimumOver10: number } {
  const settle = Math.min(losses.length - 1, Math.max(3, Math.round(losses.length / 10)));
  let iMin = settle;
  for (let i = settle + 1; i < losses.length; i++) if (losses[i] < losses[iMin]) iMin = i;
  const minimumOver10 = lrs[iMin] / 10;
  const min = losses[iMin];
  if (Math.max(...losses.slice(settle, iMin + 1)) - min < FLAT * min) {
    const climb = losses.findIndex((l, i) => i > iMin && l > (1 + FLAT) * min);
    return { suggestion: lrs[climb < 0 ? lrs.length - 1 : climb] / 10, minimumOver10 };
  }
  let steepest = settle;
  let slope = Infinity;
  // a slope over a few points: single-step differences of a noisy curve point anywhere
  const w = Math.max(1, Math.round(losses.length / 20));
  for (let i = settle + w; i <= iMin; i++) {
    const s = (losses[i] - losses[i - w]) / (Math.log(lrs[i]) - Math.log(lrs[i - w]));
    if (s < slope) {
      slope = s;
      steepest = i - Math.floor(w / 2);
    }
  }
  return { suggestion: lrs[steepest], minimumOver10 };
}

/** A relative change of the smoothed loss below this is noise, not a descent or a climb. */
const FLAT = 0.1;
