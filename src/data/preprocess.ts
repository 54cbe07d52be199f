/**
 * One image → the float tensor a model expects, following a PreprocessConfig: decode, resize (+ center
 * crop, or a random resized crop when augmenting), flip / jitter, then ((p × rescale) − mean[c]) / std[c]
 * in the model's channel order and layout.
 *
 * Geometry follows torchvision/timm eval: Resize(floor(size / cropPct)) on the shorter side, the longer
 * side int(S × long / short), then CenterCrop(size) at top = round((h − size) / 2) with Python's
 * round-half-even. The default resampler, 'sharp', lets libvips decode and resize in one pass (JPEG
 * shrink-on-load, its own threads, off the event loop): ~10× faster than a full decode on large photos,
 * but not PIL's pixels — a few grey levels off when downscaling, more when upscaling (bounds measured
 * in test/data/preprocess.test.ts). 'exact' reproduces PIL's resize byte for byte in JS after a full
 * decode, for when predictions must match a torchvision pipeline pixel for pixel.
 */
import type { Sharp } from 'sharp';
import { GraftError } from '../errors.js';
import { validatePreprocess, type Interpolation, type PreprocessConfig } from '../models/preprocess.js';
import { applyJitter, hasJitter, NO_AUGMENT, roundHalfEven, type AugmentParams, type AugmentSampler } from './augment.js';
import { openImage, readRaw, resizeRaw, type DecodedImage, type DecodeOptions, type ImageSource, type OpenedImage } from './image.js';
import { resizeRGB, type Box } from './resample.js';

export type Resampler = 'exact' | 'sharp';

export interface TensorOptions extends DecodeOptions {
  /** Augmentation for this image, or a sampler that draws it once the image's size is known. */
  augment?: AugmentParams | AugmentSampler;
  /** 'sharp' (default): libvips, one pass. 'exact': PIL-identical resize in JS after a full decode. */
  resampler?: Resampler;
  /** Write into this array (from `offset`) instead of allocating one. */
  out?: Float32Array;
  offset?: number;
}

/** How an upright W × H image becomes the model input: crop `box` of the source, resize it, keep `window`. */
export interface ResizePlan {
  box: Box;
  width: number;
  height: number;
  window: Box;
}

/** Elements in one image's tensor (3 × H × W). */
export function tensorSize(cfg: PreprocessConfig): number {
  return 3 * cfg.inputSize[0] * cfg.inputSize[1];
}

/**
 * The geometry for an upright imgW × imgH image. With `crop` (an augmentation crop) that region is resized
 * straight to the input size, as RandomResizedCrop does.
 */
export function planResize(imgW: number, imgH: number, cfg: PreprocessConfig, crop?: Box): ResizePlan {
  const [th, tw] = cfg.inputSize;
  const full: Box = { left: 0, top: 0, width: imgW, height: imgH };
  const all: Box = { left: 0, top: 0, width: tw, height: th };
  if (crop) return { box: crop, width: tw, height: th, window: all };
  if (cfg.resize === 'squash') return { box: full, width: tw, height: th, window: all };
  // timm: scale_size = floor(size / crop_pct), computed in floating point exactly like this
  const sh = Math.floor(th / cfg.cropPct);
  const sw = Math.floor(tw / cfg.cropPct);
  let w: number;
  let h: number;
  if (sh === sw) {
    // torchvision Resize(int): the shorter side becomes S, the longer int(S × long / short)
    if (imgW <= imgH) {
      w = sw;
      h = Math.floor((sw * imgH) / imgW);
    } else {
      h = sh;
      w = Math.floor((sh * imgW) / imgH);
    }
  } else if (sh * imgW >= sw * imgH) {
    // non-square input: keep the aspect ratio and cover both scaled sides (timm would squash instead)
    h = sh;
    w = Math.max(sw, Math.floor((sh * imgW) / imgH));
  } else {
    w = sw;
    h = Math.max(sh, Math.floor((sw * imgH) / imgW));
  }
  const window = { left: roundHalfEven((w - tw) / 2), top: roundHalfEven((h - th) / 2), width: tw, height: th };
  return { box: full, width: w, height: h, window };
}

const SHARP_KERNEL: Record<Interpolation, 'nearest' | 'linear' | 'cubic' | 'lanczos3'> = {
  nearest: 'nearest',
  bilinear: 'linear',
  bicubic: 'cubic',
  lanczos: 'lanczos3',
};

