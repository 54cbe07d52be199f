/**
 * Training-time augmentation as data: `sampleAugment` draws the parameters for one image from a seeded
 * stream (pure, so tests and resumed runs see the same crops), and preprocessing applies them.
 * The crop follows torchvision's RandomResizedCrop; jitter follows ColorJitter without hue.
 */
import { GraftError } from '../errors.js';
import type { Rng } from '../util/random.js';
import type { Box } from './resample.js';

export type JitterOp = 'brightness' | 'contrast' | 'saturation';

export interface AugmentConfig {
  /**
   * RandomResizedCrop: the crop covers `scale` of the image area with aspect ratio (w/h) in `ratio`
   * (log-uniform); it is then resized to the model input. null keeps the evaluation geometry.
   */
  crop: { scale: [number, number]; ratio: [number, number] } | null;
  /** Probability of mirroring left–right. */
  hflip: number;
  /** Jitter strengths x: each factor is drawn from [max(0, 1 − x), 1 + x]; 0 turns it off. */
  brightness: number;
  contrast: number;
  saturation: number;
}

/**
 * For transfer learning: torchvision's ImageNet recipe crops as little as 8 % of the image, which suits
 * training from scratch for 90 epochs; a pretrained backbone trained for a few epochs on a small set
 * learns more from crops that keep the object, so the floor here is 35 %.
 */
export const DEFAULT_AUGMENT: Readonly<AugmentConfig> = Object.freeze({
  crop: { scale: [0.35, 1], ratio: [3 / 4, 4 / 3] },
  hflip: 0.5,
  brightness: 0.2,
  contrast: 0.2,
  saturation: 0.2,
}) as Readonly<AugmentConfig>;

/** torchvision's ImageNet training transform: RandomResizedCrop(scale=(0.08, 1)) + RandomHorizontalFlip. */
export const IMAGENET_TRAIN_AUGMENT: Readonly<AugmentConfig> = Object.freeze({
  crop: { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] },
  hflip: 0.5,
  brightness: 0,
  contrast: 0,
  saturation: 0,
}) as Readonly<AugmentConfig>;

/** What to do to one image. Factors of 1 and no crop / flip leave it as evaluation would see it. */
export interface AugmentParams {
  /** Region of the upright source image that is resized to the model input (instead of resize + center crop). */
  crop?: Box;
  flip: boolean;
  brightness: number;
  contrast: number;
  saturation: number;
  /** Order the jitter ops run in (torchvision shuffles it per image). */
  jitterOrder: JitterOp[];
}

/** Draws parameters for an image of upright size width × height. */
export type AugmentSampler = (width: number, height: number) => AugmentParams;

export const NO_AUGMENT: Readonly<AugmentParams> = Object.freeze({
  flip: false,
  brightness: 1,
  contrast: 1,
  saturation: 1,
  jitterOrder: ['brightness', 'contrast', 'saturation'],
}) as Readonly<AugmentParams>;

export function validateAugment(cfg: AugmentConfig): AugmentConfig {
  const fail = (what: string): never => {
    throw new GraftError('INVALID_ARGUMENT', `augmentation: ${what}`);
  };
  if (cfg.crop) {
    const [s0, s1] = cfg.crop.scale;
    const [r0, r1] = cfg.crop.ratio;
    if (!(s0 > 0 && s0 <= s1 && s1 <= 1)) fail(`crop scale must satisfy 0 < min ≤ max ≤ 1, got [${s0}, ${s1}].`);
    if (!(r0 > 0 && r0 <= r1 && Number.isFinite(r1))) fail(`crop ratio must satisfy 0 < min ≤ max, got [${r0}, ${r1}].`);
  }
  if (!(cfg.hflip >= 0 && cfg.hflip <= 1)) fail(`hflip is a probability in [0, 1], not ${cfg.hflip}.`);
  for (const k of ['brightness', 'contrast', 'saturation'] as const) {
    if (!(cfg[k] >= 0 && Number.isFinite(cfg[k]))) fail(`${k} must be a number ≥ 0, not ${cfg[k]}.`);
  }
  return cfg;
}

