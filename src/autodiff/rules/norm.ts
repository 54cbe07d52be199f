/**
 * BatchNormalization with frozen statistics (inference mode) — the transfer-learning default: the
 * layer is a per-channel affine map, so dX = dY·γ/σ and γ, β get the usual sums. Training-mode BN
 * (batch statistics) is decomposed into elementary ops before differentiation (see train-step), so the
 * generic rules produce its gradient.
 */
import { GraftError } from '../../errors.js';
import type { GradRule } from '../rule.js';

export const normRules: Record<string, GradRule> = {
  BatchNormalization: {
    // running mean and variance are statistics, not parameters: they receive no gradient
    differentiable: () => [0, 1, 2],
    backward(ctx) {
      const { b, node } = ctx;
      if (node.int('training_mode', 0) === 1) {
        throw new GraftError('MODEL_UNSUPPORTED', `BatchNormalization "${node.name}" is in training mode; graft decomposes such nodes before differentiation.`, { subject: node.name });
      }
      const [x, scale, , mean, variance] = node.inputs;
      const rank = ctx.shape(x).length;
      // per-channel vectors broadcast as [1, C, 1, 1] (or [1, C] after a Flatten)
      const channelShape = b.i64([1, -1, ...Array(Math.max(0, rank - 2)).fill(1)]);
      const perChannel = (v: string) => b.op('Reshape', [v, channelShape]);
      const reduceAxes = b.i64([0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)]);
      const invStd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [variance, b.f32(node.float('epsilon', 1e-5))])])]);
      const dY = ctx.dY()!;
      if (ctx.needs(0)) ctx.grad(0, b.op('Mul', [dY, perChannel(b.op('Mul', [scale, invStd]))]));
      if (ctx.needs(1)) {
        const xhat = b.op('Mul', [b.op('Sub', [x, perChannel(mean)]), perChannel(invStd)]);
        ctx.grad(1, b.op('ReduceSum', [b.op('Mul', [dY, xhat]), reduceAxes], { keepdims: 0 }));
      }
      if (ctx.needs(2)) ctx.grad(2, b.op('ReduceSum', [dY, reduceAxes], { keepdims: 0 }));
    },
  },
};