function isWhole(b: Box, w: number, h: number): boolean {
  return b.left === 0 && b.top === 0 && b.width === w && b.height === h;
}

/**
 * The model-input-sized RGB pixels (before normalisation, flip and jitter) plus the augmentation drawn
 * for the image: what a report should show as "what the model saw".
 */
export async function imageToPixels(source: ImageSource, cfg: PreprocessConfig, opts: TensorOptions = {}): Promise<{ pixels: DecodedImage; augment: AugmentParams }> {
  const img = await openImage(source, opts);
  const augment = typeof opts.augment === 'function' ? opts.augment(img.width, img.height) : (opts.augment ?? NO_AUGMENT);
  const plan = planResize(img.width, img.height, cfg, augment.crop);
  const pixels = (opts.resampler ?? 'sharp') === 'sharp' ? await resizeWithSharp(img, plan, cfg.interpolation) : resizeRGB(await readRaw(img, img.pipeline({ keepAlpha: true })), plan.box, plan.width, plan.height, cfg.interpolation, plan.window);
  return { pixels, augment };
}

/**
 * How much to shrink a JPEG on load before taking `crop` from it and resizing that to width × height.
 * libvips decodes a JPEG at a quarter of its size for a fraction of a full decode, but not in a pipeline
 * that starts with a crop, as an augmentation's does. Only by 4, and only when the crop keeps twice the
 * output size at that scale (as sharp's own resize does): augmented batches of 16 from 4000 × 3000
 * photos 533 → 420 CPU-ms, on average about a grey level from a crop of the full decode (up to ~30 at
 * sharp edges: the quarter-size decode and the resize filter edges differently). By 2 the whole image's
 * half-scale decode cost more than the crop's full one (2000 × 1500 photos: 246 → 286 CPU-ms); by 8 the
 * crop's box, rounded to the eighth-size image, moved it by up to half an output pixel (mean 2 levels).
 */
export function jpegShrinkFactor(crop: Box, width: number, height: number): 1 | 4 {
  return Math.min(crop.width / width, crop.height / height) >= 8 ? 4 : 1;
}

async function resizeWithSharp(img: OpenedImage, plan: ResizePlan, interp: Interpolation): Promise<DecodedImage> {
  let p: Sharp = img.pipeline();
  const { box, window: win } = plan;
  const k = img.format === 'jpeg' && !isWhole(box, img.width, img.height) ? jpegShrinkFactor(box, plan.width, plan.height) : 1;
  if (k > 1) {
    // the whole JPEG shrunk on load, then the crop's box in it, then the resize
    const w = Math.ceil(img.width / k);
    const h = Math.ceil(img.height / k);
    const [sx, sy] = [w / img.width, h / img.height];
    const left = Math.min(w - 1, Math.floor(box.left * sx));
    const top = Math.min(h - 1, Math.floor(box.top * sy));
    const right = Math.max(left + 1, Math.min(w, Math.round((box.left + box.width) * sx)));
    const bottom = Math.max(top + 1, Math.min(h, Math.round((box.top + box.height) * sy)));
    const kernel = SHARP_KERNEL[interp];
    const shrunk = await readRaw(img, p.resize(w, h, { fit: 'fill', kernel }).extract({ left, top, width: right - left, height: bottom - top }));
    return resizeRaw(shrunk, plan.width, plan.height, kernel);
  }
  if (plan.width === box.width && plan.height === box.height) {
    const region = { left: box.left + win.left, top: box.top + win.top, width: win.width, height: win.height };
    if (!isWhole(region, img.width, img.height)) p = p.extract(region);
    return readRaw(img, p);
  }
  if (!isWhole(box, img.width, img.height)) p = p.extract(box);
  p = p.resize(plan.width, plan.height, { fit: 'fill', kernel: SHARP_KERNEL[interp] });
  if (!isWhole(win, plan.width, plan.height)) p = p.extract(win);
  return readRaw(img, p);
}

// ((p × rescale) − mean) / std for every byte value, per output channel
function lookupTables(cfg: PreprocessConfig): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const t = new Float32Array(256);
    for (let p = 0; p < 256; p++) t[p] = (p * cfg.rescale - cfg.mean[c]) / cfg.std[c];
    return t;
  });
}

