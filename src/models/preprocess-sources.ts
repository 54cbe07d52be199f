/**
 * Where preprocessing configs come from when a model does not carry graft's own metadata: a Hugging Face
 * preprocessor_config.json, CLI flags over a base config, or a guess from a bare ONNX input shape.
 */
import { GraftError } from '../errors.js';
import type { Dim } from '../graph/ir.js';
import { IMAGENET_DEFAULT, validatePreprocess, type Interpolation, type PreprocessConfig, type ResizeMode } from './preprocess.js';

type Triple = [number, number, number];

const IMAGENET_MEAN: Triple = [0.485, 0.456, 0.406];
const IMAGENET_STD: Triple = [0.229, 0.224, 0.225];
const HALF: Triple = [0.5, 0.5, 0.5];
const CLIP_MEAN: Triple = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: Triple = [0.26862954, 0.26130258, 0.27577711];

/** PIL resampling codes as stored in `resample`. */
const PIL_RESAMPLE: Record<number, Interpolation | undefined> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic' };
const PIL_UNSUPPORTED: Record<number, string> = { 4: 'box', 5: 'hamming' };

/**
 * What transformers' image processors assume when a field is missing, by class-name prefix (the
 * `image_processor_type`, or the older `feature_extractor_type`, minus its suffix). `squareInt`: an int
 * `size` means {height: n, width: n} rather than {shortest_edge: n}.
 */
interface ProcessorDefaults {
  squareInt: boolean;
  resample: Interpolation;
  mean: Triple;
  std: Triple;
  centerCrop: boolean;
  size?: number | { height: number; width: number } | { shortest_edge: number };
  cropSize?: number;
  cropPct?: number;
}

const D = (squareInt: boolean, resample: Interpolation, mean: Triple, std: Triple, centerCrop: boolean, extra: Partial<ProcessorDefaults> = {}): ProcessorDefaults => ({
  squareInt,
  resample,
  mean,
  std,
  centerCrop,
  ...extra,
});

const PROCESSORS: Record<string, ProcessorDefaults> = {
  ViT: D(true, 'bilinear', HALF, HALF, false, { size: 224 }),
  DeiT: D(true, 'bicubic', IMAGENET_MEAN, IMAGENET_STD, true, { size: 256, cropSize: 224 }),
  Beit: D(true, 'bicubic', HALF, HALF, true, { size: 256, cropSize: 224 }),
  Data2VecVision: D(true, 'bicubic', HALF, HALF, true, { size: 256, cropSize: 224 }),
  EfficientNet: D(true, 'nearest', IMAGENET_MEAN, IMAGENET_STD, false, { size: 600 }),
  Siglip: D(true, 'bicubic', HALF, HALF, false, { size: 224 }),
  ConvNext: D(false, 'bilinear', IMAGENET_MEAN, IMAGENET_STD, false, { size: 384, cropPct: 224 / 256 }),
  CLIP: D(false, 'bicubic', CLIP_MEAN, CLIP_STD, true, { size: 224, cropSize: 224 }),
  Bit: D(false, 'bicubic', CLIP_MEAN, CLIP_STD, true, { size: 224, cropSize: 224 }),
  MobileNetV1: D(false, 'bilinear', HALF, HALF, true, { size: 256, cropSize: 224 }),
  MobileNetV2: D(false, 'bilinear', HALF, HALF, true, { size: 256, cropSize: 224 }),
  MobileViT: D(false, 'bilinear', [0, 0, 0], [1, 1, 1], true, { size: 224, cropSize: 256 }),
  Levit: D(false, 'bicubic', IMAGENET_MEAN, IMAGENET_STD, true, { size: 224, cropSize: 224 }),
  PoolFormer: D(false, 'bicubic', IMAGENET_MEAN, IMAGENET_STD, true, { size: 224, cropSize: 224, cropPct: 0.9 }),
  EfficientFormer: D(false, 'bicubic', IMAGENET_MEAN, IMAGENET_STD, true, { size: 224, cropSize: 224 }),
};

