/** Pooling gradients: max pooling routes to each window's first maximum, average pooling spreads evenly. */
import { GraftError } from '../../errors.js';
import type { GraphBuilder } from '../../graph/builder.js';
import type { Node } from '../../graph/ir.js';
import { float32, int64 } from '../../onnx/tensor.js';
import type { GradRule, RuleContext } from '../rule.js';

interface PoolGeometry {
  H: number;
  W: number;
  C: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  pt: number;
  pl: number;
  pb: number;
  pr: number;
  OH: number;
  OW: number;
}

function poolGeometry(ctx: RuleContext): PoolGeometry {
  const { node } = ctx;
  const xs = ctx.shape(node.inputs[0]);
  if (xs.length !== 4) throw new GraftError('MODEL_UNSUPPORTED', `graft differentiates 2-D pooling only ("${node.name}").`, { subject: node.name });
  const [C, H, W] = ctx.staticAxes(node.inputs[0], [1, 2, 3], `the gradient of ${node.name}`);
  const [OH, OW] = ctx.staticAxes(node.outputs[0], [2, 3], `the gradient of ${node.name}`);
  const [kh, kw] = node.ints('kernel_shape', [1, 1]);
  const [sh, sw] = node.ints('strides', [1, 1]);
  const autoPad = node.string('auto_pad', 'NOTSET');
  let [pt, pl, pb, pr] = node.ints('pads', [0, 0, 0, 0]);
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const th = Math.max(0, (OH - 1) * sh + kh - H);
    const tw = Math.max(0, (OW - 1) * sw + kw - W);
    const upper = autoPad === 'SAME_UPPER';
    [pt, pb] = upper ? [Math.floor(th / 2), th - Math.floor(th / 2)] : [th - Math.floor(th / 2), Math.floor(th / 2)];
    [pl, pr] = upper ? [Math.floor(tw / 2), tw - Math.floor(tw / 2)] : [tw - Math.floor(tw / 2), Math.floor(tw / 2)];
  } else if (autoPad === 'VALID') {
    pt = pl = pb = pr = 0;
  }
  return { H, W, C, kh, kw, sh, sw, pt, pl, pb, pr, OH, OW };
}

/** How many input elements each output window averaged, as ONNX/ORT count them. */
function windowCounts(g: PoolGeometry, includePad: boolean): Float32Array {
  const counts = new Float32Array(g.OH * g.OW);
  const extent = (o: number, s: number, k: number, p0: number, size: number, p1: number) => {
    const start = o * s - p0;
    const end = Math.min(start + k, size + p1);
    return includePad ? end - start : Math.min(end, size) - Math.max(start, 0);
  };
  for (let i = 0; i < g.OH; i++) {
    for (let j = 0; j < g.OW; j++) {
      counts[i * g.OW + j] = extent(i, g.sh, g.kh, g.pt, g.H, g.pb) * extent(j, g.sw, g.kw, g.pl, g.W, g.pr);
    }
  }
  return counts;
}

/** ConvTranspose of dY with a ones kernel per channel: each input position sums the windows it was in. */
function spreadWindows(ctx: RuleContext, g: PoolGeometry, dY: string): string {
  const { b } = ctx;
  const ones = b.initializer('pool_ones', float32([g.C, 1, g.kh, g.kw], new Float32Array(g.C * g.kh * g.kw).fill(1)));
  const full = (o: number, s: number, k: number) => s * (o - 1) + k;
  // ceil_mode can make the last window run past the padded input: crop it away instead of padding
  let { pb, pr } = g;
  let oph = g.H - (full(g.OH, g.sh, g.kh) - g.pt - pb);
  let opw = g.W - (full(g.OW, g.sw, g.kw) - g.pl - pr);
  if (oph < 0) {
    pb -= oph;
    oph = 0;
  }
  if (opw < 0) {
    pr -= opw;
    opw = 0;
  }
  return b.op('ConvTranspose', [dY, ones], {
    kernel_shape: [g.kh, g.kw],
    strides: [g.sh, g.sw],
    pads: [g.pt, g.pl, pb, pr],
    group: g.C,
    output_padding: [oph, opw],
  });
}