/**
 * Normalises model-input-sized RGB pixels into `out` at `offset` in cfg's layout and channel order,
 * applying the flip and jitter of `augment`.
 */
export function pixelsToTensor(pixels: DecodedImage, cfg: PreprocessConfig, out?: Float32Array, offset = 0, augment: AugmentParams = NO_AUGMENT): Float32Array {
  const { width: w, height: h, data } = pixels;
  const [th, tw] = cfg.inputSize;
  if (w !== tw || h !== th) throw new RangeError(`pixels are ${w}×${h} but the model input is ${tw}×${th}`);
  const n = 3 * w * h;
  const dst = out ?? new Float32Array(n);
  if (!Number.isInteger(offset) || offset < 0 || offset + n > dst.length) {
    throw new GraftError('INVALID_ARGUMENT', `The output array (length ${dst.length}) has no room for ${n} values at offset ${offset}; allocate batch × ${n} floats.`);
  }
  // model channel c reads source channel src[c]
  const src = cfg.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const nchw = cfg.layout === 'NCHW';
  const plane = w * h;
  const jitter = hasJitter(augment);
  let values: ArrayLike<number> = data;
  if (jitter) {
    const f = Float32Array.from(data);
    applyJitter(f, augment);
    values = f;
  }
  const luts = jitter ? null : lookupTables(cfg);
  const scale = cfg.rescale;
  for (let c = 0; c < 3; c++) {
    const s = src[c];
    const lut = luts?.[c];
    const mean = cfg.mean[c];
    const inv = 1 / cfg.std[c];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const sx = augment.flip ? w - 1 - x : x;
        const v = values[(y * w + sx) * 3 + s];
        const o = nchw ? offset + c * plane + y * w + x : offset + (y * w + x) * 3 + c;
        dst[o] = lut ? lut[v] : (v * scale - mean) * inv;
      }
    }
  }
  return dst;
}

/** One image as a Float32Array of 3 × H × W values (or H × W × 3 for NHWC). */
export async function imageToTensor(source: ImageSource, cfg: PreprocessConfig, opts: TensorOptions = {}): Promise<Float32Array> {
  validatePreprocess(cfg);
  const { pixels, augment } = await imageToPixels(source, cfg, opts);
  return pixelsToTensor(pixels, cfg, opts.out, opts.offset ?? 0, augment);
}

export interface BatchOptions extends DecodeOptions {
  /** Reuse this array; image i goes to offset + i × tensorSize(cfg). */
  out?: Float32Array;
  offset?: number;
  /** Augmentation per image index (e.g. `i => augmentSampler(fork(seed, epoch, ids[i]))`). */
  augment?: (index: number) => AugmentParams | AugmentSampler | undefined;
  resampler?: Resampler;
  /** Images decoded at once (sharp decodes on libuv's thread pool). Default 4. */
  concurrency?: number;
  /**
   * Called for an image that fails (its slot is zero-filled) so a long run can skip, count and report;
   * without it the first failure rejects the batch.
   */
  onError?: (index: number, error: unknown) => void;
}

/** Preprocesses `sources` into one NCHW (or NHWC) batch buffer. */
export async function batchToTensor(sources: readonly ImageSource[], cfg: PreprocessConfig, opts: BatchOptions = {}): Promise<Float32Array> {
  validatePreprocess(cfg);
  const per = tensorSize(cfg);
  const offset = opts.offset ?? 0;
  const out = opts.out ?? new Float32Array(offset + sources.length * per);
  if (!Number.isInteger(offset) || offset < 0 || offset + sources.length * per > out.length) {
    throw new GraftError('INVALID_ARGUMENT', `The batch buffer (length ${out.length}) has no room for ${sources.length} images of ${per} values at offset ${offset}.`);
  }
  const { augment, onError, concurrency, ...rest } = opts;
  const workers = Math.max(1, Math.min(concurrency ?? 4, sources.length));
  let next = 0;
  let failed: unknown;
  const work = async (): Promise<void> => {
    while (next < sources.length && failed === undefined) {
      const i = next++;
      const at = offset + i * per;
      try {
        await imageToTensor(sources[i], cfg, { ...rest, augment: augment?.(i), out, offset: at });
      } catch (e) {
        out.fill(0, at, at + per);
        if (onError) onError(i, e);
        else failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, work));
  if (failed !== undefined) throw failed;
  return out;
}
