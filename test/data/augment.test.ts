import { describe, expect, it } from 'vitest';
import { applyJitter, augmentSampler, DEFAULT_AUGMENT, IMAGENET_TRAIN_AUGMENT, NO_AUGMENT, roundHalfEven, sampleAugment, sampleCrop, validateAugment, type AugmentConfig } from '../../src/data/augment.js';
import { isGraftError } from '../../src/errors.js';
import { createRng, fork } from '../../src/util/random.js';

describe('sampleAugment', () => {
  it('is deterministic per (seed, epoch, image) and independent of the order images are visited', () => {
    const forward = Array.from({ length: 20 }, (_, i) => sampleAugment(fork(42, 3, i), 640, 480));
    const backward = Array.from({ length: 20 }, (_, k) => 19 - k).map((i) => sampleAugment(fork(42, 3, i), 640, 480));
    expect(backward.reverse()).toEqual(forward);
    expect(sampleAugment(fork(42, 4, 0), 640, 480)).not.toEqual(forward[0]);
    expect(sampleAugment(fork(43, 3, 0), 640, 480)).not.toEqual(forward[0]);
  });

  it('crops cover the configured area range and aspect ratios, inside the image; flips half the time', () => {
    const W = 640;
    const H = 480;
    const n = 4000;
    const r = createRng(11);
    let flips = 0;
    let minArea = 1;
    let maxArea = 0;
    const orders = new Set<string>();
    const problems: string[] = [];
    for (let i = 0; i < n; i++) {
      const p = sampleAugment(r, W, H);
      const c = p.crop!;
      const area = (c.width * c.height) / (W * H);
      const ratio = c.width / c.height;
      minArea = Math.min(minArea, area);
      maxArea = Math.max(maxArea, area);
      if (!(c.left >= 0 && c.top >= 0 && c.left + c.width <= W && c.top + c.height <= H)) problems.push(`outside: ${JSON.stringify(c)}`);
      // integer rounding of w and h moves the area and ratio a little past the sampled ones
      if (area < 0.35 - 0.005) problems.push(`area ${area}`);
      if (ratio < 3 / 4 - 0.01 || ratio > 4 / 3 + 0.01) problems.push(`ratio ${ratio}`);
      for (const k of ['brightness', 'contrast', 'saturation'] as const) if (p[k] < 0.8 || p[k] > 1.2) problems.push(`${k} ${p[k]}`);
      orders.add(p.jitterOrder.join());
      if (p.flip) flips++;
    }
    expect(problems).toEqual([]);
    expect(minArea).toBeLessThan(0.37);
    expect(maxArea).toBeGreaterThan(0.95);
    expect(Math.abs(flips / n - 0.5)).toBeLessThan(0.035);
    expect(orders.size).toBe(6);
  });

  it("the ImageNet recipe reaches down to 8 % of the area; disabled parts leave the image alone", () => {
    const r = createRng(5);
    let min = 1;
    for (let i = 0; i < 2000; i++) {
      const c = sampleAugment(r, 500, 500, IMAGENET_TRAIN_AUGMENT).crop!;
      min = Math.min(min, (c.width * c.height) / 250_000);
    }
    expect(min).toBeLessThan(0.1);
    expect(min).toBeGreaterThanOrEqual(0.075);
    const off: AugmentConfig = { crop: null, hflip: 0, brightness: 0, contrast: 0, saturation: 0 };
    const p = sampleAugment(r, 500, 500, off);
    expect(p.crop).toBeUndefined();
    expect([p.flip, p.brightness, p.contrast, p.saturation]).toEqual([false, 1, 1, 1]);
  });

  it('falls back to the largest centred crop within the ratio range for very elongated images', () => {
    // 1000 × 10: no crop of ≥ 35 % area with ratio ≤ 4/3 fits, so every attempt fails
    const c = sampleCrop(createRng(1), 1000, 10, [0.35, 1], [3 / 4, 4 / 3]);
    expect(c).toEqual({ left: 493, top: 0, width: 13, height: 10 });
    const tall = sampleCrop(createRng(1), 10, 1000, [0.35, 1], [3 / 4, 4 / 3]);
    expect(tall).toEqual({ left: 0, top: 493, width: 10, height: 13 });
    // scale and ratio pinned to 1 on a square image: the whole image
    expect(sampleCrop(createRng(1), 64, 64, [1, 1], [1, 1])).toEqual({ left: 0, top: 0, width: 64, height: 64 });
  });

  it('augmentSampler validates its config', () => {
    const bad = [
      { ...DEFAULT_AUGMENT, crop: { scale: [0, 1] as [number, number], ratio: [3 / 4, 4 / 3] as [number, number] } },
      { ...DEFAULT_AUGMENT, crop: { scale: [0.5, 0.4] as [number, number], ratio: [3 / 4, 4 / 3] as [number, number] } },
      { ...DEFAULT_AUGMENT, hflip: 1.5 },
      { ...DEFAULT_AUGMENT, brightness: -0.1 },
    ];
    for (const cfg of bad) {
      let err: unknown;
      try {
        augmentSampler(createRng(1), cfg);
      } catch (e) {
        err = e;
      }
      expect(isGraftError(err, 'INVALID_ARGUMENT'), JSON.stringify(cfg)).toBe(true);
    }
    expect(validateAugment(DEFAULT_AUGMENT)).toBe(DEFAULT_AUGMENT);
  });
});

describe('applyJitter', () => {
  const px = () => Float32Array.of(200, 100, 50, 10, 20, 30);
  const luma = (r: number, g: number, b: number) => 0.2989 * r + 0.587 * g + 0.114 * b;

  it('brightness scales and clamps', () => {
    const v = px();
    applyJitter(v, { ...NO_AUGMENT, brightness: 1.5 });
    expect(Array.from(v)).toEqual([255, 150, 75, 15, 30, 45]);
  });

  it('saturation 0 gives each pixel its grey; contrast 0 gives every pixel the mean grey', () => {
    const s = px();
    applyJitter(s, { ...NO_AUGMENT, saturation: 0 });
    const g0 = luma(200, 100, 50);
    const g1 = luma(10, 20, 30);
    for (let c = 0; c < 3; c++) {
      expect(s[c]).toBeCloseTo(g0, 4);
      expect(s[3 + c]).toBeCloseTo(g1, 4);
    }
    const k = px();
    applyJitter(k, { ...NO_AUGMENT, contrast: 0 });
    for (const v of k) expect(v).toBeCloseTo((g0 + g1) / 2, 4);
  });

  it('runs the ops in the given order', () => {
    const a = px();
    const b = px();
    applyJitter(a, { ...NO_AUGMENT, brightness: 1.5, saturation: 0, jitterOrder: ['brightness', 'saturation', 'contrast'] });
    applyJitter(b, { ...NO_AUGMENT, brightness: 1.5, saturation: 0, jitterOrder: ['saturation', 'brightness', 'contrast'] });
    // brightness first clamps red at 255 before greying; greying first does not clamp
    expect(a[0]).toBeCloseTo(luma(255, 150, 75), 4);
    expect(b[0]).toBeCloseTo(luma(200, 100, 50) * 1.5, 4);
  });
});

describe('roundHalfEven', () => {
  it("rounds like Python's round()", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, 58.5, 17.5].map(roundHalfEven)).toEqual([0, 2, 2, 0, -2, 2, 3, 58, 18]);
  });
});
