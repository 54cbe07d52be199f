import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { NO_AUGMENT, type AugmentParams } from '../../src/data/augment.js';
import { decodeImage, type DecodedImage } from '../../src/data/image.js';
import { batchToTensor, imageToPixels, imageToTensor, jpegShrinkFactor, pixelsToTensor, planResize, tensorSize, type Resampler } from '../../src/data/preprocess.js';
import { resizeRGB } from '../../src/data/resample.js';
import { isGraftError } from '../../src/errors.js';
import { IMAGENET_DEFAULT, type Interpolation, type PreprocessConfig } from '../../src/models/preprocess.js';

/*
 * Reference: scripts/gen-preprocess-fixture.py ran torchvision 0.14 / PIL 9.4
 * Resize(floor(size / crop_pct)) + CenterCrop(size) + ToTensor (+ Normalize) on the images in
 * test/fixtures/preprocess/ and stored the uint8 results (ToTensor × 255 is exact) in expected.u8.gz.
 */
const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'preprocess');

interface Case {
  image: string;
  size: number;
  cropPct: number;
  interpolation: Interpolation;
  source: [number, number];
  resized: [number, number];
  offset: number;
  bytes: number;
}
interface Manifest {
  mean: [number, number, number];
  std: [number, number, number];
  cases: Case[];
  normalized: { image: string; size: number; cropPct: number; interpolation: Interpolation; samples: [number, number, number, number][] }[];
}
const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;
const expected = gunzipSync(readFileSync(join(FIXTURES, 'expected.u8.gz')));

const cfgFor = (size: number, cropPct: number, interpolation: Interpolation): PreprocessConfig => ({ ...IMAGENET_DEFAULT, inputSize: [size, size], cropPct, interpolation });

function diffStats(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    sum += d;
  }
  return { max, mean: sum / a.length };
}

async function compare(c: Case, resampler: Resampler): Promise<{ max: number; mean: number }> {
  const { pixels } = await imageToPixels(join(FIXTURES, c.image), cfgFor(c.size, c.cropPct, c.interpolation), { resampler });
  expect([pixels.width, pixels.height]).toEqual([c.size, c.size]);
  return diffStats(pixels.data, expected.subarray(c.offset, c.offset + c.bytes));
}

