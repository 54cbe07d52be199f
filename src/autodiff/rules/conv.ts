/**
 * 2-D convolution gradients written with standard ONNX ops. Several formulations exist for each
 * gradient and their speed in onnxruntime depends on the layer's shape, so the rule chooses per node
 * ('auto' uses the choices measured in bench/; options can force one for tuning and tests):
 *
 *  dX  convTranspose  ConvTranspose(dY, W) with the forward strides/pads/dilations — any conv.
 *      flippedConv    Conv(dY, flip(W)ᵀ) with complementary pads — stride 1 only; when W is a frozen
 *                     constant ORT folds the flip and uses its pre-packed kernels.
 *  dW  batchAsChannels  Conv(Xᵀ, dYᵀ): the batch becomes the reduction channel axis, the forward
 *                     stride becomes a dilation — one big-kernel conv; the only dense form for
 *                     grouped convs, and the fastest for large kernels (7×7 stems).
 *      tapGemm        one Gemm per kernel tap over strided slices of X — fastest for 3×3 and 1×1.
 *      im2col         the taps' slices concatenated, then one Gemm — more memory, sometimes faster.
 *      tapReduce      depthwise only: per tap, Σ dY·slice(X) — memory-bound, no im2col buffer.
 */
import { GraftError } from '../../errors.js';
import type { ConvDwMethod, ConvDxMethod, GradRule, RuleContext } from '../rule.js';

export interface ConvGeometry {
  C: number;
  H: number;
  W: number;
  O: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  /** pads: top, left, bottom, right */
  pt: number;
  pl: number;
  pb: number;
  pr: number;
  group: number;
  OH: number;
  OW: number;
}

function samePads(size: number, k: number, s: number, d: number, upper: boolean): [number, number] {
  const out = Math.ceil(size / s);
  const total = Math.max(0, (out - 1) * s + (k - 1) * d + 1 - size);
  const small = Math.floor(total / 2);
  return upper ? [small, total - small] : [total - small, small];
}

