import { describe, expect, it } from 'vitest';
import { isGraftError } from '../../src/errors.js';
import { createRng, deriveSeed, fork, shuffle } from '../../src/util/random.js';

const take = (n: number, f: () => number) => Array.from({ length: n }, f);

describe('createRng', () => {
  it('is pinned: the same seed gives the same numbers in every version (resumed runs rely on it)', () => {
    const r = createRng(42);
    expect([r.uint32(), r.uint32(), r.uint32()]).toEqual([1861578697, 488227526, 1585248005]);
    expect(deriveSeed(42, 0, 7)).toBe(1054385457);
  });

  it('fillUint32 gives exactly the values of as many uint32() calls, and the stream continues after it', () => {
    const bulk = createRng(42);
    const one = createRng(42);
    // enough outputs to wrap the counter's low bits and produce values ≥ 2^31 (int32 negatives)
    const filled = Array.from(bulk.fillUint32(new Uint32Array(5000)));
    expect(filled).toEqual(take(5000, () => one.uint32()));
    expect(filled.some((x) => x >= 2 ** 31)).toBe(true);
    expect([bulk.uint32(), bulk.next()]).toEqual([one.uint32(), one.next()]);
  });

  it('repeats for a seed and differs between seeds, including seeds that differ only above 2^32', () => {
    const a = createRng(7);
    const b = createRng(7);
    expect(take(100, a.uint32)).toEqual(take(100, b.uint32));
    const firsts = [0, 1, 2, -1, 2 ** 32, 2 ** 32 + 1, Date.UTC(2026, 0, 1)].map((s) => createRng(s).uint32());
    expect(new Set(firsts).size).toBe(firsts.length);
  });

  it('rejects seeds that are not whole numbers', () => {
    for (const s of [1.5, NaN, Infinity, 2 ** 60]) {
      let err: unknown;
      try {
        createRng(s);
      } catch (e) {
        err = e;
      }
      expect(isGraftError(err, 'INVALID_ARGUMENT'), String(s)).toBe(true);
    }
  });

  it('next() is uniform on [0, 1): mean, variance, deciles', () => {
    const r = createRng(1);
    const xs = take(100_000, r.next);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.002);
    // chi-square over 10 bins, 9 d.o.f.: 27.9 is the 0.999 quantile
    const bins = new Array<number>(10).fill(0);
    for (const x of xs) bins[Math.floor(x * 10)]++;
    const chi = bins.reduce((s, c) => s + (c - 10_000) ** 2 / 10_000, 0);
    expect(chi).toBeLessThan(27.9);
  });

  it('int(lo, hi) covers [lo, hi) evenly; bool(p) hits p; normal() is standard', () => {
    const r = createRng(2);
    const counts = new Map<number, number>();
    for (let i = 0; i < 60_000; i++) {
      const v = r.int(-3, 3);
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([-3, -2, -1, 0, 1, 2]);
    for (const c of counts.values()) expect(Math.abs(c - 10_000)).toBeLessThan(400);
    expect(() => r.int(2, 2)).toThrow(RangeError);

    const hits = take(20_000, () => (r.bool(0.3) ? 1 : 0)).reduce((a, b) => a + b, 0);
    expect(Math.abs(hits / 20_000 - 0.3)).toBeLessThan(0.015);

    const zs = take(50_000, r.normal);
    const m = zs.reduce((s, z) => s + z, 0) / zs.length;
    const v = zs.reduce((s, z) => s + (z - m) ** 2, 0) / zs.length;
    expect(Math.abs(m)).toBeLessThan(0.02);
    expect(Math.abs(v - 1)).toBeLessThan(0.03);
  });
});

describe('fork / deriveSeed', () => {
  it('gives the same stream for the same keys, whatever was drawn before or elsewhere', () => {
    const first = fork(9, 3, 17).uint32();
    const noise = createRng(9);
    take(1000, noise.uint32);
    expect(fork(9, 3, 17).uint32()).toBe(first);
  });

  it('separates keys, key order, strings from numbers, and high bits', () => {
    const seeds = [deriveSeed(5), deriveSeed(5, 0), deriveSeed(5, 1), deriveSeed(5, 0, 1), deriveSeed(5, 1, 0), deriveSeed(5, '1'), deriveSeed(5, 'flip'), deriveSeed(5, 2 ** 33), deriveSeed(6, 0)];
    expect(new Set(seeds).size).toBe(seeds.length);
  });

  it('forked streams are uncorrelated with each other', () => {
    // neighbouring image indices must not give related crops: correlation of first draws ≈ 0
    const n = 5000;
    const a = Array.from({ length: n }, (_, i) => fork(1, 0, i).next());
    const b = Array.from({ length: n }, (_, i) => fork(1, 0, i + 1).next());
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const ma = mean(a);
    const mb = mean(b);
    let cov = 0;
    let va = 0;
    let vb = 0;
    for (let i = 0; i < n; i++) {
      cov += (a[i] - ma) * (b[i] - mb);
      va += (a[i] - ma) ** 2;
      vb += (b[i] - mb) ** 2;
    }
    expect(Math.abs(cov / Math.sqrt(va * vb))).toBeLessThan(0.06);
  });
});

describe('shuffle', () => {
  it('permutes deterministically and moves every element to every place', () => {
    const base = Array.from({ length: 10 }, (_, i) => i);
    const s1 = shuffle(createRng(3), [...base]);
    expect([...s1].sort((x, y) => x - y)).toEqual(base);
    expect(shuffle(createRng(3), [...base])).toEqual(s1);
    expect(s1).not.toEqual(base);
    const firstPlace = new Set<number>();
    const r = createRng(4);
    for (let i = 0; i < 200; i++) firstPlace.add(shuffle(r, [...base])[0]);
    expect(firstPlace.size).toBe(10);
  });
});