describe('against torchvision (fixture)', () => {
  it('covers every interpolation, upscaling, downscaling, EXIF, alpha and 16-bit sources', () => {
    expect(new Set(manifest.cases.map((c) => c.interpolation))).toEqual(new Set(['nearest', 'bilinear', 'bicubic', 'lanczos']));
    expect(manifest.cases.length).toBeGreaterThanOrEqual(30);
  });

  it('plans the same resize as torchvision for every source', () => {
    for (const c of manifest.cases) {
      const [w, h] = c.source;
      const plan = planResize(w, h, cfgFor(c.size, c.cropPct, c.interpolation));
      expect([plan.width, plan.height], `${c.image} ${c.cropPct}`).toEqual(c.resized);
    }
  });

  it("the 'exact' resampler equals torchvision's output byte for byte", async () => {
    for (const c of manifest.cases) {
      const { max } = await compare(c, 'exact');
      expect(max, `${c.image} ${c.size}/${c.cropPct} ${c.interpolation}`).toBe(0);
    }
  });

  /*
   * libvips (resampler 'sharp') measured against torchvision, in grey levels of 255:
   *   no-op resize (crop only), exact 2× nearest:        identical
   *   exact 2× bilinear / bicubic / lanczos:             max 1 / 1 / 2, mean ≤ 0.16
   *   downscale 2.2–10× bilinear / bicubic / lanczos:     max ≤ 6 / 8 / 10, mean ≤ 1.3 / 1.8 / 2.2 on PNGs
   *                                                      with hard edges (smooth gradients: max 2, mean ≤ 0.42);
   *                                                      4:2:0 JPEG stripes (shrink-on-load): max 13 / 14, mean 2.9 / 4.5
   *   upscale 1.5–2× (libvips aligns samples differently): mean 12–16, max ≤ 41
   *   nearest at non-integer scales picks other pixels:  not comparable
   */
  it('sharp resampling stays within the measured distance of torchvision', async () => {
    const bounds: Record<string, { max: number; mean: number }> = {
      bilinear: { max: 13, mean: 3 },
      bicubic: { max: 14, mean: 4.5 },
      lanczos: { max: 10, mean: 2.2 },
    };
    for (const c of manifest.cases) {
      const s = await compare(c, 'sharp');
      const label = `${c.image} ${c.size}/${c.cropPct} ${c.interpolation}: max ${s.max}, mean ${s.mean.toFixed(3)}`;
      const noop = c.resized[0] === c.source[0] && c.resized[1] === c.source[1];
      const twoX = c.source[0] === 2 * c.resized[0] && c.source[1] === 2 * c.resized[1];
      const upscale = c.resized[0] > c.source[0];
      if (noop || (twoX && c.interpolation === 'nearest')) expect(s.max, label).toBe(0);
      else if (c.interpolation === 'nearest') continue;
      else if (twoX) {
        expect(s.max, label).toBeLessThanOrEqual(2);
        expect(s.mean, label).toBeLessThanOrEqual(0.2);
      } else if (upscale) {
        expect(s.mean, label).toBeLessThanOrEqual(17);
      } else {
        expect(s.max, label).toBeLessThanOrEqual(bounds[c.interpolation].max);
        expect(s.mean, label).toBeLessThanOrEqual(bounds[c.interpolation].mean);
      }
    }
  });

  it("matches torchvision's Normalize output to float32 precision", async () => {
    expect(manifest.normalized.length).toBeGreaterThan(0);
    for (const n of manifest.normalized) {
      const cfg: PreprocessConfig = { ...cfgFor(n.size, n.cropPct, n.interpolation), mean: manifest.mean, std: manifest.std };
      const t = await imageToTensor(join(FIXTURES, n.image), cfg, { resampler: 'exact' });
      for (const [c, y, x, v] of n.samples) expect(Math.abs(t[c * n.size * n.size + y * n.size + x] - v)).toBeLessThan(1e-6);
    }
  });
});

describe('planResize', () => {
  const cfg = IMAGENET_DEFAULT as PreprocessConfig;

  it('resizes the shorter side to floor(size / cropPct) and the longer to int(S × long / short)', () => {
    expect(planResize(500, 375, cfg)).toMatchObject({ width: 341, height: 256 });
    expect(planResize(375, 500, cfg)).toMatchObject({ width: 256, height: 341 });
    expect(planResize(4000, 3000, { ...cfg, cropPct: 1 })).toMatchObject({ width: 298, height: 224 });
    // Inception: 299 / 0.875 = 341.7 → 341
    expect(planResize(299, 299, { ...cfg, inputSize: [299, 299] })).toMatchObject({ width: 341, height: 341 });
  });

  it("centre-crops with Python's round-half-to-even", () => {
    // (341 − 224) / 2 = 58.5 → 58 (Math.round would say 59)
    expect(planResize(500, 375, cfg).window).toEqual({ left: 58, top: 16, width: 224, height: 224 });
    // (259 − 224) / 2 = 17.5 → 18
    expect(planResize(259, 256, cfg).window).toEqual({ left: 18, top: 16, width: 224, height: 224 });
    expect(planResize(256, 256, cfg).window).toEqual({ left: 16, top: 16, width: 224, height: 224 });
  });

  it('squash resizes straight to the input size; an augmentation crop is resized whole', () => {
    expect(planResize(640, 480, { ...cfg, resize: 'squash' })).toEqual({
      box: { left: 0, top: 0, width: 640, height: 480 },
      width: 224,
      height: 224,
      window: { left: 0, top: 0, width: 224, height: 224 },
    });
    const crop = { left: 10, top: 20, width: 300, height: 200 };
    expect(planResize(640, 480, cfg, crop)).toEqual({ box: crop, width: 224, height: 224, window: { left: 0, top: 0, width: 224, height: 224 } });
  });

  it('keeps the aspect ratio for non-square inputs and covers both sides', () => {
    // [h, w] = [224, 320] → scaled [256, 365]; 640×480 must be at least 365 wide and 256 high
    const p = planResize(640, 480, { ...cfg, inputSize: [224, 320] });
    expect([p.width, p.height]).toEqual([365, 273]);
    expect(p.window).toEqual({ left: 22, top: 24, width: 320, height: 224 });
  });
});