export function convGeometry(ctx: RuleContext): ConvGeometry {
  const { node } = ctx;
  const xs = ctx.shape(node.inputs[0]);
  if (xs.length !== 4) {
    throw new GraftError('MODEL_UNSUPPORTED', `graft differentiates 2-D convolutions only; "${node.name}" is ${xs.length - 2}-D.`, { subject: node.name });
  }
  const [C, H, W] = ctx.staticAxes(node.inputs[0], [1, 2, 3], `the gradient of ${node.name}`);
  const [O, , kh, kw] = ctx.staticDims(node.inputs[1], `the gradient of ${node.name}`);
  const [sh, sw] = node.ints('strides', [1, 1]);
  const [dh, dw] = node.ints('dilations', [1, 1]);
  const group = node.int('group', 1);
  const autoPad = node.string('auto_pad', 'NOTSET');
  let pt: number, pl: number, pb: number, pr: number;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    [pt, pb] = samePads(H, kh, sh, dh, autoPad === 'SAME_UPPER');
    [pl, pr] = samePads(W, kw, sw, dw, autoPad === 'SAME_UPPER');
  } else if (autoPad === 'VALID') {
    pt = pl = pb = pr = 0;
  } else {
    [pt, pl, pb, pr] = node.ints('pads', [0, 0, 0, 0]);
  }
  const OH = Math.floor((H + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  return { C, H, W, O, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, group, OH, OW };
}

const isDepthwise = (g: ConvGeometry) => g.group > 1 && g.group === g.C;

export function chooseDx(g: ConvGeometry, requested: ConvDxMethod): Exclude<ConvDxMethod, 'auto'> {
  const flippable = g.sh === 1 && g.sw === 1 && g.dh * (g.kh - 1) >= Math.max(g.pt, g.pb) && g.dw * (g.kw - 1) >= Math.max(g.pl, g.pr);
  if (requested === 'flippedConv' && flippable) return 'flippedConv';
  if (requested === 'convTranspose') return 'convTranspose';
  return flippable ? 'flippedConv' : 'convTranspose';
}

export function chooseDw(g: ConvGeometry, requested: ConvDwMethod): Exclude<ConvDwMethod, 'auto'> {
  const dense = g.group === 1;
  const depthwise = isDepthwise(g) && g.O === g.C;
  if (requested === 'tapGemm' || requested === 'im2col') return dense ? requested : 'batchAsChannels';
  if (requested === 'tapReduce') return depthwise ? 'tapReduce' : dense ? 'tapGemm' : 'batchAsChannels';
  if (requested === 'batchAsChannels') return 'batchAsChannels';
  // measured (prototype + bench/): per-tap Gemms win for 1×1 and 3×3, the batch-as-channels conv for
  // large kernels and depthwise layers
  if (dense && g.kh * g.kw <= 9) return 'tapGemm';
  return 'batchAsChannels';
}

function dxConvTranspose(ctx: RuleContext, g: ConvGeometry): string {
  const { b, node } = ctx;
  const oph = g.H - (g.sh * (g.OH - 1) + g.dh * (g.kh - 1) + 1 - g.pt - g.pb);
  const opw = g.W - (g.sw * (g.OW - 1) + g.dw * (g.kw - 1) + 1 - g.pl - g.pr);
  return b.op('ConvTranspose', [ctx.dY()!, node.inputs[1]], {
    kernel_shape: [g.kh, g.kw],
    strides: [g.sh, g.sw],
    dilations: [g.dh, g.dw],
    pads: [g.pt, g.pl, g.pb, g.pr],
    group: g.group,
    output_padding: [oph, opw],
  });
}

/** W [O, C/g, kh, kw] → per group swap in/out channels and flip spatially → [C, O/g, kh, kw]. */
function flippedWeight(ctx: RuleContext, g: ConvGeometry): string {
  const { b, node } = ctx;
  const w = node.inputs[1];
  let t: string;
  if (g.group === 1) t = b.op('Transpose', [w], { perm: [1, 0, 2, 3] });
  else if (g.O === g.group && g.C === g.group) t = w;
  else {
    const cg = g.C / g.group;
    const og = g.O / g.group;
    const r = b.op('Reshape', [w, b.i64([g.group, og, cg, g.kh, g.kw])]);
    t = b.op('Reshape', [b.op('Transpose', [r], { perm: [0, 2, 1, 3, 4] }), b.i64([g.C, og, g.kh, g.kw])]);
  }
  if (g.kh === 1 && g.kw === 1) return t;
  const big = Number.MAX_SAFE_INTEGER;
  return b.op('Slice', [t, b.i64([-1, -1]), b.i64([-big, -big]), b.i64([2, 3]), b.i64([-1, -1])]);
}

function dxFlippedConv(ctx: RuleContext, g: ConvGeometry): string {
  const ek = g.dh * (g.kh - 1);
  const ew = g.dw * (g.kw - 1);
  return ctx.b.op('Conv', [ctx.dY()!, flippedWeight(ctx, g)], {
    kernel_shape: [g.kh, g.kw],
    dilations: [g.dh, g.dw],
    pads: [ek - g.pt, ew - g.pl, ek - g.pb, ew - g.pr],
    group: g.group,
  });
}

/** dW by a convolution over the batch: Conv(Xᵀ [C,N,H,W], dYᵀ [O,N,OH,OW]) → [C, O, kh', kw']. */
function dwBatchAsChannels(ctx: RuleContext, g: ConvGeometry): string {
  const { b, node } = ctx;
  const x = node.inputs[0];
  const dY = ctx.dY()!;
  const spanH = g.H + g.pt + g.pb - (g.sh * (g.OH - 1) + 1);
  const spanW = g.W + g.pl + g.pr - (g.sw * (g.OW - 1) + 1);
  const khOut = Math.floor(spanH / g.dh) + 1;
  const kwOut = Math.floor(spanW / g.dw) + 1;
  const attrs = { kernel_shape: [g.OH, g.OW], dilations: [g.sh, g.sw], strides: [g.dh, g.dw], pads: [g.pt, g.pl, g.pb, g.pr] };
  const dYt = b.op('Transpose', [dY], { perm: [1, 0, 2, 3] });
  const xt = b.op('Transpose', [x], { perm: [1, 0, 2, 3] });
  let r: string;
  if (g.group === 1) {
    r = b.op('Transpose', [b.op('Conv', [xt, dYt], attrs)], { perm: [1, 0, 2, 3] }); // [O, C, kh', kw']
  } else if (g.group === g.C) {
    // depthwise (any multiplier): each of the C groups sees its channel's N images as N input channels
    const xr = b.op('Reshape', [xt, b.i64([1, -1, g.H, g.W])]);
    r = b.op('Reshape', [b.op('Conv', [xr, dYt], { ...attrs, group: g.C }), b.i64([g.O, 1, khOut, kwOut])]);
  } else {
    // general grouped conv: one dense problem per group
    const cg = g.C / g.group;
    const og = g.O / g.group;
    const xs = b.node('Split', [xt, b.i64(Array(g.group).fill(cg))], { axis: 0 }, { outputs: g.group });
    const ds = b.node('Split', [dYt, b.i64(Array(g.group).fill(og))], { axis: 0 }, { outputs: g.group });
    const parts = xs.map((xg, k) => b.op('Transpose', [b.op('Conv', [xg, ds[k]], attrs)], { perm: [1, 0, 2, 3] }));
    r = b.op('Concat', parts, { axis: 0 });
  }
  if (khOut === g.kh && kwOut === g.kw) return r;
  return b.op('Slice', [r, b.i64([0, 0]), b.i64([g.kh, g.kw]), b.i64([2, 3])]);
}

/** Strided slices of the padded input, one per kernel tap: tap (i, j) lines up with dY. */
function tapSlices(ctx: RuleContext, g: ConvGeometry, padded: string, spatialAxes: [number, number]): string[] {
  const { b } = ctx;
  const out: string[] = [];
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) {
      const h0 = i * g.dh;
      const w0 = j * g.dw;
      const whole = g.sh === 1 && g.sw === 1 && h0 === 0 && w0 === 0 && g.OH === g.H + g.pt + g.pb && g.OW === g.W + g.pl + g.pr;
      out.push(
        whole
          ? padded
          : b.op('Slice', [padded, b.i64([h0, w0]), b.i64([h0 + g.sh * (g.OH - 1) + 1, w0 + g.sw * (g.OW - 1) + 1]), b.i64(spatialAxes), b.i64([g.sh, g.sw])]),
      );
    }
  }
  return out;
}

