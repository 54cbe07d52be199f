import { describe, expect, it } from 'vitest';
import { clipGradNorm, Optimizer } from '../../src/train/optim.js';
import { scheduleAt } from '../../src/train/schedule.js';

const f = (...v: number[]) => Float32Array.from(v);

describe('optimizers follow torch.optim exactly', () => {
  it('SGD with momentum, dampening-free, weight decay: two steps by hand', () => {
    const w = f(1, -2);
    const opt = new Optimizer({ name: 'sgd', momentum: 0.9, weightDecay: 0.1 }, [{ params: ['w'] }]);
    opt.step(new Map([['w', w]]), new Map([['w', f(0.5, 0.5)]]), 0.1);
    // d = g + wd·w = (0.6, 0.3); buf = d; w -= lr·buf
    expect(Array.from(w)).toEqual([1 - 0.06, -2 - 0.03].map(Math.fround));
    opt.step(new Map([['w', w]]), new Map([['w', f(0.5, 0.5)]]), 0.1);
    const d2 = [0.5 + 0.1 * 0.94, 0.5 + 0.1 * -2.03];
    const buf2 = [0.9 * 0.6 + d2[0], 0.9 * 0.3 + d2[1]];
    expect(w[0]).toBeCloseTo(0.94 - 0.1 * buf2[0], 6);
    expect(w[1]).toBeCloseTo(-2.03 - 0.1 * buf2[1], 6);
  });

  it('Nesterov SGD adds momentum·buf to the gradient', () => {
    const w = f(1);
    const opt = new Optimizer({ name: 'sgd', momentum: 0.5, nesterov: true }, [{ params: ['w'] }]);
    opt.step(new Map([['w', w]]), new Map([['w', f(2)]]), 0.1);
    expect(w[0]).toBeCloseTo(1 - 0.1 * (2 + 0.5 * 2), 6);
  });

  it('AdamW: decoupled decay, bias-corrected first step moves by lr·sign(g)', () => {
    const w = f(1, -1, 0.5);
    const opt = new Optimizer({ name: 'adamw', weightDecay: 0.01 }, [{ params: ['w'] }]);
    opt.step(new Map([['w', w]]), new Map([['w', f(3, -0.2, 1e-3)]]), 1e-2);
    const shrink = 1 - 1e-2 * 0.01;
    // m̂ = g, v̂ = g², step = lr·g/(|g| + eps)
    expect(w[0]).toBeCloseTo(1 * shrink - 1e-2 * (3 / (3 + 1e-8)), 6);
    expect(w[1]).toBeCloseTo(-1 * shrink + 1e-2, 6);
    expect(w[2]).toBeCloseTo(0.5 * shrink - 1e-2 * (1e-3 / (1e-3 + 1e-8)), 6);
  });

  it('Adam couples weight decay into the gradient instead', () => {
    const w = f(2);
    const opt = new Optimizer({ name: 'adam', weightDecay: 0.5 }, [{ params: ['w'] }]);
    opt.step(new Map([['w', w]]), new Map([['w', f(-3)]]), 0.1);
    // g' = −3 + 0.5·2 = −2 → step −lr·sign
    expect(w[0]).toBeCloseTo(2.1, 6);
  });

  it('parameter groups scale the learning rate and override weight decay', () => {
    const a = f(1);
    const b = f(1);
    const opt = new Optimizer({ name: 'sgd', momentum: 0, weightDecay: 1 }, [{ params: ['a'], lrScale: 0.1 }, { params: ['b'], weightDecay: 0 }]);
    opt.step(new Map([['a', a], ['b', b]]), new Map([['a', f(1)], ['b', f(1)]]), 1);
    expect(a[0]).toBeCloseTo(1 - 0.1 * 2, 6);
    expect(b[0]).toBeCloseTo(0, 6);
  });

  it('state export/import resumes identically', () => {
    const run = (split: boolean) => {
      const w = f(1, 2, 3);
      let opt = new Optimizer({ name: 'adamw' }, [{ params: ['w'] }]);
      for (let k = 0; k < 6; k++) {
        if (split && k === 3) {
          const saved = structuredClone(opt.exportState());
          opt = new Optimizer({ name: 'adamw' }, [{ params: ['w'] }]);
          opt.importState(saved);
        }
        opt.step(new Map([['w', w]]), new Map([['w', f(Math.sin(k), Math.cos(k), 0.3)]]), 0.01);
      }
      return Array.from(w);
    };
    expect(run(true)).toEqual(run(false));
  });

  it('clipGradNorm scales to the max norm and reports the norm', () => {
    const g = [f(3, 0), f(4)];
    expect(clipGradNorm(g, 1)).toBeCloseTo(5, 6);
    expect(Math.hypot(g[0][0], g[1][0])).toBeCloseTo(1, 5);
  });
});

describe('schedules', () => {
  it('one-cycle: lr/25 → lr at 25 % → lr/1e5, momentum 0.95 → 0.85 → 0.95 (fastai)', () => {
    const c = { name: 'one-cycle' as const, lr: 1e-2, totalSteps: 100 };
    expect(scheduleAt(c, 0).lr).toBeCloseTo(1e-2 / 25, 10);
    expect(scheduleAt(c, 25)).toEqual({ lr: 1e-2, momentum: 0.85 });
    expect(scheduleAt(c, 100).lr).toBeCloseTo(1e-7, 12);
    expect(scheduleAt(c, 100).momentum).toBeCloseTo(0.95, 10);
    for (let s = 1; s <= 25; s++) expect(scheduleAt(c, s).lr).toBeGreaterThan(scheduleAt(c, s - 1).lr);
    for (let s = 26; s <= 100; s++) expect(scheduleAt(c, s).lr).toBeLessThan(scheduleAt(c, s - 1).lr);
  });
  it('cosine with warm-up, step and constant', () => {
    const cos = { name: 'cosine' as const, lr: 1, totalSteps: 110, warmupSteps: 10 };
    expect(scheduleAt(cos, 0).lr).toBeCloseTo(0.1, 10);
    expect(scheduleAt(cos, 10).lr).toBeCloseTo(1, 10);
    expect(scheduleAt(cos, 60).lr).toBeCloseTo(0.5, 10);
    expect(scheduleAt(cos, 110).lr).toBeCloseTo(0, 10);
    expect(scheduleAt({ name: 'step', lr: 1, totalSteps: 90, stepSize: 30, gamma: 0.1 }, 65).lr).toBeCloseTo(0.01, 10);
    expect(scheduleAt({ name: 'constant', lr: 0.3, totalSteps: 5 }, 4).lr).toBe(0.3);
  });
});
