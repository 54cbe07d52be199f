/** Max / average pooling (TF excludes padding from the average) and global pooling. */
import { windowOutput, type KTensor } from '../context.js';
import { one, type ConverterTable, type LayerConverter } from '../converter.js';
import { padAttrs } from './conv.js';

function pool(opType: 'MaxPool' | 'AveragePool'): LayerConverter {
  return {
    convert(ctx, inputs) {
      const x = ctx.image(one(ctx, inputs));
      const kernel = ctx.cfg.pair('pool_size', [2, 2]);
      const strides = ctx.cfg.pair('strides', kernel);
      const padding = ctx.cfg.str('padding', 'valid').toLowerCase();
      if (padding !== 'same' && padding !== 'valid') ctx.unsupported(`padding "${padding}" is not supported`);
      const w = { kernel, strides, dilations: [1, 1] as [number, number], padding };
      const extra = opType === 'AveragePool' ? { count_include_pad: 0 } : {};
      const y = ctx.op(opType, [x.name], { kernel_shape: kernel, strides, ...padAttrs(x, w), ...extra });
      const out = (a: 0 | 1) => windowOutput(x.shape[1 + a], kernel[a], strides[a], 1, padding);
      return { name: y, shape: [x.shape[0], out(0), out(1), x.shape[3]] };
    },
  };
}

function globalPool(opType: 'ReduceMean' | 'ReduceMax'): LayerConverter {
  return {
    convert(ctx, inputs) {
      const x: KTensor = ctx.image(one(ctx, inputs));
      const keep = ctx.cfg.bool('keepdims', false);
      const y = ctx.op(opType, [x.name], { axes: [2, 3], keepdims: keep ? 1 : 0 });
      return { name: y, shape: keep ? [x.shape[0], 1, 1, x.shape[3]] : [x.shape[0], x.shape[3]] };
    },
  };
}

export const POOLING_LAYERS: ConverterTable = {
  MaxPooling2D: pool('MaxPool'),
  AveragePooling2D: pool('AveragePool'),
  GlobalAveragePooling2D: globalPool('ReduceMean'),
  GlobalMaxPooling2D: globalPool('ReduceMax'),
};
