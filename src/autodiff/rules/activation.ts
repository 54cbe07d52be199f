/**
 * Pointwise activations. Masks follow PyTorch's backward conventions at the kinks (ReLU passes the
 * gradient only where the output is > 0; hardtanh/ReLU6 only strictly inside (min, max)) so that
 * gradients match torch autograd exactly, not just almost everywhere.
 */
import type { GradRule, RuleContext } from '../rule.js';

const firstInputOnly = () => [0];

/**
 * dX = dY·scale? where mask, else 0 — as dY·float(mask): in onnxruntime a Cast of the boolean mask and a
 * Mul beat Where with a broadcast zero by ~15 % on activation-sized tensors (bench/finetune/micro-ops.ts).
 */
function masked(ctx: RuleContext, mask: string, scaled?: string): void {
  const { b } = ctx;
  const dY = scaled ?? ctx.dY()!;
  // training graphs are float32 throughout (Cast to FLOAT; ORT cannot constant-fold CastLike)
  ctx.grad(0, b.op('Mul', [dY, b.op('Cast', [mask], { to: 1 })]));
}

export const activationRules: Record<string, GradRule> = {
  Relu: {
    backward(ctx) {
      const { b, node } = ctx;
      masked(ctx, b.op('Greater', [node.outputs[0], b.f32(0)]));
    },
  },

  LeakyRelu: {
    backward(ctx) {
      const { b, node } = ctx;
      const dY = ctx.dY()!;
      const alpha = node.float('alpha', 0.01);
      ctx.grad(0, b.op('Where', [b.op('Greater', [node.inputs[0], b.f32(0)]), dY, b.op('Mul', [dY, b.f32(alpha)])]));
    },
  },

  PRelu: {
    backward(ctx) {
      const { b, node } = ctx;
      const [x, slope] = node.inputs;
      const dY = ctx.dY()!;
      const positive = b.op('Greater', [x, b.f32(0)]);
      if (ctx.needs(0)) ctx.grad(0, b.op('Where', [positive, dY, b.op('Mul', [dY, slope])]));
      if (ctx.needs(1)) {
        const dSlope = b.op('Where', [positive, b.f32(0), b.op('Mul', [dY, x])]);
        ctx.grad(1, ctx.unbroadcast(dSlope, slope, node.outputs[0]));
      }
    },
  },

  Clip: {
    differentiable: firstInputOnly,
    backward(ctx) {
      const { b, node } = ctx;
      // the mask is read off the output (min < y < max exactly where min < x < max), so the
      // pre-activation need not be kept for the backward and onnxruntime can fuse Conv+Clip
      const x = node.outputs[0];
      const [min, max] = [node.input(1), node.input(2)];
      const conds: string[] = [];
      if (min) conds.push(b.op('Greater', [x, min]));
      if (max) conds.push(b.op('Less', [x, max]));
      if (conds.length === 0) return ctx.grad(0, ctx.dY()!);
      masked(ctx, conds.length === 1 ? conds[0] : b.op('And', conds));
    },
  },

  Sigmoid: {
    backward(ctx) {
      const { b, node } = ctx;
      const y = node.outputs[0];
      ctx.grad(0, b.op('Mul', [ctx.dY()!, b.op('Mul', [y, b.op('Sub', [b.f32(1), y])])]));
    },
  },

  HardSigmoid: {
    backward(ctx) {
      const { b, node } = ctx;
      const alpha = node.float('alpha', 0.2);
      const beta = node.float('beta', 0.5);
      const t = b.op('Add', [b.op('Mul', [node.inputs[0], b.f32(alpha)]), b.f32(beta)]);
      const inside = b.op('And', [b.op('Greater', [t, b.f32(0)]), b.op('Less', [t, b.f32(1)])]);
      masked(ctx, inside, b.op('Mul', [ctx.dY()!, b.f32(alpha)]));
    },
  },

  HardSwish: {
    // y = x·clamp(x/6 + 1/2, 0, 1); torch: 0 below −3, dY·(x/3 + 1/2) on [−3, 3], dY above 3
    backward(ctx) {
      const { b, node } = ctx;
      const x = node.inputs[0];
      const dY = ctx.dY()!;
      const ramp = b.op('Mul', [dY, b.op('Add', [b.op('Mul', [x, b.f32(1 / 3)]), b.f32(0.5)])]);
      const upper = b.op('Where', [b.op('Greater', [x, b.f32(3)]), dY, ramp]);
      ctx.grad(0, b.op('Where', [b.op('Less', [x, b.f32(-3)]), b.f32(0), upper]));
    },
  },

  Tanh: {
    backward(ctx) {
      const { b, node } = ctx;
      const y = node.outputs[0];
      ctx.grad(0, b.op('Mul', [ctx.dY()!, b.op('Sub', [b.f32(1), b.op('Mul', [y, y])])]));
    },
  },

  Elu: {
    backward(ctx) {
      const { b, node } = ctx;
      const alpha = node.float('alpha', 1);
      const dY = ctx.dY()!;
      const neg = b.op('Mul', [dY, b.op('Add', [node.outputs[0], b.f32(alpha)])]);
      ctx.grad(0, b.op('Where', [b.op('Greater', [node.inputs[0], b.f32(0)]), dY, neg]));
    },
  },

  Selu: {
    backward(ctx) {
      const { b, node } = ctx;
      const alpha = node.float('alpha', 1.67326319217681884765625);
      const gamma = node.float('gamma', 1.05070102214813232421875);
      const dY = ctx.dY()!;
      const pos = b.op('Mul', [dY, b.f32(gamma)]);
      const neg = b.op('Mul', [dY, b.op('Add', [node.outputs[0], b.f32(alpha * gamma)])]);
      ctx.grad(0, b.op('Where', [b.op('Greater', [node.inputs[0], b.f32(0)]), pos, neg]));
    },
  },

  Softplus: {
    backward(ctx) {
      const { b, node } = ctx;
      ctx.grad(0, b.op('Mul', [ctx.dY()!, b.op('Sigmoid', [node.inputs[0]])]));
    },
  },

  Exp: {
    backward(ctx) {
      ctx.grad(0, ctx.b.op('Mul', [ctx.dY()!, ctx.node.outputs[0]]));
    },
  },

  Log: {
    backward(ctx) {
      ctx.grad(0, ctx.b.op('Div', [ctx.dY()!, ctx.node.inputs[0]]));
    },
  },

  Sqrt: {
    backward(ctx) {
      const { b, node } = ctx;
      ctx.grad(0, b.op('Div', [ctx.dY()!, b.op('Mul', [node.outputs[0], b.f32(2)])]));
    },
  },

  Neg: {
    backward(ctx) {
      ctx.grad(0, ctx.b.op('Neg', [ctx.dY()!]));
    },
  },

  Abs: {
    backward(ctx) {
      ctx.grad(0, ctx.b.op('Mul', [ctx.dY()!, ctx.b.op('Sign', [ctx.node.inputs[0]])]));
    },
  },

  Reciprocal: {
    backward(ctx) {
      const { b, node } = ctx;
      const y = node.outputs[0];
      ctx.grad(0, b.op('Neg', [b.op('Mul', [ctx.dY()!, b.op('Mul', [y, y])])]));
    },
  },

  Erf: {
    backward(ctx) {
      const { b, node } = ctx;
      const x = node.inputs[0];
      const gauss = b.op('Exp', [b.op('Neg', [b.op('Mul', [x, x])])]);
      ctx.grad(0, b.op('Mul', [ctx.dY()!, b.op('Mul', [gauss, b.f32(2 / Math.sqrt(Math.PI))])]));
    },
  },

  Softmax: {
    backward(ctx) {
      const { b, node } = ctx;
      const y = node.outputs[0];
      const dot = b.op('ReduceSum', [b.op('Mul', [ctx.dY()!, y]), b.i64(softmaxAxes(ctx))], { keepdims: 1 });
      ctx.grad(0, b.op('Mul', [y, b.op('Sub', [ctx.dY()!, dot])]));
    },
  },

  LogSoftmax: {
    backward(ctx) {
      const { b, node } = ctx;
      const total = b.op('ReduceSum', [ctx.dY()!, b.i64(softmaxAxes(ctx))], { keepdims: 1 });
      ctx.grad(0, b.op('Sub', [ctx.dY()!, b.op('Mul', [b.op('Exp', [node.outputs[0]]), total])]));
    },
  },
};

/** The normalised softmax axis (opset ≥ 13 semantics: one axis; training graphs are opset ≥ 13). */
function softmaxAxes(ctx: RuleContext): number[] {
  const rank = ctx.shape(ctx.node.inputs[0]).length;
  const raw = ctx.node.int('axis', -1);
  return [raw < 0 ? raw + rank : raw];
}
