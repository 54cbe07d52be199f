/**
 * Preprocessing as data, after timm's pretrained_cfg: everything needed to turn an image into the
 * tensor a model was trained on. It travels with the model in ONNX metadata_props (see metadata.ts).
 *
 * A pixel p in 0..255 becomes ((p × rescale) − mean[c]) / std[c], channels in `channelOrder`.
 */
import { GraftError } from '../errors.js';

export type ResizeMode =
  /** Resize the shorter side to size / cropPct, then center-crop `inputSize` (torchvision/timm eval). */
  | 'crop'
  /** Resize straight to `inputSize`, ignoring aspect ratio (Keras/nsfwjs style). */
  | 'squash';

export type Interpolation = 'nearest' | 'bilinear' | 'bicubic' | 'lanczos';

export interface PreprocessConfig {
  /** [height, width] of the network input. */
  inputSize: [number, number];
  resize: ResizeMode;
  /** Fraction of the resized image kept by the center crop (timm's crop_pct); 1 = crop exactly. */
  cropPct: number;
  interpolation: Interpolation;
  /** Multiplies raw 0..255 pixel values first: 1/255 for [0,1] models, 1 for Caffe-style models. */
  rescale: number;
  /** Per-channel mean and std, in the units after rescale, in the model's channel order. */
  mean: [number, number, number];
  std: [number, number, number];
  channelOrder: 'RGB' | 'BGR';
  layout: 'NCHW' | 'NHWC';
}

/** torchvision / timm ImageNet defaults: 224 crop of a 256 resize, bilinear, ImageNet mean/std. */
export const IMAGENET_DEFAULT: Readonly<PreprocessConfig> = Object.freeze({
  inputSize: [224, 224],
  resize: 'crop',
  cropPct: 0.875,
  interpolation: 'bilinear',
  rescale: 1 / 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  channelOrder: 'RGB',
  layout: 'NCHW',
}) as Readonly<PreprocessConfig>;

/** Checks a config (from metadata, a JSON file or flags) and says exactly what is wrong. */
export function validatePreprocess(c: PreprocessConfig, source = 'preprocessing config'): PreprocessConfig {
  const fail = (what: string) => {
    throw new GraftError('INVALID_ARGUMENT', `${source}: ${what}`);
  };
  const positiveInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (!Array.isArray(c.inputSize) || c.inputSize.length !== 2 || !c.inputSize.every(positiveInt)) fail('inputSize must be [height, width] in whole pixels.');
  if (c.resize !== 'crop' && c.resize !== 'squash') fail(`resize must be "crop" or "squash", not ${JSON.stringify(c.resize)}.`);
  if (!(c.cropPct > 0 && c.cropPct <= 1)) fail(`cropPct must be in (0, 1], not ${c.cropPct}.`);
  if (!['nearest', 'bilinear', 'bicubic', 'lanczos'].includes(c.interpolation)) fail(`interpolation must be nearest, bilinear, bicubic or lanczos, not ${JSON.stringify(c.interpolation)}.`);
  if (!(Number.isFinite(c.rescale) && c.rescale > 0)) fail(`rescale must be a positive number, not ${c.rescale}.`);
  for (const [k, v] of [['mean', c.mean], ['std', c.std]] as const) {
    if (!Array.isArray(v) || v.length !== 3 || !v.every(Number.isFinite)) fail(`${k} must be three numbers.`);
  }
  if (!c.std.every((s) => s > 0)) fail('std values must be positive.');
  if (c.channelOrder !== 'RGB' && c.channelOrder !== 'BGR') fail('channelOrder must be "RGB" or "BGR".');
  if (c.layout !== 'NCHW' && c.layout !== 'NHWC') fail('layout must be "NCHW" or "NHWC".');
  return c;
}
