/**
 * Convolutions. Kernels are transposed once at import (Keras HWIO → ONNX OIHW), and TF's "same"
 * padding becomes explicit pads, the odd pixel at the bottom / right as TF puts it.
 */
import { float32, type Tensor } from '../../../onnx/tensor.js';
import { samePads, windowOutput, type KTensor, type LayerContext } from '../context.js';
import { one, type ConverterTable } from '../converter.js';
import { applyActivation } from './activations.js';

/** [kh, kw, a, b] → [b, a, kh, kw]: Conv (HWIO → OIHW) and ConvTranspose (HW·out·in → in·out·HW) alike. */
export function hwabToBahw(k: Tensor<Float32Array>): Tensor<Float32Array> {
  const [kh, kw, a, b] = k.dims;
  const src = k.data;
  const out = new Float32Array(src.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < a; i++) {
        const from = ((y * kw + x) * a + i) * b;
        for (let o = 0; o < b; o++) out[((o * a + i) * kh + y) * kw + x] = src[from + o];
      }
  return float32([b, a, kh, kw], out);
}

/** Depthwise [kh, kw, C, M] → [C·M, 1, kh, kw]; output channel c·M + m, as TF orders them. */
export function depthwiseToOnnx(k: Tensor<Float32Array>): Tensor<Float32Array> {
  const [kh, kw, c, m] = k.dims;
  return hwabToBahw(float32([kh, kw, 1, c * m], k.data));
}

interface Window {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  padding: string;
}

function windowOf(ctx: LayerContext, kernelKey = 'kernel_size'): Window {
  const padding = ctx.cfg.str('padding', 'valid').toLowerCase();
  if (padding !== 'same' && padding !== 'valid') ctx.unsupported(`padding "${padding}" is not supported (only "same" and "valid")`);
  return {
    kernel: ctx.cfg.pair(kernelKey, [1, 1]),
    strides: ctx.cfg.pair('strides', [1, 1]),
    dilations: ctx.cfg.pair('dilation_rate', [1, 1]),
    padding,
  };
}

/** ONNX pads / auto_pad attributes for a window over x (NHWC shape). */
export function padAttrs(x: KTensor, w: Window): { pads?: number[]; auto_pad?: string } {
  if (w.padding === 'valid') return { pads: [0, 0, 0, 0] };
  const ph = samePads(x.shape[1], w.kernel[0], w.strides[0], w.dilations[0]);
  const pw = samePads(x.shape[2], w.kernel[1], w.strides[1], w.dilations[1]);
  // with unknown spatial size only ORT can place the pads; SAME_UPPER is TF's rule
  if (!ph || !pw) return { auto_pad: 'SAME_UPPER' };
  return { pads: [ph[0], pw[0], ph[1], pw[1]] };
}

function outputShape(x: KTensor, w: Window, channels: number): KTensor['shape'] {
  return [
    x.shape[0],
    windowOutput(x.shape[1], w.kernel[0], w.strides[0], w.dilations[0], w.padding),
    windowOutput(x.shape[2], w.kernel[1], w.strides[1], w.dilations[1], w.padding),
    channels,
  ];
}

function checkKernel(ctx: LayerContext, k: Tensor, expected: (number | null)[], what: string): void {
  const ok = k.dims.length === expected.length && expected.every((d, i) => d === null || d === k.dims[i]);
  if (!ok) {
    ctx.unsupported(`its ${what} has shape [${k.dims.join(', ')}] but the config and input imply [${expected.map((d) => d ?? '?').join(', ')}]`);
  }
}

function conv(ctx: LayerContext, x: KTensor, w: Window, weight: Tensor<Float32Array>, bias: Tensor<Float32Array> | undefined, group: number, suffix = ''): string {
  const inputs = [x.name, ctx.constant(`kernel${suffix}`, weight)];
  if (bias) inputs.push(ctx.constant('bias', bias));
  return ctx.op('Conv', inputs, {
    kernel_shape: w.kernel,
    strides: w.strides,
    dilations: w.dilations,
    group,
    ...padAttrs(x, w),
  });
}

const biasIf = (ctx: LayerContext) => (ctx.cfg.bool('use_bias', true) ? ctx.weight('bias') : undefined);

