import { describe, expect, it } from 'vitest';
import { suggest } from '../../src/train/lr-find.js';
import { scheduleAt } from '../../src/train/schedule.js';

describe('LR range test', () => {
  it('suggests the rate where the loss falls fastest, before the minimum', () => {
    const lrs = Array.from({ length: 100 }, (_, i) => 1e-7 * (1e8 ** (i / 99)));
    // flat, then a steep fall centred at 1e-3, a minimum near 1e-1, then divergence
    const losses = lrs.map((lr) => {
      const x = Math.log10(lr);
      return 2 - 1.5 / (1 + Math.exp(-(x + 3) * 3)) + (x > -1 ? (x + 1) ** 2 * 5 : 0);
    });
    const { suggestion, minimumOver10 } = suggest(lrs, losses);
    expect(Math.log10(suggestion)).toBeCloseTo(-3, 0);
    expect(minimumOver10).toBeLessThan(1e-1);
    expect(minimumOver10).toBeGreaterThan(1e-3);
  });

  it('is not fooled by a low first batch: the curve measured fine-tuning a warmed-up head on emoji', () => {
    // 18 steps of the range test (smoothed losses): the first batches happen to be easy, the loss rises
    // while the rate is too small to matter, falls from 6e-3 to 4e-2, then explodes
    const losses = [1.097, 1.135, 1.208, 1.264, 1.368, 1.392, 1.373, 1.354, 1.358, 1.364, 1.363, 1.359, 1.33, 1.29, 1.256, 1.935, 3.483, 24.804];
    const lrs = losses.map((_, i) => 1e-7 * 2.5 ** i);
    const { suggestion, minimumOver10 } = suggest(lrs, losses);
    expect(suggestion).toBeGreaterThan(lrs[11]);
    expect(suggestion).toBeLessThan(lrs[15]);
    expect(minimumOver10).toBeCloseTo(lrs[14] / 10, 12);
  });

  it('on a flat curve (a warmed-up head fine-tuned), a tenth of the rate where the loss starts climbing', () => {
    // measured: graft train --mode finetune --lr find on 320 emoji images of 4 classes, 42 steps
    const losses = [1.285, 1.161, 1.148, 1.051, 1.04, 1.097, 1.08, 1.061, 1.063, 1.022, 1.022, 1.023, 1.02, 1.031, 1.022, 1.029, 1.029, 1.017, 1.048, 1.051, 1.062, 1.061, 1.062, 1.051, 1.057, 1.066, 1.053, 1.067, 1.079, 1.088, 1.112, 1.126, 1.131, 1.171, 1.254, 1.253, 1.38, 1.516, 1.695, 1.861, 3.33, 5.594];
    const lrs = losses.map((_, i) => 1e-7 * 1.36 ** i);
    const { suggestion } = suggest(lrs, losses);
    // the loss passes 1.1 × its minimum at step 31
    expect(suggestion).toBeCloseTo(lrs[31] / 10, 12);
  });

  it('the exponential schedule goes from the start rate to the end rate', () => {
    const c = { name: 'exponential' as const, lr: 10, startLr: 1e-7, totalSteps: 100 };
    expect(scheduleAt(c, 0).lr).toBeCloseTo(1e-7, 12);
    expect(scheduleAt(c, 50).lr).toBeCloseTo(Math.sqrt(1e-7 * 10), 8);
    expect(scheduleAt(c, 100).lr).toBeCloseTo(10, 8);
  });
});
