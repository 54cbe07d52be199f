/** Gemm and MatMul: the gradients are products with the other operand, transposed as needed. */
import type { Dim } from '../../graph/ir.js';
import type { GradRule, RuleContext } from '../rule.js';

const f = (v: number) => ({ kind: 'float', value: v }) as const;

export const matmulRules: Record<string, GradRule> = {
  Gemm: {
    backward(ctx) {
      const { b, node } = ctx;
      const [a, w, c] = node.inputs;
      const alpha = node.float('alpha', 1);
      const beta = node.float('beta', 1);
      const tA = node.int('transA', 0);
      const tB = node.int('transB', 0);
      const dY = ctx.dY()!;
      // with A' = op(A), B' = op(B):  dA' = α·dY·B'ᵀ,  dB' = α·A'ᵀ·dY, transposed back when op = ᵀ
      if (ctx.needs(0)) {
        ctx.grad(0, tA ? b.op('Gemm', [w, dY], { alpha: f(alpha), transA: tB, transB: 1 }) : b.op('Gemm', [dY, w], { alpha: f(alpha), transB: tB ? 0 : 1 }));
      }
      if (ctx.needs(1)) {
        ctx.grad(1, tB ? b.op('Gemm', [dY, a], { alpha: f(alpha), transA: 1, transB: tA }) : b.op('Gemm', [a, dY], { alpha: f(alpha), transA: tA ? 0 : 1 }));
      }
      if (c && ctx.needs(2)) {
        const scaled = beta === 1 ? dY : b.op('Mul', [dY, b.f32(beta)]);
        ctx.grad(2, ctx.unbroadcast(scaled, c, node.outputs[0]));
      }
    },
  },

  MatMul: {
    backward(ctx) {
      const { b, node } = ctx;
      const [a, w] = node.inputs;
      const sa = ctx.shape(a);
      const sb = ctx.shape(w);
      const sy = ctx.shape(node.outputs[0]);
      // promote 1-D operands to matrices as numpy does, so one formula covers every case
      let dY = ctx.dY()!;
      let ya = [...sy];
      if (sb.length === 1) {
        dY = b.op('Unsqueeze', [dY, b.i64([-1])]);
        ya = [...ya, 1];
      }
      if (sa.length === 1) {
        dY = b.op('Unsqueeze', [dY, b.i64([-2])]);
        ya = [...ya.slice(0, -1), 1, ya[ya.length - 1]];
      }
      const a2 = sa.length === 1 ? b.op('Unsqueeze', [a, b.i64([0])]) : a;
      const w2 = sb.length === 1 ? b.op('Unsqueeze', [w, b.i64([-1])]) : w;
      const sa2: Dim[] = sa.length === 1 ? [1, sa[0]] : [...sa];
      const sb2: Dim[] = sb.length === 1 ? [sb[0], 1] : [...sb];
      if (ctx.needs(0)) {
        const g = b.op('MatMul', [dY, transposeLast(ctx, w2, sb2.length)]);
        ctx.grad(0, reduceBatch(ctx, g, ya.length, sa2, a));
      }
      if (ctx.needs(1)) {
        const g = b.op('MatMul', [transposeLast(ctx, a2, sa2.length), dY]);
        ctx.grad(1, reduceBatch(ctx, g, ya.length, sb2, w));
      }
    },
  },
};

function transposeLast(ctx: RuleContext, v: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return ctx.b.op('Transpose', [v], { perm });
}

/** Sums a [...batch, r, c] gradient over batch axes the operand was broadcast along, then restores its shape. */
function reduceBatch(ctx: RuleContext, g: string, gRank: number, operandShape: readonly Dim[], operand: string): string {
  const { b } = ctx;
  const lead = gRank - operandShape.length;
  const axes: number[] = [];
  for (let i = 0; i < gRank - 2; i++) if (i < lead || operandShape[i - lead] === 1) axes.push(i);
  const summed = axes.length ? b.op('ReduceSum', [g, b.i64(axes)], { keepdims: 1 }) : g;
  return axes.length || lead || ctx.shape(operand).length !== operandShape.length ? b.op('Reshape', [summed, ctx.shapeOf(operand)]) : summed;
}
