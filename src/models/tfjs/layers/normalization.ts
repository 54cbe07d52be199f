/** BatchNormalization at inference: the moving statistics, epsilon, and the center / scale flags. */
import { attr } from '../../../graph/ir.js';
import { float32 } from '../../../onnx/tensor.js';
import { one, type ConverterTable } from '../converter.js';

export const NORMALIZATION_LAYERS: ConverterTable = {
  BatchNormalization: {
    weights: (cfg) => [...(cfg.bool('scale', true) ? ['gamma'] : []), ...(cfg.bool('center', true) ? ['beta'] : []), 'moving_mean', 'moving_variance'],
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      const rank = x.shape.length;
      const kerasAxis = ctx.cfg.axis('axis', -1);
      const axis = ctx.axis(rank, kerasAxis);
      const mean = ctx.weight('moving_mean');
      const variance = ctx.weight('moving_variance');
      const c = mean.dims[0];
      const channels = x.shape[kerasAxis < 0 ? kerasAxis + rank : kerasAxis];
      if (mean.dims.length !== 1 || (channels !== null && channels !== c)) ctx.unsupported(`its statistics have ${mean.dims.join('×')} values for ${channels} channels`);
      const gamma = ctx.cfg.bool('scale', true) ? ctx.weight('gamma') : float32([c], new Float32Array(c).fill(1));
      const beta = ctx.cfg.bool('center', true) ? ctx.weight('beta') : float32([c], new Float32Array(c));
      const epsilon = ctx.cfg.num('epsilon', 1e-3);
      if (axis === 1 && rank >= 2) {
        const y = ctx.op('BatchNormalization', [x.name, ctx.constant('gamma', gamma), ctx.constant('beta', beta), ctx.constant('moving_mean', mean), ctx.constant('moving_variance', variance)], {
          epsilon: attr.f(epsilon),
        });
        return { name: y, shape: x.shape };
      }
      // normalising over a non-channel axis: fold into one scale and shift broadcast along that axis
      const a = new Float32Array(c);
      const b = new Float32Array(c);
      for (let i = 0; i < c; i++) {
        a[i] = gamma.data[i] / Math.sqrt(variance.data[i] + epsilon);
        b[i] = beta.data[i] - mean.data[i] * a[i];
      }
      const shape = [c, ...new Array<number>(rank - 1 - axis).fill(1)];
      const scaled = ctx.op('Mul', [x.name, ctx.constant('scale', float32(shape, a))]);
      return { name: ctx.op('Add', [scaled, ctx.constant('shift', float32(shape, b))]), shape: x.shape };
    },
  },
};
