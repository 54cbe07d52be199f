/** Keras activations (as functions and as layers) → ONNX. */
import { attr, type AttrInput } from '../../../graph/ir.js';
import { float32 } from '../../../onnx/tensor.js';
import type { KTensor, LayerContext } from '../context.js';
import { one, type ConverterTable } from '../converter.js';

type Activation = (ctx: LayerContext, x: KTensor) => string;

const unary =
  (opType: string, attrs: Record<string, AttrInput> = {}): Activation =>
  (ctx, x) =>
    ctx.op(opType, [x.name], attrs);

const swish: Activation = (ctx, x) => ctx.op('Mul', [x.name, ctx.op('Sigmoid', [x.name])]);

/** Exact GELU, x·Φ(x) with Φ through erf, as tfjs computes it (ONNX's Gelu op arrives only in opset 20). */
const gelu: Activation = (ctx, x) => {
  const cdf = ctx.op('Mul', [ctx.op('Add', [ctx.op('Erf', [ctx.op('Div', [x.name, ctx.b.f32(Math.SQRT2)])]), ctx.b.f32(1)]), ctx.b.f32(0.5)]);
  return ctx.op('Mul', [x.name, cdf]);
};

/** tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
const geluTanh: Activation = (ctx, x) => {
  const cube = ctx.op('Mul', [ctx.op('Mul', [x.name, x.name]), x.name]);
  const inner = ctx.op('Mul', [ctx.op('Add', [x.name, ctx.op('Mul', [cube, ctx.b.f32(0.044715)])]), ctx.b.f32(Math.sqrt(2 / Math.PI))]);
  return ctx.op('Mul', [ctx.op('Mul', [x.name, ctx.b.f32(0.5)]), ctx.op('Add', [ctx.op('Tanh', [inner]), ctx.b.f32(1)])]);
};

/** Softmax-like activations act on the last Keras axis, which is the channel axis (1) of an image. */
const lastAxis =
  (opType: string): Activation =>
  (ctx, x) =>
    ctx.op(opType, [x.name], { axis: ctx.axis(x.shape.length, -1) });

/** Keras / tfjs activation names (snake_case) → emitters. `linear` returns its input. */
export const ACTIVATIONS: Record<string, Activation> = {
  linear: (_ctx, x) => x.name,
  relu: unary('Relu'),
  relu6: (ctx, x) => ctx.op('Clip', [x.name, ctx.b.f32(0), ctx.b.f32(6)]),
  sigmoid: unary('Sigmoid'),
  tanh: unary('Tanh'),
  softmax: lastAxis('Softmax'),
  log_softmax: lastAxis('LogSoftmax'),
  elu: unary('Elu', { alpha: attr.f(1) }),
  selu: unary('Selu'),
  softplus: unary('Softplus'),
  softsign: unary('Softsign'),
  exponential: unary('Exp'),
  swish,
  silu: swish,
  // Keras 2 / tfjs definition: clip(0.2·x + 0.5, 0, 1) (Keras 3 changed it to relu6(x + 3) / 6)
  hard_sigmoid: (ctx, x) => ctx.op('HardSigmoid', [x.name], { alpha: attr.f(0.2), beta: attr.f(0.5) }),
  hard_swish: unary('HardSwish'),
  hard_silu: unary('HardSwish'),
  gelu,
  gelu_new: geluTanh,
  mish: (ctx, x) => ctx.op('Mul', [x.name, ctx.op('Tanh', [ctx.op('Softplus', [x.name])])]),
};

/** "hardSigmoid" (tfjs class names) and "hard_sigmoid" (Keras) are the same activation. */
export function normaliseActivation(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Applies the activation named in the config to `x` (nothing for "linear"). */
export function applyActivation(ctx: LayerContext, x: KTensor, name = ctx.cfg.activation()): KTensor {
  const key = normaliseActivation(name);
  const f = ACTIVATIONS[key];
  if (!f) ctx.unsupported(`activation "${name}" has no conversion (known: ${Object.keys(ACTIVATIONS).join(', ')})`);
  return { name: f(ctx, x), shape: x.shape };
}

export const ACTIVATION_LAYERS: ConverterTable = {
  Activation: { convert: (ctx, inputs) => applyActivation(ctx, one(ctx, inputs)) },

  /** Keras ReLU: max_value cap, negative_slope below threshold, threshold shift. */
  ReLU: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      const max = ctx.cfg.optNum('max_value');
      const slope = ctx.cfg.num('negative_slope', 0);
      const threshold = ctx.cfg.num('threshold', 0);
      let y: string;
      if (slope === 0 && threshold === 0) {
        y = max === undefined ? ctx.op('Relu', [x.name]) : ctx.op('Clip', [x.name, ctx.b.f32(0), ctx.b.f32(max)]);
        return { name: y, shape: x.shape };
      }
      // x ≥ threshold: x;  otherwise: slope·(x − threshold)
      const below = slope === 0 ? ctx.b.f32(0) : ctx.op('Mul', [ctx.op('Sub', [x.name, ctx.b.f32(threshold)]), ctx.b.f32(slope)]);
      y = ctx.op('Where', [ctx.op('GreaterOrEqual', [x.name, ctx.b.f32(threshold)]), x.name, below]);
      if (max !== undefined) y = ctx.op('Min', [y, ctx.b.f32(max)]);
      return { name: y, shape: x.shape };
    },
  },

  LeakyReLU: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      return { name: ctx.op('LeakyRelu', [x.name], { alpha: attr.f(ctx.cfg.num(['negative_slope', 'alpha'], 0.3)) }), shape: x.shape };
    },
  },

  /** alpha has the input's shape without batch (1 along shared axes): moved into the graph layout. */
  PReLU: {
    weights: () => ['alpha'],
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      let alpha = ctx.weight('alpha');
      if (alpha.dims.length === 3) {
        const [h, w, c] = alpha.dims;
        const out = new Float32Array(alpha.data.length);
        for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let k = 0; k < c; k++) out[(k * h + i) * w + j] = alpha.data[(i * w + j) * c + k];
        alpha = float32([c, h, w], out);
      }
      return { name: ctx.op('PRelu', [x.name, ctx.constant('alpha', alpha)]), shape: x.shape };
    },
  },

  ELU: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      return { name: ctx.op('Elu', [x.name], { alpha: attr.f(ctx.cfg.num('alpha', 1)) }), shape: x.shape };
    },
  },

  ThresholdedReLU: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      return { name: ctx.op('ThresholdedRelu', [x.name], { alpha: attr.f(ctx.cfg.num('theta', 1)) }), shape: x.shape };
    },
  },

  Softmax: {
    convert(ctx, inputs) {
      const x = one(ctx, inputs);
      return { name: ctx.op('Softmax', [x.name], { axis: ctx.axis(x.shape.length, ctx.cfg.axis('axis', -1)) }), shape: x.shape };
    },
  },
};