function ensureIndicesOutput(node: Node, b: GraphBuilder): void {
  if (!node.outputs[1]) node.outputs[1] = b.fresh(`${node.outputs[0]}_argmax`);
}

export const poolRules: Record<string, GradRule> = {
  MaxPool: {
    prepareForward: ensureIndicesOutput,
    backward(ctx) {
      const { b, node } = ctx;
      if (node.int('storage_order', 0) !== 0) throw new GraftError('MODEL_UNSUPPORTED', `MaxPool "${node.name}" uses column-major indices.`, { subject: node.name });
      const x = node.inputs[0];
      const shapeX = ctx.shapeOf(x);
      const zeros = b.op('Reshape', [b.op('ConstantOfShape', [shapeX], { value: float32([1]) }), b.i64([-1])]);
      const flatIdx = b.op('Reshape', [node.outputs[1], b.i64([-1])]);
      const flatDy = b.op('Reshape', [ctx.dY()!, b.i64([-1])]);
      // Indices index the flattened input (batch and channel included), so one 1-D scatter-add routes
      // every window's gradient to its argmax; overlapping windows add up as they should
      const scattered = b.op('ScatterElements', [zeros, flatIdx, flatDy], { axis: 0, reduction: 'add' });
      ctx.grad(0, b.op('Reshape', [scattered, shapeX]));
    },
  },

  AveragePool: {
    backward(ctx) {
      const { b, node } = ctx;
      const g = poolGeometry(ctx);
      const includePad = node.int('count_include_pad', 0) === 1;
      const counts = windowCounts(g, includePad);
      const uniform = counts.every((c) => c === counts[0]);
      const scaled = uniform
        ? b.op('Mul', [ctx.dY()!, b.f32(1 / counts[0])])
        : b.op('Div', [ctx.dY()!, b.initializer('pool_counts', float32([1, 1, g.OH, g.OW], counts))]);
      ctx.grad(0, spreadWindows(ctx, g, scaled));
    },
  },

  GlobalAveragePool: {
    backward(ctx) {
      const { b, node } = ctx;
      const x = node.inputs[0];
      const spatial = ctx.shape(x).slice(2).map((_, i) => i + 2);
      const area = ctx.staticAxes(x, spatial, `the gradient of ${node.name}`).reduce((p, d) => p * d, 1);
      ctx.grad(0, b.op('Expand', [b.op('Mul', [ctx.dY()!, b.f32(1 / area)]), ctx.shapeOf(x)]));
    },
  },

  GlobalMaxPool: {
    backward(ctx) {
      const { b, node } = ctx;
      const x = node.inputs[0];
      const spatial = ctx.shape(x).slice(2).map((_, i) => i + 2);
      const area = ctx.staticAxes(x, spatial, `the gradient of ${node.name}`).reduce((p, d) => p * d, 1);
      // to the first maximum in row-major order, as PyTorch's adaptive_max_pool2d (which exports as
      // GlobalMaxPool) and MaxPool's indices do: at a tie (a flat region) one position gets it all
      const first = b.op('ArgMax', [b.op('Reshape', [x, b.i64([0, 0, -1])])], { axis: 2, keepdims: 1, select_last_index: 0 }); // [N, C, 1]
      const positions = b.shared(`positions:${area}`, () => int64([area], Array.from({ length: area }, (_, k) => k)));
      const routed = b.op('Where', [b.op('Equal', [positions, first]), b.op('Reshape', [ctx.dY()!, b.i64([0, 0, 1])]), b.f32(0)]);
      ctx.grad(0, b.op('Reshape', [routed, ctx.shapeOf(x)]));
    },
  },
};