/** Python's round(): halves go to the even neighbour, as torchvision's crop arithmetic uses it. */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d !== 0.5) return Math.round(v);
  return f % 2 === 0 ? f : f + 1;
}

/** torchvision RandomResizedCrop.get_params: 10 tries at a random area and aspect, then a center crop. */
export function sampleCrop(rng: Rng, width: number, height: number, scale: [number, number], ratio: [number, number]): Box {
  const area = width * height;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(0, height - h + 1);
      const left = rng.int(0, width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  // the image is too elongated for any sampled crop: take the largest centred crop inside the ratio range
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.max(1, Math.min(height, roundHalfEven(w / ratio[0])));
  else if (inRatio > ratio[1]) w = Math.max(1, Math.min(width, roundHalfEven(h * ratio[1])));
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

function factor(rng: Rng, strength: number): number {
  return strength > 0 ? rng.uniform(Math.max(0, 1 - strength), 1 + strength) : 1;
}

/** Parameters for one image, drawn in a fixed order (crop, flip, factors, jitter order). */
export function sampleAugment(rng: Rng, imgW: number, imgH: number, cfg: AugmentConfig = DEFAULT_AUGMENT): AugmentParams {
  const crop = cfg.crop ? sampleCrop(rng, imgW, imgH, cfg.crop.scale, cfg.crop.ratio) : undefined;
  const flip = cfg.hflip > 0 && rng.next() < cfg.hflip;
  const brightness = factor(rng, cfg.brightness);
  const contrast = factor(rng, cfg.contrast);
  const saturation = factor(rng, cfg.saturation);
  const jitterOrder: JitterOp[] = ['brightness', 'contrast', 'saturation'];
  for (let i = jitterOrder.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [jitterOrder[i], jitterOrder[j]] = [jitterOrder[j], jitterOrder[i]];
  }
  return { ...(crop ? { crop } : {}), flip, brightness, contrast, saturation, jitterOrder };
}

/** A sampler bound to a stream and a config, for imageToTensor's `augment` option. */
export function augmentSampler(rng: Rng, cfg: AugmentConfig = DEFAULT_AUGMENT): AugmentSampler {
  validateAugment(cfg);
  return (w, h) => sampleAugment(rng, w, h, cfg);
}

export function hasJitter(p: AugmentParams): boolean {
  return p.brightness !== 1 || p.contrast !== 1 || p.saturation !== 1;
}

// ITU-R 601 luma, the weights torchvision's rgb_to_grayscale uses
const LR = 0.2989;
const LG = 0.587;
const LB = 0.114;

const clamp255 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

/**
 * Colour jitter on interleaved RGB values in 0..255 (in place): brightness scales, contrast blends with
 * the image's mean grey, saturation blends with each pixel's grey; clamped after each op like torchvision.
 */
export function applyJitter(rgb: Float32Array, p: AugmentParams): void {
  const n = rgb.length;
  for (const op of p.jitterOrder) {
    const f = p[op];
    if (f === 1) continue;
    if (op === 'brightness') {
      for (let i = 0; i < n; i++) rgb[i] = clamp255(rgb[i] * f);
    } else if (op === 'contrast') {
      let sum = 0;
      for (let i = 0; i < n; i += 3) sum += LR * rgb[i] + LG * rgb[i + 1] + LB * rgb[i + 2];
      const mean = (1 - f) * (sum / (n / 3));
      for (let i = 0; i < n; i++) rgb[i] = clamp255(f * rgb[i] + mean);
    } else {
      for (let i = 0; i < n; i += 3) {
        const g = (1 - f) * (LR * rgb[i] + LG * rgb[i + 1] + LB * rgb[i + 2]);
        rgb[i] = clamp255(f * rgb[i] + g);
        rgb[i + 1] = clamp255(f * rgb[i + 1] + g);
        rgb[i + 2] = clamp255(f * rgb[i + 2] + g);
      }
    }
  }
}