function processorOf(cfg: Record<string, unknown>): { name?: string; defaults?: ProcessorDefaults } {
  const type = [cfg.image_processor_type, cfg.feature_extractor_type].find((t): t is string => typeof t === 'string');
  if (!type) return {};
  const base = type.replace(/(ImageProcessor|FeatureExtractor)(Fast)?$/, '');
  return { name: type, defaults: PROCESSORS[base] };
}

/** A cropPct with floor(crop / cropPct) === resized exactly, despite floating-point division. */
export function cropPctFor(crop: number, resized: number): number {
  if (resized <= crop) return 1;
  let p = crop / resized;
  for (let i = 0; i < 8 && Math.floor(crop / p) < resized; i++) p *= 1 - Number.EPSILON;
  for (let i = 0; i < 8 && Math.floor(crop / p) > resized; i++) p *= 1 + Number.EPSILON;
  return p;
}

function bad(where: string, what: string): never {
  throw new GraftError('INVALID_ARGUMENT', `${where}: ${what}`);
}

type Size = { kind: 'square'; h: number; w: number } | { kind: 'shortest'; s: number };

function parseSize(v: unknown, squareInt: boolean, field: string, where: string): Size | undefined {
  if (v === undefined || v === null) return undefined;
  const int = (x: unknown): number => (Number.isInteger(x) && (x as number) > 0 ? (x as number) : bad(where, `${field} must hold positive whole numbers, not ${JSON.stringify(v)}.`));
  if (typeof v === 'number') return squareInt ? { kind: 'square', h: int(v), w: int(v) } : { kind: 'shortest', s: int(v) };
  if (Array.isArray(v) && v.length === 2) return { kind: 'square', h: int(v[0]), w: int(v[1]) };
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (o.height !== undefined || o.width !== undefined) return { kind: 'square', h: int(o.height), w: int(o.width) };
    if (o.shortest_edge !== undefined) return { kind: 'shortest', s: int(o.shortest_edge) };
  }
  return bad(where, `${field} must be a number, {"shortest_edge": n} or {"height": h, "width": w}, not ${JSON.stringify(v)}.`);
}

function triple(v: unknown, field: string, where: string): Triple | undefined {
  if (v === undefined || v === null) return undefined;
  const arr = typeof v === 'number' ? [v] : v;
  if (Array.isArray(arr) && arr.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    if (arr.length === 1) return [arr[0], arr[0], arr[0]];
    if (arr.length === 3) return [arr[0], arr[1], arr[2]];
  }
  return bad(where, `${field} must be one or three numbers, not ${JSON.stringify(v)}.`);
}

/** Checks a partial config by validating it over the ImageNet defaults. */
function validatePartial(p: Partial<PreprocessConfig>, where: string): Partial<PreprocessConfig> {
  validatePreprocess({ ...IMAGENET_DEFAULT, ...p } as PreprocessConfig, where);
  return p;
}

/**
 * Reads a Hugging Face preprocessor_config.json (object or JSON text). Returns only what it determines:
 * fields the config leaves out (and the processor class does not default) stay unset.
 *
 * Approximations, where transformers does something a PreprocessConfig cannot say:
 * - {height, width} resize + center crop (DeiT, BEiT) becomes shorter-side resize + crop with the same
 *   ratio, which is identical for square images and keeps the aspect ratio (as the models' original
 *   torchvision training did) for the rest.
 * - transformers rounds the crop offset down, torchvision half-to-even; graft follows torchvision, so the
 *   crop can sit one pixel lower/further right than transformers' for odd margins.
 * - shortest-edge resize without a crop (variable output size) becomes a center square crop.
 */
