/** Broadcasting arithmetic: each input's gradient is summed back over the axes it was broadcast along. */
import type { GradRule, RuleContext } from '../rule.js';

function each(ctx: RuleContext, gradFor: (i: number) => string): void {
  for (let i = 0; i < ctx.node.inputs.length; i++) {
    if (ctx.needs(i)) ctx.grad(i, ctx.unbroadcast(gradFor(i), ctx.node.inputs[i], ctx.node.outputs[0]));
  }
}

export const elementwiseRules: Record<string, GradRule> = {
  Add: {
    backward: (ctx) => each(ctx, () => ctx.dY()!),
  },

  Sum: {
    backward: (ctx) => each(ctx, () => ctx.dY()!),
  },

  Mean: {
    backward(ctx) {
      const scaled = ctx.b.op('Mul', [ctx.dY()!, ctx.b.f32(1 / ctx.node.inputs.length)]);
      each(ctx, () => scaled);
    },
  },

  Sub: {
    backward: (ctx) => each(ctx, (i) => (i === 0 ? ctx.dY()! : ctx.b.op('Neg', [ctx.dY()!]))),
  },

  Mul: {
    backward(ctx) {
      const [a, c] = ctx.node.inputs;
      each(ctx, (i) => ctx.b.op('Mul', [ctx.dY()!, i === 0 ? c : a]));
    },
  },

  Div: {
    backward(ctx) {
      const { b } = ctx;
      const c = ctx.node.inputs[1];
      const dY = ctx.dY()!;
      // d(a/c)/dc = −(a/c)/c = −y/c
      each(ctx, (i) => (i === 0 ? b.op('Div', [dY, c]) : b.op('Neg', [b.op('Div', [b.op('Mul', [dY, ctx.node.outputs[0]]), c])])));
    },
  },

  Pow: {
    // only the base is differentiated: exponents in CNNs are constants (x², sqrt written as x^0.5)
    differentiable: () => [0],
    backward(ctx) {
      const { b, node } = ctx;
      const [x, p] = node.inputs;
      const pMinus1 = b.op('Sub', [p, b.op('CastLike', [b.f32(1), p])]);
      const local = b.op('Mul', [b.op('CastLike', [p, x]), b.op('Pow', [x, pMinus1])]);
      ctx.grad(0, ctx.unbroadcast(b.op('Mul', [ctx.dY()!, local]), x, node.outputs[0]));
    },
  },

  Max: {
    backward: (ctx) => selectBackward(ctx, 'GreaterOrEqual'),
  },

  Min: {
    backward: (ctx) => selectBackward(ctx, 'LessOrEqual'),
  },

  Where: {
    differentiable: () => [1, 2],
    backward(ctx) {
      const { b, node } = ctx;
      const [cond, x, y] = node.inputs;
      const dY = ctx.dY()!;
      if (ctx.needs(1)) ctx.grad(1, ctx.unbroadcast(b.op('Where', [cond, dY, b.f32(0)]), x, node.outputs[0]));
      if (ctx.needs(2)) ctx.grad(2, ctx.unbroadcast(b.op('Where', [cond, b.f32(0), dY]), y, node.outputs[0]));
    },
  },

  Expand: {
    differentiable: () => [0],
    backward(ctx) {
      ctx.grad(0, ctx.unbroadcast(ctx.dY()!, ctx.node.inputs[0], ctx.node.outputs[0]));
    },
  },
};

/**
 * Max/Min of two inputs: the gradient goes to the selected input; ties go to the first input
 * (a subgradient; PyTorch splits ties evenly, which only matters on exact equality).
 */
function selectBackward(ctx: RuleContext, cmp: 'GreaterOrEqual' | 'LessOrEqual'): void {
  const { b, node } = ctx;
  if (node.inputs.length === 1) return ctx.grad(0, ctx.dY()!);
  if (node.inputs.length !== 2) {
    const y = node.outputs[0];
    // n-ary: every input equal to the result gets the gradient
    return each(ctx, (i) => b.op('Where', [b.op('Equal', [node.inputs[i], y]), ctx.dY()!, b.f32(0)]));
  }
  const [a, c] = node.inputs;
  const first = b.op(cmp, [a, c]);
  each(ctx, (i) => b.op('Where', [first, i === 0 ? ctx.dY()! : b.f32(0), i === 0 ? b.f32(0) : ctx.dY()!]));
}
