/** Reductions: the gradient is broadcast back over the reduced axes (scaled by 1/count for means). */
import { GraftError } from '../../errors.js';
import type { GradRule, RuleContext } from '../rule.js';

/** Normalised reduced axes; all axes when none are given (and noop_with_empty_axes is off). */
function reducedAxes(ctx: RuleContext): number[] | 'none' {
  const { node } = ctx;
  const rank = ctx.shape(node.inputs[0]).length;
  // ReduceSum took axes as an input from opset 13, the other reductions from opset 18
  const axesAsInput = node.opType === 'ReduceSum' ? ctx.opset >= 13 : ctx.opset >= 18;
  let axes: readonly number[] | undefined;
  if (axesAsInput && node.input(1)) {
    axes = ctx.constantValue(node.inputs[1]);
    if (!axes) throw new GraftError('MODEL_UNSUPPORTED', `the axes of ${node.name} are computed at run time; graft needs them constant to differentiate it.`, { subject: node.name });
  } else if (!axesAsInput) {
    axes = node.ints('axes');
  }
  if (!axes || axes.length === 0) {
    if (node.int('noop_with_empty_axes', 0)) return 'none';
    return Array.from({ length: rank }, (_, i) => i);
  }
  return [...axes].map((a) => (a < 0 ? a + rank : a)).sort((p, q) => p - q);
}

/** Number of reduced elements: a constant when those dims are static, else computed from Shape (batch). */
function reducedCount(ctx: RuleContext, axes: number[]): string {
  const { b, node } = ctx;
  const dims = axes.map((a) => ctx.shape(node.inputs[0])[a]);
  if (dims.every((d) => typeof d === 'number')) return b.f32((dims as number[]).reduce((p, d) => p * d, 1));
  const picked = b.op('Gather', [ctx.shapeOf(node.inputs[0]), b.i64(axes)], { axis: 0 });
  return b.op('Cast', [b.op('ReduceProd', [picked], { keepdims: 0 })], { to: 1 });
}

/** dY with the reduced axes restored (size 1) when keepdims was 0. */
function restoreAxes(ctx: RuleContext, axes: number[]): string {
  const dY = ctx.dY()!;
  if (ctx.node.int('keepdims', 1)) return dY;
  return ctx.b.op('Unsqueeze', [dY, ctx.b.i64(axes)]);
}

export const reduceRules: Record<string, GradRule> = {
  ReduceSum: {
    differentiable: () => [0],
    backward(ctx) {
      const axes = reducedAxes(ctx);
      if (axes === 'none') return ctx.grad(0, ctx.dY()!);
      ctx.grad(0, ctx.b.op('Expand', [restoreAxes(ctx, axes), ctx.shapeOf(ctx.node.inputs[0])]));
    },
  },

  ReduceMean: {
    differentiable: () => [0],
    backward(ctx) {
      const { b, node } = ctx;
      const axes = reducedAxes(ctx);
      if (axes === 'none') return ctx.grad(0, ctx.dY()!);
      const scaled = b.op('Div', [restoreAxes(ctx, axes), reducedCount(ctx, axes)]);
      ctx.grad(0, b.op('Expand', [scaled, ctx.shapeOf(node.inputs[0])]));
    },
  },

  ReduceMax: { differentiable: () => [0], backward: (ctx) => extremum(ctx) },
  ReduceMin: { differentiable: () => [0], backward: (ctx) => extremum(ctx) },
};

/**
 * The elements equal to the extremum share its gradient evenly, as torch.amax / torch.max() and
 * tf.reduce_max do (a ReduceMax comes from either).
 */
function extremum(ctx: RuleContext): void {
  const { b, node } = ctx;
  const axes = reducedAxes(ctx);
  if (axes === 'none') return ctx.grad(0, ctx.dY()!);
  const keep = node.int('keepdims', 1);
  const y = keep ? node.outputs[0] : b.op('Unsqueeze', [node.outputs[0], b.i64(axes)]);
  const hit = b.op('Equal', [node.inputs[0], y]);
  const ties = b.reduce('ReduceSum', b.op('Cast', [hit], { to: 1 }), axes, true);
  ctx.grad(0, b.op('Where', [hit, b.op('Div', [restoreAxes(ctx, axes), ties]), b.f32(0)]));
}