/** A tiny model-input-sized picture with known pixels. */
const pic = (w: number, h: number, f: (x: number, y: number) => [number, number, number]): DecodedImage => {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(f(x, y), (y * w + x) * 3);
  return { data, width: w, height: h };
};

describe('normalisation', () => {
  const two = pic(2, 1, (x) => (x === 0 ? [10, 20, 30] : [40, 50, 60]));
  const base: PreprocessConfig = { ...IMAGENET_DEFAULT, inputSize: [1, 2], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
  const f32 = (v: number) => Math.fround(v);

  it('computes ((p × rescale) − mean[c]) / std[c] in NCHW, RGB', () => {
    const t = pixelsToTensor(two, base);
    const want = [(10 / 255 - 0.485) / 0.229, (40 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (50 / 255 - 0.456) / 0.224, (30 / 255 - 0.406) / 0.225, (60 / 255 - 0.406) / 0.225];
    expect(Array.from(t)).toEqual(want.map(f32));
  });

  it('BGR puts blue first and uses mean/std in model channel order', () => {
    const t = pixelsToTensor(two, { ...base, channelOrder: 'BGR', mean: [1, 2, 3], std: [1, 1, 1], rescale: 1 });
    expect(Array.from(t)).toEqual([30 - 1, 60 - 1, 20 - 2, 50 - 2, 10 - 3, 40 - 3]);
  });

  it('NHWC interleaves channels per pixel', () => {
    const t = pixelsToTensor(two, { ...base, layout: 'NHWC', mean: [0, 0, 0], std: [1, 1, 1], rescale: 1 });
    expect(Array.from(t)).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it("Keras 'tf' mode: x / 127.5 − 1 is rescale 1/255, mean 0.5, std 0.5", () => {
    const all = pic(256, 1, (x) => [x, 255 - x, x]);
    const tf: PreprocessConfig = { ...base, inputSize: [1, 256], rescale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
    const t = pixelsToTensor(all, tf);
    for (let x = 0; x < 256; x++) {
      expect(Math.abs(t[x] - (x / 127.5 - 1))).toBeLessThan(1e-6);
      expect(Math.abs(t[256 + x] - ((255 - x) / 127.5 - 1))).toBeLessThan(1e-6);
    }
    expect(t[0]).toBe(-1);
    expect(t[255]).toBe(1);
  });

  it("Keras 'caffe' mode: BGR, minus the ImageNet BGR means, no scaling", () => {
    const caffe: PreprocessConfig = { ...base, channelOrder: 'BGR', rescale: 1, mean: [103.939, 116.779, 123.68], std: [1, 1, 1] };
    const t = pixelsToTensor(two, caffe);
    expect(Array.from(t)).toEqual([30 - 103.939, 60 - 103.939, 20 - 116.779, 50 - 116.779, 10 - 123.68, 40 - 123.68].map(f32));
  });

  it('writes into a caller buffer at an offset and nowhere else', () => {
    const out = new Float32Array(10).fill(NaN);
    const r = pixelsToTensor(two, { ...base, mean: [0, 0, 0], std: [1, 1, 1], rescale: 1 }, out, 3);
    expect(r).toBe(out);
    expect(Array.from(out.subarray(3, 9))).toEqual([10, 40, 20, 50, 30, 60]);
    expect([out[0], out[1], out[2], out[9]].every(Number.isNaN)).toBe(true);
    let err: unknown;
    try {
      pixelsToTensor(two, base, new Float32Array(10), 5);
    } catch (e) {
      err = e;
    }
    expect(isGraftError(err, 'INVALID_ARGUMENT')).toBe(true);
  });

  it('flip mirrors every row', () => {
    const img = pic(5, 3, (x, y) => [x * 10, y * 10, 1]);
    const cfg: PreprocessConfig = { ...base, inputSize: [3, 5], mean: [0, 0, 0], std: [1, 1, 1], rescale: 1, layout: 'NHWC' };
    const plain = pixelsToTensor(img, cfg);
    const flipped = pixelsToTensor(img, cfg, undefined, 0, { ...NO_AUGMENT, flip: true });
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 5; x++) {
        for (let c = 0; c < 3; c++) expect(flipped[(y * 5 + x) * 3 + c]).toBe(plain[(y * 5 + (4 - x)) * 3 + c]);
      }
    }
    expect(flipped[0]).toBe(40);
  });
});

describe('augmentation crops of large JPEGs', () => {
  it('shrink on load by 4, only when the crop keeps twice the output size', () => {
    const box = (width: number, height: number) => ({ left: 0, top: 0, width, height });
    expect(jpegShrinkFactor(box(1791, 4000), 224, 224)).toBe(1);
    expect(jpegShrinkFactor(box(1792, 1792), 224, 224)).toBe(4);
    expect(jpegShrinkFactor(box(8000, 8000), 224, 224)).toBe(4);
    expect(jpegShrinkFactor(box(900, 447), 112, 56)).toBe(1);
    expect(jpegShrinkFactor(box(900, 448), 112, 56)).toBe(4);
  });

  it('shrink on load: a few grey levels from the crop of the full decode, which a PNG of the same pixels gets', async () => {
    // a 3000 × 2000 JPEG and a PNG holding exactly its decoded pixels: libvips shrinks only the JPEG on load
    const jpg = await sharp(join(import.meta.dirname, '..', '..', 'examples', 'coffee.jpg')).resize(3000, 2000).jpeg({ quality: 90 }).toBuffer();
    const png = await sharp(jpg).png({ compressionLevel: 1 }).toBuffer();
    for (const [crop, size, k] of [
      [{ left: 300, top: 100, width: 1900, height: 1800 }, 224, 4],
      [{ left: 0, top: 0, width: 3000, height: 1999 }, 224, 4],
      [{ left: 300, top: 100, width: 1900, height: 1800 }, 112, 4],
      [{ left: 100, top: 50, width: 1000, height: 900 }, 224, 1],
    ] as const) {
      expect(jpegShrinkFactor(crop, size, size)).toBe(k);
      const cfg: PreprocessConfig = { ...IMAGENET_DEFAULT, inputSize: [size, size], interpolation: 'bilinear' };
      const augment = { ...NO_AUGMENT, crop };
      const full = (await imageToPixels(png, cfg, { augment })).pixels;
      const s = diffStats((await imageToPixels(jpg, cfg, { augment })).pixels.data, full.data);
      const label = `${JSON.stringify(crop)} → ${size}: max ${s.max}, mean ${s.mean.toFixed(2)}`;
      if (k === 1) expect(s.max, label).toBe(0);
      else {
        // measured: max 5 / 16 / 3, mean 0.28 / 0.50 / 0.45
        expect(s.max, label).toBeGreaterThan(0);
        expect(s.max, label).toBeLessThanOrEqual(20);
        expect(s.mean, label).toBeLessThan(1);
      }
    }
  });

  it('shrink on load crops in upright coordinates (EXIF orientation 6)', async () => {
    // stored 3000 × 2000, upright 2000 × 3000; the reference is a PNG of the upright full decode
    const jpg = await sharp(join(import.meta.dirname, '..', '..', 'examples', 'coffee.jpg')).resize(3000, 2000).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer();
    const up = await decodeImage(jpg);
    expect([up.width, up.height]).toEqual([2000, 3000]);
    const png = await sharp(Buffer.from(up.data), { raw: { width: up.width, height: up.height, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
    const cfg: PreprocessConfig = { ...IMAGENET_DEFAULT, inputSize: [224, 224], interpolation: 'bilinear' };
    const crop = { left: 50, top: 900, width: 1900, height: 1850 };
    expect(jpegShrinkFactor(crop, 224, 224)).toBe(4);
    const got = (await imageToPixels(jpg, cfg, { augment: { ...NO_AUGMENT, crop } })).pixels.data;
    const at = async (left: number, top: number) => (await imageToPixels(png, cfg, { augment: { ...NO_AUGMENT, crop: { ...crop, left, top } } })).pixels.data;
    // measured: mean 1.30 (max 29 at sharp edges, as the same photo stored upright gives); the crop 4 px off: 2.1–3.4
    expect(diffStats(got, await at(crop.left, crop.top)).mean).toBeLessThan(1.6);
    for (const [dx, dy] of [[-4, 0], [4, 0], [0, -4], [0, 4]]) expect(diffStats(got, await at(crop.left + dx, crop.top + dy)).mean, `${dx}, ${dy}`).toBeGreaterThan(1.8);
  });
});


describe('imageToTensor with augmentation', () => {
  /** 64 × 48 PNG where pixel (x, y) = (x, y, 200). */
  async function coordsPng(): Promise<Uint8Array> {
    const w = 64;
    const h = 48;
    const raw = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set([x, y, 200], (y * w + x) * 3);
    return new Uint8Array(await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer());
  }
  const ident: PreprocessConfig = { ...IMAGENET_DEFAULT, inputSize: [20, 20], interpolation: 'nearest', mean: [0, 0, 0], std: [1, 1, 1], rescale: 1, layout: 'NHWC' };

  it('a crop is taken from the source and resized to the input; flip mirrors it', async () => {
    const png = await coordsPng();
    // a 40 × 40 crop at (10, 5) → 20 × 20 nearest: output (x, y) = source (10 + 2x + 1, 5 + 2y + 1)
    const aug: AugmentParams = { ...NO_AUGMENT, crop: { left: 10, top: 5, width: 40, height: 40 } };
    for (const resampler of ['exact', 'sharp'] as const) {
      const t = await imageToTensor(png, ident, { augment: aug, resampler });
      const f = await imageToTensor(png, ident, { augment: { ...aug, flip: true }, resampler });
      for (const [x, y] of [
        [0, 0],
        [7, 3],
        [19, 19],
      ]) {
        const i = (y * 20 + x) * 3;
        expect([t[i], t[i + 1], t[i + 2]], resampler).toEqual([10 + 2 * x + 1, 5 + 2 * y + 1, 200]);
        const j = (y * 20 + (19 - x)) * 3;
        expect([f[j], f[j + 1]], resampler).toEqual([10 + 2 * x + 1, 5 + 2 * y + 1]);
      }
    }
  });

  it('accepts a sampler, called with the upright size', async () => {
    const seen: number[][] = [];
    const file = join(FIXTURES, 'exif6.jpg'); // stored 240 × 160, upright 160 × 240
    await imageToTensor(file, ident, {
      augment: (w, h) => {
        seen.push([w, h]);
        return NO_AUGMENT;
      },
    });
    expect(seen).toEqual([[160, 240]]);
  });

  it('crops in upright coordinates with either resampler', async () => {
    const file = join(FIXTURES, 'exif6.jpg');
    const crop = { left: 100, top: 3, width: 50, height: 30 };
    const cfg: PreprocessConfig = { ...ident, inputSize: [30, 50] };
    const a = await imageToPixels(file, cfg, { augment: { ...NO_AUGMENT, crop } });
    const b = await imageToPixels(file, cfg, { augment: { ...NO_AUGMENT, crop }, resampler: 'sharp' });
    expect(diffStats(a.pixels.data, b.pixels.data).max).toBe(0);
    // the red block stored at the top-left (x < 60, y < 40) sits at the top-right once upright (x ≥ 120, y < 60)
    const at = (img: DecodedImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
    const near = (p: number[], q: number[]) => p.every((v, i) => Math.abs(v - q[i]) <= 3);
    const full = await decodeImage(file);
    expect(near(at(full, 150, 5), [255, 0, 0])).toBe(true);
    expect(near(at(full, 5, 5), [255, 0, 0])).toBe(false);
    // inside the crop: columns 100..119 are not red, 120..149 are
    expect(near(at(a.pixels, 45, 10), [255, 0, 0])).toBe(true);
    expect(near(at(a.pixels, 5, 10), [255, 0, 0])).toBe(false)
  });

  it('jitter changes values, identity factors do not', async () => {
    const png = await coordsPng();
    const plain = await imageToTensor(png, ident);
    const same = await imageToTensor(png, ident, { augment: { ...NO_AUGMENT } });
    expect(Array.from(same)).toEqual(Array.from(plain));
    const bright = await imageToTensor(png, ident, { augment: { ...NO_AUGMENT, brightness: 1.2 } });
    for (let i = 0; i < plain.length; i++) expect(bright[i]).toBeCloseTo(Math.min(255, plain[i] * 1.2), 3);
  });
});

describe('batchToTensor', () => {
  const cfg = cfgFor(32, 0.875, 'bilinear');
  const files = ['gradient.png', 'tall.png', 'rgba.png'].map((f) => join(FIXTURES, f));

  it('fills a reused buffer at an offset, each slot equal to imageToTensor', async () => {
    const per = tensorSize(cfg);
    const out = new Float32Array(per * 4 + 7).fill(NaN);
    const r = await batchToTensor(files, cfg, { out, offset: 7, concurrency: 2 });
    expect(r).toBe(out);
    for (let i = 0; i < files.length; i++) {
      const one = await imageToTensor(files[i], cfg);
      expect(Array.from(out.subarray(7 + i * per, 7 + (i + 1) * per))).toEqual(Array.from(one));
    }
    expect(out.subarray(0, 7).every(Number.isNaN)).toBe(true);
    expect(out.subarray(7 + 3 * per).every(Number.isNaN)).toBe(true);
  });

  it('zero-fills and reports failed images with onError, rejects without it', async () => {
    const bad = join(FIXTURES, 'missing.png');
    const errors: [number, unknown][] = [];
    const out = await batchToTensor([files[0], bad, files[1]], cfg, { onError: (i, e) => errors.push([i, e]) });
    expect(errors.map(([i]) => i)).toEqual([1]);
    expect(isGraftError(errors[0][1], 'FILE_NOT_FOUND')).toBe(true);
    const per = tensorSize(cfg);
    expect(out.subarray(per, 2 * per).every((v) => v === 0)).toBe(true);
    expect(out.subarray(0, per).some((v) => v !== 0)).toBe(true);
    await expect(batchToTensor([files[0], bad], cfg)).rejects.toMatchObject({ code: 'FILE_NOT_FOUND', subject: bad });
  });
});

describe('resizeRGB', () => {
  const src = pic(37, 23, (x, y) => [(x * 37 + y * 11) % 256, (x * y) % 256, (x * 5 + 40) % 256]);
  const all = { left: 0, top: 0, width: 37, height: 23 };

  it('a window equals the same region of the full resize (down- and upscaling)', () => {
    for (const interp of ['nearest', 'bilinear', 'bicubic', 'lanczos'] as const) {
      for (const [ow, oh] of [
        [15, 9],
        [80, 51],
      ]) {
        const full = resizeRGB(src, all, ow, oh, interp);
        const win = { left: 3, top: 2, width: 9, height: 6 };
        const part = resizeRGB(src, all, ow, oh, interp, win);
        for (let y = 0; y < win.height; y++) {
          const a = part.data.subarray(y * 27, (y + 1) * 27);
          const b = full.data.subarray(((y + 2) * ow + 3) * 3, ((y + 2) * ow + 12) * 3);
          expect(Array.from(a), `${interp} ${ow}×${oh}`).toEqual(Array.from(b));
        }
      }
    }
  });

  it('same-size resizes are copies; a box is cropped first (edges clamp at the box)', () => {
    for (const interp of ['nearest', 'bilinear', 'bicubic', 'lanczos'] as const) expect(resizeRGB(src, all, 37, 23, interp).data).toEqual(src.data);
    const box = { left: 5, top: 4, width: 20, height: 10 };
    const cropped = pic(20, 10, (x, y) => {
      const i = ((y + 4) * 37 + x + 5) * 3;
      return [src.data[i], src.data[i + 1], src.data[i + 2]];
    });
    expect(resizeRGB(src, box, 13, 7, 'bicubic').data).toEqual(resizeRGB(cropped, { left: 0, top: 0, width: 20, height: 10 }, 13, 7, 'bicubic').data);
  });

  it('averages a constant image to the same constant', () => {
    const flat = pic(50, 30, () => [17, 128, 250]);
    for (const interp of ['bilinear', 'bicubic', 'lanczos'] as const) {
      const r = resizeRGB(flat, { left: 0, top: 0, width: 50, height: 30 }, 11, 64, interp);
      for (let i = 0; i < r.data.length; i += 3) expect([r.data[i], r.data[i + 1], r.data[i + 2]]).toEqual([17, 128, 250]);
    }
  });
});
