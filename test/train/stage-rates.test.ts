import { describe, expect, it } from 'vitest';
import { stageLrScales } from '../../src/train/finetune.js';

describe('discriminative learning rates', () => {
  it('run geometrically from lr / lrMult (earliest stage) to lr / √lrMult (the stage next to the head)', () => {
    const s = stageLrScales(3, 100);
    expect(s.map((x) => Math.log10(x))).toEqual([-2, -1.5, -1].map((v) => expect.closeTo(v, 12)));
  });
  it('one unfrozen stage learns at lr / √lrMult, as the last of several does', () => {
    expect(stageLrScales(1, 100)[0]).toBeCloseTo(0.1, 12);
    expect(stageLrScales(5, 100)[4]).toBeCloseTo(0.1, 12);
  });
});
