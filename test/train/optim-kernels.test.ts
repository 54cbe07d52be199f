/**
 * The WebAssembly optimizer kernels (src/train/kernels): the shipped binary is the compiled source, the
 * arena hands out aligned arrays, and the kernels land where the JS loops land (torch.optim semantics;
 * test/autodiff/torch.test.ts checks both against PyTorch) for every length, including SIMD tails.
 */
import { describe, expect, it } from 'vitest';
import { OPTIM_WASM_BASE64 } from '../../src/train/kernels/optim-wasm.js';
import { ParamArena } from '../../src/train/kernels/param-arena.js';
import { Optimizer, type OptimizerConfig } from '../../src/train/optim.js';
import { watToBase64, WASM_MODULES } from '../../scripts/build-wasm.js';

function randoms(n: number, seed: number, scale = 1): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  });
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), 1e-3));
  return worst;
}

describe('optimizer kernels', () => {
  it('optim-wasm.ts is the compiled optim.wat (run `npm run build:wasm` after editing the source)', async () => {
    const [wat, , name] = WASM_MODULES[0];
    expect(name).toBe('OPTIM_WASM_BASE64');
    expect(await watToBase64(wat)).toBe(OPTIM_WASM_BASE64);
  });

  it('the arena hands out zeroed, 16-byte aligned arrays it owns, and refuses to overflow', () => {
    const arena = ParamArena.create(ParamArena.floatsFor([5, 3]))!;
    expect(arena).toBeDefined();
    const a = arena.alloc(5);
    const b = arena.alloc(3);
    expect(a.byteOffset % 16).toBe(0);
    expect(b.byteOffset % 16).toBe(0);
    expect(b.byteOffset).toBeGreaterThanOrEqual(a.byteOffset + 5 * 4);
    expect(Array.from(b)).toEqual([0, 0, 0]);
    expect(arena.owns(a, b)).toBe(true);
    expect(arena.owns(a, new Float32Array(5))).toBe(false);
    // the memory is whole 64 KiB pages: fill what is left, then one more float fails
    const rest = 16384 - 12;
    arena.alloc(rest);
    expect(() => arena.alloc(1)).toThrow(RangeError);
  });

  const configs: [string, OptimizerConfig][] = [
    ['AdamW', { name: 'adamw', weightDecay: 0.05 }],
    ['Adam with L2 decay', { name: 'adam', weightDecay: 0.01, betas: [0.8, 0.99], eps: 1e-6 }],
    ['SGD momentum, dampening, decay', { name: 'sgd', momentum: 0.9, dampening: 0.1, weightDecay: 1e-3 }],
    ['SGD Nesterov', { name: 'sgd', momentum: 0.7, nesterov: true, weightDecay: 1e-2 }],
  ];
  for (const [label, config] of configs) {
    it(`${label}: kernels match the JS loops over 4 steps, lengths 1 to 1001 (SIMD body and scalar tail)`, () => {
      const lengths = [1, 3, 4, 7, 1001];
      const total = ParamArena.floatsFor(lengths);
      const arena = ParamArena.create(4 * total)!;
      const names = lengths.map((n) => `p${n}`);
      const jsWeights = new Map(lengths.map((n, k) => [names[k], randoms(n, k + 1)]));
      const inArena = (a: Float32Array) => {
        const copy = arena.alloc(a.length);
        copy.set(a);
        return copy;
      };
      const wasmWeights = new Map([...jsWeights].map(([k, w]) => [k, inArena(w)]));
      const grads = new Map([...jsWeights].map(([k, w]) => [k, arena.alloc(w.length)]));
      const js = new Optimizer(config, [{ params: names }]);
      const wasm = new Optimizer(config, [{ params: names }], { arena });
      for (let t = 0; t < 4; t++) {
        for (const [k, g] of grads) g.set(randoms(g.length, 100 * t + k.length, 0.1));
        js.step(jsWeights, new Map([...grads].map(([k, g]) => [k, g.slice()])), 0.01, t === 3 ? 0.85 : undefined);
        wasm.step(wasmWeights, grads, 0.01, t === 3 ? 0.85 : undefined);
      }
      for (const [k, w] of jsWeights) {
        expect(maxRelDiff(wasmWeights.get(k)!, w), k).toBeLessThan(1e-5);
        // the weights moved: a kernel that did nothing would fail here
        expect(maxRelDiff(wasmWeights.get(k)!, randoms(w.length, names.indexOf(k) + 1)), k).toBeGreaterThan(1e-4);
      }
      const buffers = Object.values(wasm.exportState().buffers).flatMap((b) => Object.values(b));
      expect(buffers.length).toBeGreaterThan(0);
      expect(arena.owns(...buffers)).toBe(true);
    });
  }

  it('rewinding to an earlier state (as lr find does) reuses the arena arrays instead of running the arena out', () => {
    const n = 4096; // weight, gradient, m and v fill the arena's one 64 KiB page exactly
    const arena = ParamArena.create(4 * ParamArena.floatsFor([n]))!;
    const w = arena.alloc(n);
    const g = arena.alloc(n);
    const opt = new Optimizer({ name: 'adamw' }, [{ params: ['w'] }], { arena });
    const start = structuredClone(opt.exportState());
    const run = () => {
      w.set(randoms(n, 3));
      opt.importState(start);
      for (let t = 0; t < 3; t++) {
        g.set(randoms(n, t, 0.1));
        opt.step(new Map([['w', w]]), new Map([['w', g]]), 0.01);
      }
      return w.slice();
    };
    const first = run();
    for (let k = 0; k < 20; k++) expect(run()).toEqual(first);
  });

  it('importState copies a checkpointed state into the arena, and training continues as it would have', () => {
    const config: OptimizerConfig = { name: 'adamw', weightDecay: 0.01 };
    const n = 37;
    const arena = ParamArena.create(8 * ParamArena.floatsFor([n]))!;
    const reference = new Optimizer(config, [{ params: ['w'] }]);
    const wRef = randoms(n, 7);
    for (let t = 0; t < 3; t++) reference.step(new Map([['w', wRef]]), new Map([['w', randoms(n, t, 0.1)]]), 0.01);
    const saved = structuredClone(reference.exportState());

    const resumed = new Optimizer(config, [{ params: ['w'] }], { arena });
    resumed.importState(saved);
    const w = arena.alloc(n);
    w.set(wRef);
    const g = arena.alloc(n);
    expect(arena.owns(...Object.values(resumed.exportState().buffers.w))).toBe(true);
    for (let t = 3; t < 5; t++) {
      g.set(randoms(n, t, 0.1));
      reference.step(new Map([['w', wRef]]), new Map([['w', g.slice()]]), 0.01);
      resumed.step(new Map([['w', w]]), new Map([['w', g]]), 0.01);
    }
    expect(resumed.stepCount).toBe(5);
    expect(maxRelDiff(w, wRef)).toBeLessThan(1e-5);
  });
});