function padSpatial(ctx: RuleContext, g: ConvGeometry, v: string): string {
  if (!g.pt && !g.pl && !g.pb && !g.pr) return v;
  return ctx.b.op('Pad', [v, ctx.b.i64([0, 0, g.pt, g.pl, 0, 0, g.pb, g.pr])]);
}

function dwTapGemm(ctx: RuleContext, g: ConvGeometry, im2col: boolean): string {
  const { b, node } = ctx;
  const xt = padSpatial(ctx, g, b.op('Transpose', [node.inputs[0]], { perm: [1, 0, 2, 3] })); // [C, N, H', W']
  const dYm = b.op('Reshape', [b.op('Transpose', [ctx.dY()!], { perm: [1, 0, 2, 3] }), b.i64([g.O, -1])]); // [O, N·P]
  const taps = tapSlices(ctx, g, xt, [2, 3]);
  if (im2col && taps.length > 1) {
    const cols = b.op('Concat', taps.map((s) => b.op('Unsqueeze', [s, b.i64([1])])), { axis: 1 }); // [C, kk, N, OH, OW]
    const r = b.op('Gemm', [dYm, b.op('Reshape', [cols, b.i64([g.C * g.kh * g.kw, -1])])], { transB: 1 });
    return b.op('Reshape', [r, b.i64([g.O, g.C, g.kh, g.kw])]);
  }
  const parts = taps.map((s) => b.op('Gemm', [dYm, b.op('Reshape', [s, b.i64([g.C, -1])])], { transB: 1 })); // [O, C]
  if (parts.length === 1) return b.op('Reshape', [parts[0], b.i64([g.O, g.C, 1, 1])]);
  const stacked = b.op('Concat', parts.map((p) => b.op('Unsqueeze', [p, b.i64([2])])), { axis: 2 }); // [O, C, kk]
  return b.op('Reshape', [stacked, b.i64([g.O, g.C, g.kh, g.kw])]);
}

function dwTapReduce(ctx: RuleContext, g: ConvGeometry): string {
  const { b, node } = ctx;
  const xp = padSpatial(ctx, g, node.inputs[0]); // [N, C, H', W']
  const dY = ctx.dY()!;
  const sums = tapSlices(ctx, g, xp, [2, 3]).map((s) => b.op('ReduceSum', [b.op('Mul', [dY, s]), b.i64([0, 2, 3])], { keepdims: 0 }));
  const stacked = sums.length === 1 ? sums[0] : b.op('Concat', sums.map((s) => b.op('Unsqueeze', [s, b.i64([1])])), { axis: 1 });
  return b.op('Reshape', [stacked, b.i64([g.C, 1, g.kh, g.kw])]);
}

export const convRules: Record<string, GradRule> = {
  Conv: {
    backward(ctx) {
      const { node, b } = ctx;
      const g = convGeometry(ctx);
      const perNode = ctx.options.perNode?.[node.name];
      if (ctx.needs(0)) {
        const m = chooseDx(g, perNode?.convDx ?? ctx.options.convDx);
        ctx.grad(0, m === 'flippedConv' ? dxFlippedConv(ctx, g) : dxConvTranspose(ctx, g));
      }
      if (ctx.needs(1)) {
        const m = chooseDw(g, perNode?.convDw ?? ctx.options.convDw);
        const dW = m === 'tapGemm' || m === 'im2col' ? dwTapGemm(ctx, g, m === 'im2col') : m === 'tapReduce' ? dwTapReduce(ctx, g) : dwBatchAsChannels(ctx, g);
        ctx.grad(1, dW);
      }
      if (node.input(2) && ctx.needs(2)) ctx.grad(2, b.op('ReduceSum', [ctx.dY()!, b.i64([0, 2, 3])], { keepdims: 0 }));
    },
  },
};
