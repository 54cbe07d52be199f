/** Core layers: Dense, the inference-time identities (dropout, noise), Rescaling. */
import { attr } from '../../../graph/ir.js';
import { one, type ConverterTable, type LayerConverter } from '../converter.js';
import { applyActivation } from './activations.js';

/** Layers that only act while training. */
const identity: LayerConverter = { convert: (ctx, inputs) => one(ctx, inputs) };

export const CORE_LAYERS: ConverterTable = {
  /** kernel [in, units]: Gemm on 2-D input; on images Keras contracts the channel axis. */
  Dense: {
    weights: (cfg) => (cfg.bool('use_bias', true) ? ['kernel', 'bias'] : ['kernel']),
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      const k = ctx.weight('kernel');
      const units = ctx.cfg.num('units');
      const fanIn = x.shape[x.shape.length - 1];
      if (k.dims.length !== 2 || k.dims[1] !== units || (fanIn !== null && k.dims[0] !== fanIn)) {
        ctx.unsupported(`its kernel has shape [${k.dims.join(', ')}] for ${fanIn} inputs and ${units} units`);
      }
      const kernel = ctx.constant('kernel', k);
      const bias = ctx.cfg.bool('use_bias', true) ? ctx.constant('bias', ctx.weight('bias')) : undefined;
      const shape = [...x.shape.slice(0, -1), units];
      let y: string;
      if (x.shape.length === 2) {
        y = ctx.op('Gemm', bias ? [x.name, kernel, bias] : [x.name, kernel], { alpha: attr.f(1), beta: attr.f(1) });
      } else {
        y = ctx.op('MatMul', [ctx.toKerasOrder(x), kernel]);
        if (bias) y = ctx.op('Add', [y, bias]);
        y = ctx.fromKerasOrder(y, shape.length);
      }
      return applyActivation(ctx, { name: y, shape });
    },
  },

  Dropout: identity,
  SpatialDropout1D: identity,
  SpatialDropout2D: identity,
  SpatialDropout3D: identity,
  AlphaDropout: identity,
  GaussianDropout: identity,
  GaussianNoise: identity,
  ActivityRegularization: identity,
  Identity: identity,

  /** x · scale + offset (Keras ≥ 2.6 preprocessing layer); scalars only. */
  Rescaling: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      const scale = ctx.cfg.num('scale', 1);
      const offset = ctx.cfg.num('offset', 0);
      let y = ctx.op('Mul', [x.name, ctx.b.f32(scale)]);
      if (offset !== 0) y = ctx.op('Add', [y, ctx.b.f32(offset)]);
      return { name: y, shape: x.shape };
    },
  },
};
