/** Data-movement ops: their gradients move the gradient back (reshape, inverse transpose, slice ⇄ pad). */
import { GraftError } from '../../errors.js';
import type { GradRule, RuleContext } from '../rule.js';

const dataOnly = () => [0];

const reshapeBack: GradRule = {
  differentiable: dataOnly,
  backward(ctx) {
    ctx.grad(0, ctx.b.op('Reshape', [ctx.dY()!, ctx.shapeOf(ctx.node.inputs[0])]));
  },
};

const passThrough: GradRule = {
  differentiable: dataOnly,
  backward(ctx) {
    ctx.grad(0, ctx.dY()!);
  },
};

function constInts(ctx: RuleContext, input: number, what: string): number[] | undefined {
  const v = ctx.node.input(input);
  if (!v) return undefined;
  const vals = ctx.constantValue(v);
  if (!vals) {
    throw new GraftError('MODEL_UNSUPPORTED', `the ${what} of ${ctx.node.opType} "${ctx.node.name}" are computed at run time; graft needs them constant to differentiate it.`, {
      subject: ctx.node.name,
    });
  }
  return vals;
}

export const shapeRules: Record<string, GradRule> = {
  Identity: passThrough,
  // inference-mode Dropout; the train-step builder replaces training-mode dropout with a fed mask
  Dropout: passThrough,
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,

  Cast: {
    backward(ctx) {
      // back to the input's float type (a float64 → float32 cast in a model, say)
      ctx.grad(0, ctx.b.op('CastLike', [ctx.dY()!, ctx.node.inputs[0]]));
    },
  },

  Transpose: {
    backward(ctx) {
      const rank = ctx.shape(ctx.node.inputs[0]).length;
      const perm = ctx.node.ints('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
      const inverse = new Array<number>(rank);
      perm.forEach((p, i) => (inverse[p] = i));
      ctx.grad(0, ctx.b.op('Transpose', [ctx.dY()!], { perm: inverse }));
    },
  },

  Concat: {
    backward(ctx) {
      const { b, node } = ctx;
      const rank = ctx.shape(node.outputs[0]).length;
      const raw = node.int('axis', 0);
      const axis = raw < 0 ? raw + rank : raw;
      if (ctx.opset >= 13 && node.inputs.some((v) => typeof ctx.shape(v)[axis] !== 'number')) {
        // sizes known only at run time (a batch axis): one Split by the inputs' run-time sizes
        const sizes = b.op('Concat', node.inputs.map((v) => b.op('Gather', [ctx.shapeOf(v), b.i64([axis])])), { axis: 0 });
        const parts = b.node('Split', [ctx.dY()!, sizes], { axis }, { outputs: node.inputs.length });
        node.inputs.forEach((_, i) => ctx.needs(i) && ctx.grad(i, parts[i]));
        return;
      }
      let offset = 0;
      node.inputs.forEach((v, i) => {
        const [size] = ctx.staticAxes(v, [axis], `the gradient of ${node.name}`);
        if (ctx.needs(i)) ctx.grad(i, b.op('Slice', [ctx.dY()!, b.i64([offset]), b.i64([offset + size]), b.i64([axis])]));
        offset += size;
      });
    },
  },

  Split: {
    differentiable: dataOnly,
    backward(ctx) {
      const { b, node } = ctx;
      const rank = ctx.shape(node.inputs[0]).length;
      const raw = node.int('axis', 0);
      const axis = raw < 0 ? raw + rank : raw;
      const parts = node.outputs.map((_, i) => ctx.dYOrZeros(i));
      ctx.grad(0, b.op('Concat', parts, { axis }));
    },
  },

  Slice: {
    differentiable: dataOnly,
    backward(ctx) {
      const { b, node } = ctx;
      const x = node.inputs[0];
      const rank = ctx.shape(x).length;
      const starts = constInts(ctx, 1, 'starts')!;
      const ends = constInts(ctx, 2, 'ends')!;
      const axes = constInts(ctx, 3, 'axes') ?? starts.map((_, i) => i);
      const steps = constInts(ctx, 4, 'steps') ?? starts.map(() => 1);
      const pads = new Array<number>(2 * rank).fill(0);
      axes.forEach((rawAxis, k) => {
        if (steps[k] !== 1) {
          throw new GraftError('MODEL_UNSUPPORTED', `Slice "${node.name}" uses step ${steps[k]}; graft differentiates unit-step slices only.`, { subject: node.name });
        }
        const a = rawAxis < 0 ? rawAxis + rank : rawAxis;
        const [dim] = ctx.staticAxes(x, [a], `the gradient of ${node.name}`);
        const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
        const s = clamp(starts[k]);
        const e = Math.max(clamp(ends[k]), s);
        pads[a] = s;
        pads[rank + a] = dim - e;
      });
      ctx.grad(0, pads.some((p) => p) ? b.op('Pad', [ctx.dY()!, b.i64(pads)]) : ctx.dY()!);
    },
  },

  Pad: {
    differentiable: dataOnly,
    backward(ctx) {
      const { b, node } = ctx;
      const x = node.inputs[0];
      const rank = ctx.shape(x).length;
      const mode = node.string('mode', 'constant');
      if (mode !== 'constant') {
        throw new GraftError('MODEL_UNSUPPORTED', `Pad "${node.name}" uses ${mode} mode; graft differentiates constant padding only.`, { subject: node.name });
      }
      const raw = constInts(ctx, 1, 'pads')!;
      const axesIn = ctx.opset >= 18 ? constInts(ctx, 3, 'axes') : undefined;
      const axes = (axesIn ?? Array.from({ length: rank }, (_, i) => i)).map((a) => (a < 0 ? a + rank : a));
      const n = axes.length;
      const starts: number[] = [];
      const ends: number[] = [];
      const sliceAxes: number[] = [];
      const unpad = new Array<number>(2 * rank).fill(0);
      axes.forEach((a, k) => {
        const before = raw[k];
        const after = raw[n + k];
        if (before === 0 && after === 0) return;
        // positive pads are cut off again; negative pads (crops) are padded back with zeros
        const [dim] = ctx.staticAxes(x, [a], `the gradient of ${node.name}`);
        sliceAxes.push(a);
        starts.push(Math.max(before, 0));
        ends.push(Math.max(before, 0) + dim + Math.min(before, 0) + Math.min(after, 0));
        unpad[a] = Math.max(-before, 0);
        unpad[rank + a] = Math.max(-after, 0);
      });
      let g = ctx.dY()!;
      if (sliceAxes.length) g = b.op('Slice', [g, b.i64(starts), b.i64(ends), b.i64(sliceAxes)]);
      if (unpad.some((p) => p)) g = b.op('Pad', [g, b.i64(unpad)]);
      ctx.grad(0, g);
    },
  },
};
