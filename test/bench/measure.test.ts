import { describe, expect, it } from 'vitest';
import { medianInterval, signTestP } from '../../bench/lib/measure.js';

describe('medianInterval (bench/finetune/paired.ts)', () => {
  const ranks = (n: number) => {
    // the values 1..n shuffled (7 is prime to every n below): the interval's ends are then its ranks
    const xs = Array.from({ length: n }, (_, i) => ((i * 7) % n) + 1);
    return medianInterval(xs);
  };

  it('picks the tabulated order statistics of the 95 % interval for the median', () => {
    // the standard sign-test table: n = 6 → (1, 6), 10 → (2, 9), 20 → (6, 15), 60 → (22, 39), 100 → (40, 61)
    expect(ranks(6)).toEqual([1, 6]);
    expect(ranks(10)).toEqual([2, 9]);
    expect(ranks(20)).toEqual([6, 15]);
    expect(ranks(60)).toEqual([22, 39]);
    expect(ranks(100)).toEqual([40, 61]);
  });

  it('has no 95 % interval below six values', () => {
    expect(ranks(5)).toBeUndefined();
    expect(medianInterval([])).toBeUndefined();
  });

  it('brackets the sample median of real-valued ratios', () => {
    const xs = [1.12, 0.98, 1.31, 1.04, 1.06, 1.04, 0.96, 1.16, 0.99, 1.12, 0.92, 0.86, 1.08];
    const [lo, hi] = medianInterval(xs)!;
    expect([lo, hi]).toEqual([0.96, 1.12]); // n = 13: ranks 3 and 11
  });
});

describe('signTestP', () => {
  it('is the one-sided binomial tail of that many wins', () => {
    expect(signTestP(12, 15)).toBeCloseTo(0.017578125, 12); // (C(15,12) + C(15,13) + C(15,14) + C(15,15)) / 2^15
    expect(signTestP(10, 10)).toBeCloseTo(1 / 1024, 12);
    expect(signTestP(5, 10)).toBeCloseTo(638 / 1024, 12);
    expect(signTestP(0, 10)).toBe(1);
  });
});