export const CONV_LAYERS: ConverterTable = {
  Conv2D: {
    weights: (cfg) => (cfg.bool('use_bias', true) ? ['kernel', 'bias'] : ['kernel']),
    convert(ctx, inputs) {
      const x = ctx.image(one(ctx, inputs));
      const w = windowOf(ctx);
      const groups = ctx.cfg.num('groups', 1);
      const k = ctx.weight('kernel');
      const cin = x.shape[3];
      checkKernel(ctx, k, [w.kernel[0], w.kernel[1], cin === null ? null : cin / groups, ctx.cfg.num('filters')], 'kernel');
      const y = conv(ctx, x, w, hwabToBahw(k), biasIf(ctx), groups);
      return applyActivation(ctx, { name: y, shape: outputShape(x, w, k.dims[3]) });
    },
  },

  DepthwiseConv2D: {
    weights: (cfg) => (cfg.bool('use_bias', true) ? ['depthwise_kernel', 'bias'] : ['depthwise_kernel']),
    convert(ctx, inputs) {
      const x = ctx.image(one(ctx, inputs));
      const w = windowOf(ctx);
      const k = ctx.weight('depthwise_kernel');
      checkKernel(ctx, k, [w.kernel[0], w.kernel[1], x.shape[3], null], 'depthwise kernel');
      const [, , c, m] = k.dims;
      const y = conv(ctx, x, w, depthwiseToOnnx(k), biasIf(ctx), c);
      return applyActivation(ctx, { name: y, shape: outputShape(x, w, c * m) });
    },
  },

  SeparableConv2D: {
    weights: (cfg) => ['depthwise_kernel', 'pointwise_kernel', ...(cfg.bool('use_bias', true) ? ['bias'] : [])],
    convert(ctx, inputs) {
      const x = ctx.image(one(ctx, inputs));
      const w = windowOf(ctx);
      const dk = ctx.weight('depthwise_kernel');
      const pk = ctx.weight('pointwise_kernel');
      // the multiplier comes from the kernel: tfjs leaves depth_multiplier out of SeparableConv2D configs
      checkKernel(ctx, dk, [w.kernel[0], w.kernel[1], x.shape[3], null], 'depthwise kernel');
      const [, , c, m] = dk.dims;
      checkKernel(ctx, pk, [1, 1, c * m, ctx.cfg.num('filters')], 'pointwise kernel');
      const mid: KTensor = { name: conv(ctx, x, w, depthwiseToOnnx(dk), undefined, c, '_depthwise'), shape: outputShape(x, w, c * m) };
      const pointwise: Window = { kernel: [1, 1], strides: [1, 1], dilations: [1, 1], padding: 'valid' };
      const y = conv(ctx, mid, pointwise, hwabToBahw(pk), biasIf(ctx), 1, '_pointwise');
      return applyActivation(ctx, { name: y, shape: [...mid.shape.slice(0, 3), pk.dims[3]] });
    },
  },

  /**
   * The gradient of a "same"/"valid" Conv2D: Keras fixes the output size, then the pads are TF's forward
   * pads for that size and ONNX's output_padding makes up what cropping cannot express.
   */
  Conv2DTranspose: {
    weights: (cfg) => (cfg.bool('use_bias', true) ? ['kernel', 'bias'] : ['kernel']),
    convert(ctx, inputs) {
      const x = ctx.image(one(ctx, inputs));
      const w = windowOf(ctx);
      const k = ctx.weight('kernel');
      checkKernel(ctx, k, [w.kernel[0], w.kernel[1], ctx.cfg.num('filters'), x.shape[3]], 'kernel');
      const outPad = ctx.cfg.has('output_padding') ? ctx.cfg.pair('output_padding', [0, 0]) : undefined;
      const pads = [0, 0, 0, 0];
      const outputPadding = [0, 0];
      const size: number[] = [];
      for (const a of [0, 1]) {
        const n = x.shape[1 + a] ?? ctx.unsupported('Conv2DTranspose needs a known input height and width');
        const kEff = (w.kernel[a] - 1) * w.dilations[a] + 1;
        const s = w.strides[a];
        let out: number;
        if (outPad) out = (n - 1) * s + kEff - 2 * (w.padding === 'same' ? Math.floor(kEff / 2) : 0) + outPad[a];
        else out = w.padding === 'same' ? n * s : n * s + Math.max(kEff - s, 0);
        const full = (n - 1) * s + kEff;
        const total = w.padding === 'same' ? Math.max(full - out, 0) : 0;
        pads[a] = Math.floor(total / 2);
        pads[a + 2] = total - pads[a];
        outputPadding[a] = out - (full - total);
        if (outputPadding[a] < 0 || outputPadding[a] >= Math.max(s, w.dilations[a])) ctx.unsupported(`its output size ${out} cannot be produced by ONNX ConvTranspose`);
        size.push(out);
      }
      const ins = [x.name, ctx.constant('kernel', hwabToBahw(k))];
      const bias = biasIf(ctx);
      if (bias) ins.push(ctx.constant('bias', bias));
      const y = ctx.op('ConvTranspose', ins, { kernel_shape: w.kernel, strides: w.strides, dilations: w.dilations, pads, output_padding: outputPadding });
      return applyActivation(ctx, { name: y, shape: [x.shape[0], size[0], size[1], k.dims[2]] });
    },
  },
};