export function preprocessFromHf(preprocessorConfigJson: unknown, where = 'preprocessor_config.json'): Partial<PreprocessConfig> {
  let raw: unknown = preprocessorConfigJson;
  if (typeof raw === 'string') {
    try {
      raw = JSON.parse(raw);
    } catch (e) {
      throw new GraftError('INVALID_ARGUMENT', `${where} is not valid JSON (${(e as Error).message}).`, { cause: e });
    }
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad(where, 'expected a JSON object.');
  const c = raw as Record<string, unknown>;
  const { name, defaults } = processorOf(c);
  const base = name?.replace(/(ImageProcessor|FeatureExtractor)(Fast)?$/, '');
  const out: Partial<PreprocessConfig> = { channelOrder: c.do_flip_channel_order === true ? 'BGR' : 'RGB', layout: 'NCHW' };

  // geometry
  const squareInt = defaults?.squareInt ?? true;
  const size = parseSize(c.size ?? defaults?.size, squareInt, 'size', where);
  const centerCrop = typeof c.do_center_crop === 'boolean' ? c.do_center_crop : (defaults?.centerCrop ?? false);
  const crop = centerCrop ? parseSize(c.crop_size ?? defaults?.cropSize, true, 'crop_size', where) : undefined;
  // null means "the processor's default", as transformers' constructors treat it
  const cropPct = typeof c.crop_pct === 'number' ? c.crop_pct : c.crop_pct == null ? defaults?.cropPct : bad(where, `crop_pct must be a number, not ${JSON.stringify(c.crop_pct)}.`);
  const geometry = (inputSize: [number, number], resize: ResizeMode, pct: number): void => {
    out.inputSize = inputSize;
    out.resize = resize;
    out.cropPct = pct;
  };
  if (c.do_resize === false) {
    // no resize: only a crop (if any) fixes the size; the caller falls back to the model's input dims
    if (crop?.kind === 'square') geometry([crop.h, crop.w], 'crop', 1);
  } else if (size?.kind === 'shortest') {
    let resized = size.s;
    if (base === 'Levit') resized = Math.floor((256 / 224) * size.s);
    else if (base === 'ConvNext' && !crop) {
      // ConvNeXt: below 384 resize to s / crop_pct and crop s; from 384 up warp straight to s × s
      if (size.s >= 384 || cropPct === undefined) geometry([size.s, size.s], size.s >= 384 ? 'squash' : 'crop', 1);
      else geometry([size.s, size.s], 'crop', cropPct);
    } else if (cropPct !== undefined) resized = Math.floor(size.s / cropPct);
    if (out.inputSize === undefined) {
      const target = crop?.kind === 'square' ? crop : { h: size.s, w: size.s };
      if (target.h !== target.w) geometry([target.h, target.w], 'squash', 1);
      else geometry([target.h, target.w], 'crop', cropPctFor(target.h, resized));
    }
  } else if (size?.kind === 'square') {
    if (crop?.kind === 'square' && size.h === size.w && crop.h === crop.w) geometry([crop.h, crop.w], 'crop', cropPctFor(crop.h, size.h));
    else if (crop?.kind === 'square') geometry([crop.h, crop.w], 'squash', 1);
    else geometry([size.h, size.w], 'squash', 1);
  }

  // interpolation
  if (c.resample !== undefined) {
    const code = c.resample;
    const interp = typeof code === 'number' ? PIL_RESAMPLE[code] : undefined;
    if (!interp) {
      const known = typeof code === 'number' ? PIL_UNSUPPORTED[code] : undefined;
      if (known) {
        throw new GraftError('MODEL_UNSUPPORTED', `${where}: resample ${code} (${known}) is not an interpolation graft implements; override it with --interpolation bilinear|bicubic|lanczos|nearest.`);
      }
      bad(where, `resample must be a PIL filter code (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic), not ${JSON.stringify(code)}.`);
    }
    out.interpolation = interp;
  } else if (defaults) out.interpolation = defaults.resample;

  // values: (p × rescale [− 1 with rescale_offset] − mean) / std
  const doRescale = c.do_rescale !== false;
  const factor = c.rescale_factor ?? 1 / 255;
  if (typeof factor !== 'number' || !(factor > 0)) bad(where, `rescale_factor must be a positive number, not ${JSON.stringify(factor)}.`);
  out.rescale = doRescale ? factor : 1;
  const offset = doRescale && c.rescale_offset === true ? 1 : 0;
  let mean: Triple | undefined;
  let std: Triple | undefined;
  if (c.do_normalize === false) {
    mean = [0, 0, 0];
    std = [1, 1, 1];
  } else {
    mean = triple(c.image_mean, 'image_mean', where) ?? defaults?.mean;
    std = triple(c.image_std, 'image_std', where) ?? defaults?.std;
    // EfficientNet's include_top divides by std a second time
    if (std && base === 'EfficientNet' && c.include_top !== false) std = std.map((s) => s * s) as Triple;
  }
  if (offset && !mean) mean = [0, 0, 0];
  if (mean) mean = mean.map((m) => m + offset) as Triple;
  // transformers flips RGB → BGR after normalising with RGB-ordered stats; a PreprocessConfig lists
  // them in the model's channel order
  const order = (t: Triple): Triple => (out.channelOrder === 'BGR' ? [t[2], t[1], t[0]] : t);
  if (mean) out.mean = order(mean);
  if (std) out.std = order(std);
  return validatePartial(out, where);
}

export interface PreprocessFlags {
  /** Input size: n for n × n, or [height, width]. */
  size?: number | [number, number];
  cropPct?: number;
  mean?: number | number[];
  std?: number | number[];
  /** Feed channels as BGR (true) or RGB (false). */
  bgr?: boolean;
  layout?: 'NCHW' | 'NHWC';
  interpolation?: Interpolation;
  resize?: ResizeMode;
  rescale?: number;
}

/** `base` with the user's overrides applied, validated. */
export function preprocessFromFlags(base: PreprocessConfig, flags: PreprocessFlags): PreprocessConfig {
  const where = 'preprocessing options';
  const out: PreprocessConfig = { ...base, inputSize: [...base.inputSize], mean: [...base.mean], std: [...base.std] };
  if (flags.size !== undefined) {
    const s = flags.size;
    if (typeof s === 'number') out.inputSize = [s, s];
    else if (Array.isArray(s) && s.length === 2) out.inputSize = [s[0], s[1]];
    else bad(where, `--size must be n or h,w, not ${JSON.stringify(s)}.`);
  }
  if (flags.cropPct !== undefined) out.cropPct = flags.cropPct;
  if (flags.mean !== undefined) out.mean = triple(flags.mean, '--mean', where) as Triple;
  if (flags.std !== undefined) out.std = triple(flags.std, '--std', where) as Triple;
  if (flags.bgr !== undefined) out.channelOrder = flags.bgr ? 'BGR' : 'RGB';
  if (flags.layout !== undefined) out.layout = flags.layout;
  if (flags.interpolation !== undefined) out.interpolation = flags.interpolation;
  if (flags.resize !== undefined) out.resize = flags.resize;
  if (flags.rescale !== undefined) out.rescale = flags.rescale;
  return validatePreprocess(out, where);
}

/**
 * A best guess for a bare ONNX model from its image input's shape: the channel axis is the one that is
 * 3 (NCHW when ambiguous), the size comes from static dims (224 when symbolic), the rest is torchvision's
 * ImageNet recipe. Pass flags to correct it.
 */
export function guessPreprocess(inputShape: readonly Dim[]): PreprocessConfig {
  const dims = inputShape.length === 3 ? [1, ...inputShape] : [...inputShape];
  const shape = `[${inputShape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
  if (dims.length !== 4) {
    throw new GraftError('MODEL_UNSUPPORTED', `The model's input has shape ${shape}; graft feeds images as 4-D [batch, 3, height, width] or [batch, height, width, 3].`);
  }
  const is3 = (d: Dim | undefined): boolean => d === 3;
  let layout: 'NCHW' | 'NHWC';
  if (is3(dims[1])) layout = 'NCHW';
  else if (is3(dims[3])) layout = 'NHWC';
  else {
    throw new GraftError('MODEL_UNSUPPORTED', `The model's input ${shape} has no axis of 3 colour channels (at position 1 or 3); graft feeds RGB images. If the model takes another layout, it cannot be used as an image classifier here.`);
  }
  const [hd, wd] = layout === 'NCHW' ? [dims[2], dims[3]] : [dims[1], dims[2]];
  const fixed = (d: Dim | undefined): number | undefined => (typeof d === 'number' && d > 0 ? d : undefined);
  const h = fixed(hd) ?? fixed(wd) ?? IMAGENET_DEFAULT.inputSize[0];
  const w = fixed(wd) ?? fixed(hd) ?? IMAGENET_DEFAULT.inputSize[1];
  return validatePreprocess({ ...IMAGENET_DEFAULT, inputSize: [h, w], mean: [...IMAGENET_DEFAULT.mean], std: [...IMAGENET_DEFAULT.std], layout }, `guessed preprocessing for input ${shape}`);
}
