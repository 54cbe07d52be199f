/** Merge layers: elementwise (Add, Subtract, Multiply, Average, Maximum, Minimum) and Concatenate. */
import type { KDim, KTensor, LayerContext } from '../context.js';
import type { ConverterTable, LayerConverter } from '../converter.js';

/** Keras merges same-rank tensors, broadcasting 1-sized axes. */
function broadcastShape(ctx: LayerContext, inputs: readonly KTensor[]): KDim[] {
  if (inputs.length < 2) ctx.unsupported(`it needs at least 2 inputs, got ${inputs.length}`);
  const rank = inputs[0].shape.length;
  if (inputs.some((t) => t.shape.length !== rank)) ctx.unsupported(`its inputs have different ranks (${inputs.map((t) => t.shape.length).join(', ')})`);
  return inputs[0].shape.map((_, i) => {
    const dims = inputs.map((t) => t.shape[i]);
    const known = dims.filter((d): d is number => d !== null && d !== 1);
    if (new Set(known).size > 1) ctx.unsupported(`its inputs have incompatible shapes at axis ${i} (${dims.join(', ')})`);
    return known[0] ?? (dims.includes(null) ? null : 1);
  });
}

/** Folds the inputs pairwise with a binary op (one node for the common two-input case). */
function chain(opType: string, finish?: (ctx: LayerContext, y: string, n: number) => string): LayerConverter {
  return {
    convert(ctx, inputs) {
      const shape = broadcastShape(ctx, inputs);
      let y = inputs[0].name;
      for (const t of inputs.slice(1)) y = ctx.op(opType, [y, t.name]);
      return { name: finish ? finish(ctx, y, inputs.length) : y, shape };
    },
  };
}

function variadic(opType: string): LayerConverter {
  return {
    convert(ctx, inputs) {
      const shape = broadcastShape(ctx, inputs);
      return { name: ctx.op(opType, inputs.map((t) => t.name)), shape };
    },
  };
}

export const MERGE_LAYERS: ConverterTable = {
  Add: chain('Add'),
  Multiply: chain('Mul'),
  Average: chain('Add', (ctx, y, n) => ctx.op('Mul', [y, ctx.b.f32(1 / n)])),
  Maximum: variadic('Max'),
  Minimum: variadic('Min'),
  Subtract: {
    convert(ctx, inputs) {
      if (inputs.length !== 2) ctx.unsupported(`Subtract needs exactly 2 inputs, got ${inputs.length}`);
      const shape = broadcastShape(ctx, inputs);
      return { name: ctx.op('Sub', [inputs[0].name, inputs[1].name]), shape };
    },
  },
  Concatenate: {
    convert(ctx, inputs) {
      if (inputs.length < 1) ctx.unsupported('it has no inputs');
      const rank = inputs[0].shape.length;
      if (inputs.some((t) => t.shape.length !== rank)) ctx.unsupported('its inputs have different ranks');
      const kerasAxis = ctx.cfg.axis('axis', -1);
      const k = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
      const shape = inputs[0].shape.map((d, i) => {
        if (i !== k) return d;
        const dims = inputs.map((t) => t.shape[i]);
        return dims.includes(null) ? null : (dims as number[]).reduce((a, b) => a + b, 0);
      });
      return { name: ctx.op('Concat', inputs.map((t) => t.name), { axis: ctx.axis(rank, kerasAxis) }), shape };
    },
  },
};
