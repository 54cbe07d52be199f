import { describe, expect, it } from 'vitest';
import { isGraftError } from '../../src/errors.js';
import { classificationMetrics, softmaxRows } from '../../src/train/metrics.js';

/*
 * 6 items, 4 classes. Class 2 has support but is never predicted; class 3 has no support but is
 * predicted once. Hand-computed:
 *   item  true  probabilities              argmax
 *   0     0     .7  .2  .05 .05            0  ✓
 *   1     0     .4  .5  .05 .05            1  ✗ (0.5 on the wrong class)
 *   2     1     .1  .8  .05 .05            1  ✓
 *   3     1     .1  .6  .1  .2             1  ✓
 *   4     2     .1  .2  .3  .4             3  ✗ (0.4)
 *   5     2     .6  .1  .2  .1             0  ✗ (0.6)
 */
const P = new Float32Array([0.7, 0.2, 0.05, 0.05, 0.4, 0.5, 0.05, 0.05, 0.1, 0.8, 0.05, 0.05, 0.1, 0.6, 0.1, 0.2, 0.1, 0.2, 0.3, 0.4, 0.6, 0.1, 0.2, 0.1]);
const Y = [0, 0, 1, 1, 2, 2];

describe('classificationMetrics', () => {
  const m = classificationMetrics(P, Y, 4);

  it('counts accuracy and the confusion matrix with rows = true class', () => {
    expect(m.n).toBe(6);
    expect(m.accuracy).toBe(0.5);
    expect(m.confusion).toEqual([
      [1, 1, 0, 0],
      [0, 2, 0, 0],
      [1, 0, 0, 1],
      [0, 0, 0, 0],
    ]);
  });

  it('computes mean cross-entropy of the true class', () => {
    const expected = -(Math.log(0.7) + Math.log(0.4) + Math.log(0.8) + Math.log(0.6) + Math.log(0.3) + Math.log(0.2)) / 6;
    expect(m.loss).toBeCloseTo(expected, 6);
  });

  it('gives precision, recall, f1 per class with zero division = 0', () => {
    expect(m.perClass[0]).toEqual({ precision: 0.5, recall: 0.5, f1: 0.5, support: 2 });
    expect(m.perClass[1].precision).toBeCloseTo(2 / 3, 12);
    expect(m.perClass[1].recall).toBe(1);
    expect(m.perClass[1].f1).toBeCloseTo(0.8, 12);
    expect(m.perClass[1].support).toBe(2);
    // never predicted: precision has nothing to divide by
    expect(m.perClass[2]).toEqual({ precision: 0, recall: 0, f1: 0, support: 2 });
    // no support: recall has nothing to divide by; its one prediction is wrong
    expect(m.perClass[3]).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
  });

  it('averages over classes (macro) and by support (weighted)', () => {
    expect(m.macro.precision).toBeCloseTo((0.5 + 2 / 3) / 4, 12);
    expect(m.macro.recall).toBeCloseTo(1.5 / 4, 12);
    expect(m.macro.f1).toBeCloseTo(1.3 / 4, 12);
    expect(m.weighted.precision).toBeCloseTo((0.5 * 2 + (2 / 3) * 2) / 6, 12);
    // weighted recall is accuracy, by definition
    expect(m.weighted.recall).toBeCloseTo(m.accuracy, 12);
    expect(m.weighted.f1).toBeCloseTo((0.5 * 2 + 0.8 * 2) / 6, 12);
  });

  it('lists the most confident mistakes first', () => {
    expect(m.worst.map((w) => w.index)).toEqual([5, 1, 4]);
    expect(m.worst[0]).toEqual({ index: 5, trueLabel: 2, predLabel: 0, probability: Math.fround(0.6), trueProbability: Math.fround(0.2) });
    expect(m.worst[2]).toMatchObject({ trueLabel: 2, predLabel: 3, probability: Math.fround(0.4) });
    expect(classificationMetrics(P, Y, 4, { worst: 2 }).worst.map((w) => w.index)).toEqual([5, 1]);
    expect(classificationMetrics(P, Y, 4, { worst: 0 }).worst).toEqual([]);
  });

  it('reports no top-k for 5 classes or fewer unless asked; top-2 counts the true class in the best two', () => {
    expect(m.topK).toBeNull();
    // item 1: true 0.4 is second; item 4: 0.3 is second; item 5: 0.2 is second → all 6 in the top 2
    expect(classificationMetrics(P, Y, 4, { topK: 2 }).topK).toEqual({ k: 2, accuracy: 1 });
    expect(classificationMetrics(P, Y, 4, { topK: 1 }).topK).toEqual({ k: 1, accuracy: 0.5 });
  });

  it('leaves a class out of the macro mean only when it is neither true nor predicted', () => {
    const r = classificationMetrics(new Float32Array([0.9, 0.05, 0.05, 0.1, 0.8, 0.1]), [0, 1], 3);
    expect(r.macro).toEqual({ precision: 1, recall: 1, f1: 1 });
    expect(r.perClass[2]).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
  });

  it('uses top-5 by default above 5 classes', () => {
    const K = 7;
    // item 0: true class 6 ranks 6th → not in top 5; item 1: true class 0 ranks 5th → in
    const p0 = [0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05];
    const p1 = [0.1, 0.3, 0.2, 0.15, 0.12, 0.08, 0.05];
    const r = classificationMetrics(new Float32Array([...p0, ...p1]), [6, 0], K);
    expect(r.topK).toEqual({ k: 5, accuracy: 0.5 });
    expect(r.accuracy).toBe(0);
  });

  it('breaks argmax ties toward the lower class, and top-k agrees', () => {
    const r = classificationMetrics(new Float32Array([0.5, 0.5, 0.5, 0.5]), [0, 1], 2, { topK: 1 });
    expect(r.confusion).toEqual([
      [1, 0],
      [1, 0],
    ]);
    expect(r.accuracy).toBe(0.5);
    expect(r.topK).toEqual({ k: 1, accuracy: 0.5 });
    // k = K would be 1 by definition, so it is not reported
    expect(classificationMetrics(new Float32Array([0.5, 0.5]), [1], 2, { topK: 2 }).topK).toBeNull();
    const r3 = classificationMetrics(new Float32Array([0.4, 0.4, 0.2]), [1], 3, { topK: 1 });
    expect(r3.topK).toEqual({ k: 1, accuracy: r3.accuracy });
    expect(r3.accuracy).toBe(0);
  });

  it('takes logits: exact log-softmax loss, same decisions as probabilities', () => {
    // logits [0, ln 3]: p = [1/4, 3/4]
    const r = classificationMetrics(new Float32Array([0, Math.log(3), 1000, 0]), [0, 1], 2, { logits: true });
    expect(r.loss).toBeCloseTo((Math.log(4) + 1000) / 2, 4);
    expect(r.accuracy).toBe(0);
    expect(r.worst[0]).toMatchObject({ index: 1, predLabel: 0, probability: 1, trueProbability: 0 });
    expect(r.worst[1].probability).toBeCloseTo(0.75, 6);

    const logits = new Float32Array([2, -1, 0.5, 0.1, 0.3, 3, -2, 4, 1]);
    const a = classificationMetrics(logits, [0, 2, 1], 3, { logits: true });
    const b = classificationMetrics(softmaxRows(logits, 3), [0, 2, 1], 3);
    expect(a.confusion).toEqual(b.confusion);
    expect(a.loss).toBeCloseTo(b.loss, 5);
  });

  it('clamps a zero probability so one confident mistake costs ~27.6 nats, not Infinity', () => {
    const r = classificationMetrics(new Float32Array([1, 0]), [1], 2);
    expect(r.loss).toBeCloseTo(-Math.log(1e-12), 6);
  });

  it('softmaxRows is stable for large logits and sums to 1', () => {
    const s = softmaxRows(new Float32Array([1000, 1000, 0, 1, 2, 3]), 3);
    expect(Array.from(s.slice(0, 3))).toEqual([0.5, 0.5, 0]);
    const e = [1, Math.E, Math.E ** 2];
    const z = e.reduce((a, b) => a + b);
    for (let j = 0; j < 3; j++) expect(s[3 + j]).toBeCloseTo(e[j] / z, 6);
  });

  it('refuses inputs that cannot be right, with INVALID_ARGUMENT', () => {
    const bad: [Float32Array, number[], number][] = [
      [new Float32Array(5), [0, 1], 3], // wrong length
      [new Float32Array(6), [0, 3], 3], // label out of range
      [new Float32Array(6), [0, 1.5], 3], // not an index
      [new Float32Array(0), [], 3], // nothing to measure
      [new Float32Array(2), [0, 0], 1], // one class
      [new Float32Array([0.5, NaN, 0.2, 0.8]), [0, 1], 2], // diverged model
    ];
    for (const [p, y, k] of bad) {
      let err: unknown;
      try {
        classificationMetrics(p, y, k);
      } catch (e) {
        err = e;
      }
      expect(isGraftError(err, 'INVALID_ARGUMENT'), `${p.length} values, labels ${y}, K=${k}`).toBe(true);
    }
  });
});
