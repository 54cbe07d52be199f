import { describe, expect, it } from 'vitest';
import { planResize, pixelsToTensor } from '../../src/data/preprocess.js';
import { GraftError } from '../../src/errors.js';
import { IMAGENET_DEFAULT, type PreprocessConfig } from '../../src/models/preprocess.js';
import { cropPctFor, guessPreprocess, preprocessFromFlags, preprocessFromHf } from '../../src/models/preprocess-sources.js';

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

function error(f: () => unknown): GraftError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(GraftError);
    return e as GraftError;
  }
  throw new Error('expected a GraftError');
}

/** The full config a partial one gives over the ImageNet defaults, and what it does to a 640 × 480 photo. */
function geometry(p: Partial<PreprocessConfig>, w = 640, h = 480) {
  const cfg = { ...IMAGENET_DEFAULT, ...p } as PreprocessConfig;
  const plan = planResize(w, h, cfg);
  return { resized: [plan.width, plan.height], crop: [plan.window.width, plan.window.height] };
}

describe('preprocessFromHf', () => {
  it('ViT (image processor, {height, width}): squash to 224, bilinear, mean/std 0.5', () => {
    const p = preprocessFromHf({
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.5, 0.5, 0.5],
      image_processor_type: 'ViTImageProcessor',
      image_std: [0.5, 0.5, 0.5],
      resample: 2,
      rescale_factor: 0.00392156862745098,
      size: { height: 224, width: 224 },
    });
    expect(p).toEqual({ channelOrder: 'RGB', layout: 'NCHW', inputSize: [224, 224], resize: 'squash', cropPct: 1, interpolation: 'bilinear', rescale: 0.00392156862745098, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(geometry(p)).toEqual({ resized: [224, 224], crop: [224, 224] });
  });

  it('old ViT feature extractor with an int size (square) and JSON text', () => {
    const p = preprocessFromHf(
      JSON.stringify({ do_normalize: true, do_resize: true, feature_extractor_type: 'ViTFeatureExtractor', image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], resample: 2, size: 384 }),
    );
    expect(p).toMatchObject({ inputSize: [384, 384], resize: 'squash', interpolation: 'bilinear', rescale: 1 / 255 });
  });

  it('ConvNeXt / ResNet (shortest_edge + crop_pct): shorter side to 224 / 0.875 = 256, crop 224, bicubic', () => {
    const resnet = preprocessFromHf({
      crop_pct: 0.875,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: IMAGENET_MEAN,
      image_processor_type: 'ConvNextImageProcessor',
      image_std: IMAGENET_STD,
      resample: 3,
      rescale_factor: 0.00392156862745098,
      size: { shortest_edge: 224 },
    });
    expect(resnet).toMatchObject({ inputSize: [224, 224], resize: 'crop', cropPct: 0.875, interpolation: 'bicubic', mean: IMAGENET_MEAN, std: IMAGENET_STD });
    expect(geometry(resnet)).toEqual({ resized: [341, 256], crop: [224, 224] });
    // the old feature-extractor form says the same with an int size
    const old = preprocessFromHf({ crop_pct: 0.875, do_normalize: true, do_resize: true, feature_extractor_type: 'ConvNextFeatureExtractor', image_mean: IMAGENET_MEAN, image_std: IMAGENET_STD, resample: 3, size: 224 });
    expect(old).toEqual(resnet);
  });

  it('ConvNeXt at 384 and above warps straight to the size (crop_pct null = default)', () => {
    const p = preprocessFromHf({ image_processor_type: 'ConvNextImageProcessor', crop_pct: null, size: { shortest_edge: 384 }, resample: 3 });
    expect(p).toMatchObject({ inputSize: [384, 384], resize: 'squash', cropPct: 1 });
    // missing fields come from the processor's defaults
    expect(p).toMatchObject({ mean: IMAGENET_MEAN, std: IMAGENET_STD, rescale: 1 / 255 });
  });

  it('DeiT (int size 256 square + center crop 224): crop mode resizing the shorter side to 256', () => {
    const p = preprocessFromHf({
      crop_size: 224,
      do_center_crop: true,
      do_normalize: true,
      do_resize: true,
      feature_extractor_type: 'DeiTFeatureExtractor',
      image_mean: IMAGENET_MEAN,
      image_std: IMAGENET_STD,
      resample: 3,
      size: 256,
    });
    expect(p).toMatchObject({ inputSize: [224, 224], resize: 'crop', interpolation: 'bicubic' });
    expect(geometry(p, 256, 256)).toEqual({ resized: [256, 256], crop: [224, 224] });
    expect(geometry(p)).toEqual({ resized: [341, 256], crop: [224, 224] });
  });

  it('BiT / DINOv2 style (shortest_edge 256, crop_size {224, 224}): floor(224 / cropPct) is exactly 256', () => {
    const p = preprocessFromHf({
      crop_size: { height: 224, width: 224 },
      do_center_crop: true,
      do_convert_rgb: true,
      image_mean: IMAGENET_MEAN,
      image_processor_type: 'BitImageProcessor',
      image_std: IMAGENET_STD,
      resample: 3,
      size: { shortest_edge: 256 },
    });
    expect(p.inputSize).toEqual([224, 224]);
    expect(Math.floor(224 / p.cropPct!)).toBe(256);
    expect(geometry(p, 500, 1000)).toEqual({ resized: [256, 512], crop: [224, 224] });
  });

  it('MobileViT: BGR channel order, no normalisation, shorter side 288 then crop 256', () => {
    const p = preprocessFromHf({ crop_size: 256, do_center_crop: true, do_flip_channel_order: true, do_resize: true, feature_extractor_type: 'MobileViTFeatureExtractor', resample: 2, size: 288 });
    expect(p).toMatchObject({ channelOrder: 'BGR', mean: [0, 0, 0], std: [1, 1, 1], rescale: 1 / 255, inputSize: [256, 256], interpolation: 'bilinear' });
    expect(geometry(p, 288, 400)).toEqual({ resized: [288, 400], crop: [256, 256] });
  });

  it('BGR models get mean / std reversed into model channel order', () => {
    const p = preprocessFromHf({ do_flip_channel_order: true, image_mean: [0.1, 0.2, 0.3], image_std: [1, 2, 3], size: 32 });
    expect(p).toMatchObject({ channelOrder: 'BGR', mean: [0.3, 0.2, 0.1], std: [3, 2, 1] });
  });

  it('EfficientNet rescale_offset maps bytes to [−1, 1]', () => {
    const p = preprocessFromHf({ image_processor_type: 'EfficientNetImageProcessor', size: { height: 224, width: 224 }, resample: 0, rescale_factor: 1 / 127.5, rescale_offset: true, do_normalize: false, include_top: false });
    expect(p).toMatchObject({ interpolation: 'nearest', rescale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1], resize: 'squash' });
    const cfg = { ...IMAGENET_DEFAULT, ...p, inputSize: [1, 2] } as PreprocessConfig;
    const t = pixelsToTensor({ data: Uint8Array.of(0, 0, 0, 255, 255, 255), width: 2, height: 1 }, cfg);
    expect([t[0], t[1]]).toEqual([-1, 1]);
  });

  it('LeViT resizes the shorter side to 256/224 of the size', () => {
    const p = preprocessFromHf({ image_processor_type: 'LevitImageProcessor', size: { shortest_edge: 224 }, crop_size: { height: 224, width: 224 }, do_center_crop: true });
    expect(geometry(p)).toEqual({ resized: [341, 256], crop: [224, 224] });
    expect(p.interpolation).toBe('bicubic');
  });

  it('leaves out what an unknown processor does not say, and turns off normalisation on request', () => {
    const p = preprocessFromHf({ image_mean: [0.5], image_std: [0.25, 0.25, 0.25] });
    expect(p).toEqual({ channelOrder: 'RGB', layout: 'NCHW', rescale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
    expect(preprocessFromHf({ do_normalize: false, do_rescale: false, image_mean: [9, 9, 9] })).toMatchObject({ rescale: 1, mean: [0, 0, 0], std: [1, 1, 1] });
  });

  it('refuses what it cannot reproduce or read', () => {
    const box = error(() => preprocessFromHf({ resample: 4, size: 224 }));
    expect(box.code).toBe('MODEL_UNSUPPORTED');
    expect(box.message).toMatch(/--interpolation/);
    expect(error(() => preprocessFromHf({ resample: 'cubic' })).code).toBe('INVALID_ARGUMENT');
    expect(error(() => preprocessFromHf({ size: { shortest_edge: -3 } })).message).toMatch(/positive whole numbers/);
    expect(error(() => preprocessFromHf({ image_std: [1, 0, 1] })).message).toMatch(/std values must be positive/);
    expect(error(() => preprocessFromHf({ image_mean: [1, 2] })).message).toMatch(/one or three numbers/);
    expect(error(() => preprocessFromHf('{nope')).message).toMatch(/not valid JSON/);
    expect(error(() => preprocessFromHf([1, 2])).code).toBe('INVALID_ARGUMENT');
  });
});

describe('cropPctFor', () => {
  it('always gives back the resize it was made from', () => {
    for (let crop = 16; crop <= 640; crop += 7) {
      for (const extra of [0, 1, 13, 32, 77]) {
        const p = cropPctFor(crop, crop + extra);
        expect(Math.floor(crop / p), `${crop}/${crop + extra}`).toBe(crop + extra);
        expect(p).toBeLessThanOrEqual(1);
      }
    }
  });
});

describe('preprocessFromFlags', () => {
  it('overrides only what the flags set and validates the result', () => {
    const base = IMAGENET_DEFAULT as PreprocessConfig;
    const c = preprocessFromFlags(base, { size: 299, cropPct: 299 / 342, bgr: true, mean: [1, 2, 3], std: 0.5, layout: 'NHWC', interpolation: 'bicubic', rescale: 1 });
    expect(c).toEqual({ ...base, inputSize: [299, 299], cropPct: 299 / 342, channelOrder: 'BGR', mean: [1, 2, 3], std: [0.5, 0.5, 0.5], layout: 'NHWC', interpolation: 'bicubic', rescale: 1 });
    expect(planResize(400, 300, c)).toMatchObject({ height: 342 });
    expect(preprocessFromFlags(base, { size: [224, 320], resize: 'squash', bgr: false })).toMatchObject({ inputSize: [224, 320], resize: 'squash', channelOrder: 'RGB' });
    expect(base.inputSize).toEqual([224, 224]);
  });

  it('rejects bad values with INVALID_ARGUMENT', () => {
    const base = IMAGENET_DEFAULT as PreprocessConfig;
    for (const flags of [{ size: 0 }, { size: [224] as unknown as [number, number] }, { cropPct: 1.5 }, { mean: [1, 2] }, { std: [1, 1, 0] }, { rescale: -1 }, { interpolation: 'area' as never }]) {
      expect(error(() => preprocessFromFlags(base, flags)).code, JSON.stringify(flags)).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('guessPreprocess', () => {
  it('finds the channel axis and the size', () => {
    expect(guessPreprocess([1, 3, 224, 224])).toMatchObject({ layout: 'NCHW', inputSize: [224, 224], mean: IMAGENET_MEAN, resize: 'crop', cropPct: 0.875 });
    expect(guessPreprocess(['N', 3, 'H', 'W'])).toMatchObject({ layout: 'NCHW', inputSize: [224, 224] });
    expect(guessPreprocess([null, 299, 299, 3])).toMatchObject({ layout: 'NHWC', inputSize: [299, 299] });
    expect(guessPreprocess([1, 3, 'h', 256])).toMatchObject({ inputSize: [256, 256] });
    expect(guessPreprocess([3, 192, 256])).toMatchObject({ layout: 'NCHW', inputSize: [192, 256] });
    expect(guessPreprocess([1, 3, 3, 3])).toMatchObject({ layout: 'NCHW', inputSize: [3, 3] });
  });

  it('refuses shapes that are not RGB images', () => {
    expect(error(() => guessPreprocess([1, 1, 28, 28])).code).toBe('MODEL_UNSUPPORTED');
    expect(error(() => guessPreprocess([1, 784])).code).toBe('MODEL_UNSUPPORTED');
  });
});
