/**
 * Layers that move pixels: padding, cropping, upsampling, and the ones that change rank (Flatten,
 * Reshape, Permute), which must see elements in Keras' NHWC order to keep the following weights valid.
 */
import { numel } from '../../../onnx/tensor.js';
import type { KDim } from '../context.js';
import { one, type ConverterTable } from '../converter.js';

const INT64_MAX = Number.MAX_SAFE_INTEGER;

export const RESHAPING_LAYERS: ConverterTable = {
  ZeroPadding2D: {
    convert(ctx, inputs) {
      const x = ctx.image(one(ctx, inputs));
      const [[top, bottom], [left, right]] = ctx.cfg.margins('padding', 1);
      const y = ctx.op('Pad', [x.name, ctx.b.i64([0, 0, top, left, 0, 0, bottom, right]), ctx.b.f32(0)], { mode: 'constant' });
      const grow = (d: KDim, n: number) => (d === null ? null : d + n);
      return { name: y, shape: [x.shape[0], grow(x.shape[1], top + bottom), grow(x.shape[2], left + right), x.shape[3]] };
    },
  },

  Cropping2D: {
    convert(ctx, inputs) {
      const x = ctx.image(one(ctx, inputs));
      const [[top, bottom], [left, right]] = ctx.cfg.margins('cropping', 0);
      const end = (n: number) => (n > 0 ? -n : INT64_MAX);
      const y = ctx.op('Slice', [x.name, ctx.b.i64([top, left]), ctx.b.i64([end(bottom), end(right)]), ctx.b.i64([2, 3])]);
      const shrink = (d: KDim, n: number) => (d === null ? null : d - n);
      return { name: y, shape: [x.shape[0], shrink(x.shape[1], top + bottom), shrink(x.shape[2], left + right), x.shape[3]] };
    },
  },

  /** tfjs resizes with align_corners = half_pixel_centers = false: ONNX's "asymmetric" grid. */
  UpSampling2D: {
    convert(ctx, inputs) {
      const x = ctx.image(one(ctx, inputs));
      const [sh, sw] = ctx.cfg.pair('size', [2, 2]);
      const interpolation = ctx.cfg.str('interpolation', 'nearest');
      if (interpolation !== 'nearest' && interpolation !== 'bilinear') ctx.unsupported(`interpolation "${interpolation}" is not supported`);
      const y = ctx.op('Resize', [x.name, '', ctx.b.f32s([1, 1, sh, sw])], {
        mode: interpolation === 'nearest' ? 'nearest' : 'linear',
        coordinate_transformation_mode: 'asymmetric',
        nearest_mode: 'floor',
      });
      const scale = (d: KDim, n: number) => (d === null ? null : d * n);
      return { name: y, shape: [x.shape[0], scale(x.shape[1], sh), scale(x.shape[2], sw), x.shape[3]] };
    },
  },

  /** Keras flattens NHWC; a map wider than 1×1 is transposed back to that order first. */
  Flatten: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      const rest = x.shape.slice(1);
      const size = rest.includes(null) ? null : numel(rest as number[]);
      const spatialIsOne = x.shape.length === 4 && x.shape[1] === 1 && x.shape[2] === 1;
      const src = spatialIsOne ? x.name : ctx.toKerasOrder(x);
      return { name: ctx.op('Flatten', [src], { axis: 1 }), shape: [x.shape[0], size] };
    },
  },

  Reshape: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      const raw = ctx.cfg.raw.target_shape;
      if (!Array.isArray(raw) || !raw.every((d) => typeof d === 'number' || d === null)) ctx.unsupported(`target_shape ${JSON.stringify(raw)} is not a list of ints`);
      const target = (raw as (number | null)[]).map((d) => (d === null ? -1 : d));
      const known = x.shape.slice(1);
      let out: KDim[] = target.map((d) => (d === -1 ? null : d));
      if (target.includes(-1) && !known.includes(null)) {
        const total = numel(known as number[]);
        const rest = numel(target.filter((d) => d !== -1));
        out = target.map((d) => (d === -1 ? total / rest : d));
      }
      // 0 keeps the batch dimension whatever it is
      const y = ctx.op('Reshape', [ctx.toKerasOrder(x), ctx.b.i64([0, ...target])]);
      const shape = [x.shape[0], ...out];
      return { name: ctx.fromKerasOrder(y, shape.length), shape };
    },
  },

  Permute: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      const dims = ctx.cfg.raw.dims;
      if (!Array.isArray(dims) || dims.length !== x.shape.length - 1) ctx.unsupported(`dims ${JSON.stringify(dims)} do not match a rank-${x.shape.length} input`);
      const perm = [0, ...(dims as number[])];
      const y = ctx.op('Transpose', [ctx.toKerasOrder(x)], { perm });
      const shape = perm.map((p) => x.shape[p]);
      return { name: ctx.fromKerasOrder(y, shape.length), shape };
    },
  },
};
