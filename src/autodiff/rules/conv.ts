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
 *      tapGemm        one Gemm per kernel tap over strided slices of X — fastest for strided 3×3 and 1×1.
 *      im2col         the taps' slices concatenated, then one Gemm — more memory, sometimes faster.
 *      tapGather      stride 1: the same Gemms, with X's rows for each kernel row gathered (and X
 *                     transposed) by one Gather, and each kernel column a shift of dY instead of X.
 *      tapReduce      depthwise only: per tap, Σ dY·slice(X) — memory-bound, no im2col buffer.
 *      imageIm2col    one product per image of X's im2col rows (one row Gather) and dY as it is — RGB stems.
 */
import { GraftError } from '../../errors.js';
import { float32, int64, numel, tensor } from '../../onnx/tensor.js';
import type { GraphBuilder } from '../../graph/builder.js';
import { antiIdentity } from '../../graph/nchwc.js';
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

/** Whether dwTapGather handles this conv: stride 1, or stride 2 in both axes over an even-sized input (its parity planes). */
const rowGathers = (g: ConvGeometry): boolean => g.sh === g.sw && (g.sh === 1 || (g.sh === 2 && g.H % 2 === 0 && g.W % 2 === 0));

/** Output positions per image up to which dense 3×3 weight gradients use im2col rather than per-tap Gemms. */
const IM2COL_MAX_POSITIONS = 49;

/**
 * Floats per image up to which a row-gather weight gradient stacks X's rows for all kernel rows (one
 * product per kernel column): ResNet's first stage, 64 channels × 3 kernel rows × 56², is the largest
 * measured (dwTapGather).
 */
const MAX_ROW_STACK_PER_IMAGE = 64 * 3 * 56 * 56;

/** Input channels below which a conv counts as a stem (RGB, grey): its dY holds many times X's floats. */
const SMALL_CHANNELS = 16;

/** Chunks of images dwImageIm2col splits the batch into at most (when its cols would outgrow dY). */
const MAX_IMAGE_CHUNKS = 8;

/** Whether dwImageIm2col handles this conv: equal strides in both axes, no dilation. */
const imageIm2colFits = (g: ConvGeometry): boolean => g.sh === g.sw && g.dh === 1 && g.dw === 1;

export function chooseDw(g: ConvGeometry, requested: ConvDwMethod): Exclude<ConvDwMethod, 'auto'> {
  const dense = g.group === 1;
  const depthwise = isDepthwise(g) && g.O === g.C;
  if (requested === 'tapGather') return dense ? (rowGathers(g) ? 'tapGather' : 'tapGemm') : 'batchAsChannels';
  if (requested === 'tapGemm' || requested === 'im2col' || requested === 'tapMatMul') return dense ? requested : 'batchAsChannels';
  if (requested === 'imageIm2col') return dense && imageIm2colFits(g) ? 'imageIm2col' : dense ? 'tapGemm' : 'batchAsChannels';
  if (requested === 'tapReduce') return depthwise ? 'tapReduce' : dense ? 'tapGemm' : 'batchAsChannels';
  if (requested === 'batchAsChannels') return 'batchAsChannels';
  // measured (prototype + bench/finetune/step-time.ts): per-tap Gemms win for dense 1×1 and 3×3 (ResNet-18
  // full step 2.20 s vs 2.85 s with batch-as-channels), per-tap reductions for depthwise layers since the
  // taps are unit-step slices (MobileNetV2 full step 1.18 s vs 1.34 s), batch-as-channels elsewhere
  // — except on small maps (ResNet's 7×7 stage), where one Gemm over the concatenated taps beats nine:
  // last-stage step on 2 threads 252 → 239 ms, 1 thread 418 → 414 ms (no change on the 14×14 and larger)
  // RGB and grey stems: X's im2col rows against dY per image (dwImageIm2col), while cols holds at most four
  // times dY's floats (ResNet's 7 × 7 stem: 2.3 times, taken in chunks of images)
  if (dense && g.C < SMALL_CHANNELS && imageIm2colFits(g) && g.sh <= 2 && g.C * g.kh * g.kw <= 4 * g.O) return 'imageIm2col';
  if (dense && g.kh * g.kw > 1 && g.kh * g.kw <= 9 && g.OH * g.OW <= IM2COL_MAX_POSITIONS) return 'im2col';
  // Stride 1 above that: the taps' rows gathered rather than sliced (see dwTapGather): ResNet-18 full step
  // on 2 threads 1219 → 1170 ms (medians of three alternating runs), 1 thread unchanged (2003 vs 2022 ms);
  // stride 2 likewise, from the parity planes: 1 thread 2005 → 1997 ms, 2 threads 1099 → 1097 ms (medians of
  // 10 and 16 alternating pairs) — small on a quiet machine, but the strided slices it replaces ran on one
  // thread and slowed several-fold when the machine was busy, while gathers use every thread. Not on RGB
  // stems (C < 16) that the above leaves: there dY is ten times X's size, and its shifted copy outweighs
  // the slices of X saved (MobileNetV2 full step, 2 threads: 844 ms with the stem's slices, 884 ms with its gathers)
  if (dense && g.kh * g.kw <= 9 && rowGathers(g) && (g.sh === 1 ? g.kh * g.kw > 1 : g.C >= SMALL_CHANNELS)) return 'tapGather';
  if (dense && g.kh * g.kw <= 9) return 'tapGemm';
  if (depthwise) return 'tapReduce';
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
  // the spatial flip as a product with the k×k anti-identity: onnxruntime runs a negative-step Slice
  // element by element (~6 ns/float), which made the flip of a 512×512×3×3 weight cost a third of
  // the conv it feeds; the MatMul streams at memory speed and is exact (x·1 + Σ 0·y)
  const k = g.kh * g.kw;
  const flipped = b.op('MatMul', [b.op('Reshape', [t, b.i64([-1, k])]), antiIdentityConstant(b, k)]);
  return b.op('Reshape', [flipped, b.i64([g.C, g.O / g.group, g.kh, g.kw])]);
}

/** The k×k anti-identity as an initializer, one per size per graph (graph/nchwc recognises the flip by it). */
function antiIdentityConstant(b: GraphBuilder, k: number): string {
  return b.shared(`anti-identity:${k}`, () => float32([k, k], antiIdentity(k)));
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
  const crop = (r: string) => (khOut === g.kh && kwOut === g.kw ? r : b.op('Slice', [r, b.i64([0, 0]), b.i64([g.kh, g.kw]), b.i64([2, 3])]));
  if (g.group === 1 && g.C % 2 === 1) return crop(dwBatchHalvesConv(ctx, g, attrs, [khOut, kwOut]));
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
  return crop(r);
}

/**
 * Batch-as-channels for a dense conv over an odd number of input channels (an RGB stem), as one Conv of
 * two groups: each group sums over half the batch, and the halves' products are added.
 * Why: onnxruntime's plain Conv splits its threads over (image, group) pairs, and here the images are
 * X's channels: ResNet's stem has 3, so one of 2 threads sat idle for the third; 2 groups make 6 pairs.
 * Xᵀ and dYᵀ are built by row Gathers (on every thread, where a Transpose runs on one). An odd batch gets
 * a zero image in X's second half (X's zero row), against which dY's rows are any image's (the last).
 * ResNet-18's stem, 16 × 224², 2 threads: 44.5 → 33.9 ms for the Conv; 1 thread 66.2 → 66.0 ms
 * (bench/finetune/stem-dw.ts). Splitting dY's rows in halves instead measured slower (52 / 72 ms).
 */
function dwBatchHalvesConv(ctx: RuleContext, g: ConvGeometry, attrs: Record<string, number[]>, [khOut, kwOut]: number[]): string {
  const { b, node } = ctx;
  const { n, rows, zeroRow } = gatherableRows(ctx, node.inputs[0], g.W, g.C * g.H);
  const half = b.op('Div', [b.op('Add', [n, b.i64Scalar(1)]), b.i64Scalar(2)]); // ⌈N/2⌉
  const image = b.op('Range', [b.i64Scalar(0), b.op('Mul', [half, b.i64Scalar(2)]), b.i64Scalar(1)]); // both halves' images, in order
  // Xᵀ [C, 2·⌈N/2⌉, H, W]: row image·C·H + c·H + y, the zero row for the image past the batch
  const xImage = b.op('Reshape', [image, b.i64([1, -1, 1])]);
  const xRows = b.shared(`batch-halves-x-rows:${g.C}x${g.H}`, () => int64([g.C, 1, g.H], Array.from({ length: g.C * g.H }, (_, k) => k)));
  const xIdx = b.op('Where', [b.op('Less', [xImage, n]), b.op('Add', [b.op('Mul', [xImage, b.i64Scalar(g.C * g.H)]), xRows]), zeroRow]);
  const xt = b.op('Reshape', [b.op('Gather', [rows, xIdx], { axis: 0 }), b.i64([g.C, -1, g.H, g.W])]);
  // dYᵀ per half [2, O, ⌈N/2⌉, OH] → the grouped filter [2·O, ⌈N/2⌉, OH, OW]
  const dyImage = b.op('Reshape', [b.op('Min', [image, b.op('Sub', [n, b.i64Scalar(1)])]), b.i64([2, 1, -1, 1])]);
  const dyRows = b.shared(`batch-halves-dy-rows:${g.O}x${g.OH}`, () => int64([1, g.O, 1, g.OH], Array.from({ length: g.O * g.OH }, (_, k) => k)));
  const dyIdx = b.op('Add', [b.op('Mul', [dyImage, b.i64Scalar(g.O * g.OH)]), dyRows]);
  const dyt = b.op('Reshape', [b.op('Gather', [b.op('Reshape', [ctx.dY()!, b.i64([-1, g.OW])]), dyIdx], { axis: 0 }), b.i64([2 * g.O, -1, g.OH, g.OW])]);
  const conv = b.op('Conv', [xt, dyt], { ...attrs, group: 2 }); // [C, 2·O, kh', kw']
  const summed = b.op('ReduceSum', [b.op('Reshape', [conv, b.i64([g.C, 2, g.O, khOut, kwOut])]), b.i64([1])], { keepdims: 0 });
  return b.op('Transpose', [summed], { perm: [1, 0, 2, 3] }); // [O, C, kh', kw']
}

/**
 * One view of the zero-padded input per kernel tap, each lined up with dY: tap (i, j) holds
 * X_pad[…, i·dh + sh·oh, j·dw + sw·ow] (axes 2 and 3 spatial; axes 0 and 1 are carried along).
 *
 * Stride 2 goes through SpaceToDepth: onnxruntime copies a step-2 Slice element by element (~3 ns per
 * element, 9 times for a 3×3 kernel), while one SpaceToDepth pass splits the input into its four
 * parity planes, from which every tap is a unit-step slice of whole rows.
 */
function tapSlices(ctx: RuleContext, g: ConvGeometry, x: string): string[] {
  const { b } = ctx;
  const parity = g.sh === 2 && g.sw === 2 && g.dh === 1 && g.dw === 1 && g.kh >= 2 && g.kw >= 2;
  const hp = g.H + g.pt + g.pb;
  const wp = g.W + g.pl + g.pr;
  // SpaceToDepth needs even sizes: one more zero row/column, which no tap reads
  const xp = padSpatial(ctx, x, [g.pt, g.pl, g.pb + (parity ? hp % 2 : 0), g.pr + (parity ? wp % 2 : 0)]);
  const out: string[] = [];
  if (parity) {
    const planes = b.op('Reshape', [b.op('SpaceToDepth', [xp], { blocksize: 2 }), b.i64([0, 4, -1, (hp + (hp % 2)) / 2, (wp + (wp % 2)) / 2])]);
    for (let i = 0; i < g.kh; i++) {
      for (let j = 0; j < g.kw; j++) {
        const [[rowParity, h0], [colParity, w0]] = [parityShift(i, 2), parityShift(j, 2)];
        const p = rowParity * 2 + colParity;
        const tap = b.op('Slice', [planes, b.i64([p, h0, w0]), b.i64([p + 1, h0 + g.OH, w0 + g.OW]), b.i64([1, 3, 4])]);
        out.push(b.op('Reshape', [tap, b.i64([0, -1, g.OH, g.OW])]));
      }
    }
    return out;
  }
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) {
      const h0 = i * g.dh;
      const w0 = j * g.dw;
      const whole = g.sh === 1 && g.sw === 1 && h0 === 0 && w0 === 0 && g.OH === hp && g.OW === wp;
      out.push(whole ? xp : b.op('Slice', [xp, b.i64([h0, w0]), b.i64([h0 + g.sh * (g.OH - 1) + 1, w0 + g.sw * (g.OW - 1) + 1]), b.i64([2, 3]), b.i64([g.sh, g.sw])]));
    }
  }
  return out;
}

/**
 * Where input offset t (a kernel tap's k·d − pad, possibly negative) lands among the parity planes of a
 * stride-s axis: plane t mod s, shifted by ⌊t / s⌋ rows or columns — so X[s·y + t] = plane[y + shift].
 */
function parityShift(t: number, s: number): [parity: number, shift: number] {
  return [((t % s) + s) % s, Math.floor(t / s)];
}

/** Zero padding of axes 2 and 3: [top, left, bottom, right]. */
function padSpatial(ctx: RuleContext, v: string, [t, l, bottom, r]: number[]): string {
  if (!t && !l && !bottom && !r) return v;
  return ctx.b.op('Pad', [v, ctx.b.i64([0, 0, t, l, 0, 0, bottom, r])]);
}

function dwTapGemm(ctx: RuleContext, g: ConvGeometry, im2col: boolean): string {
  const { b, node } = ctx;
  const xt = b.op('Transpose', [node.inputs[0]], { perm: [1, 0, 2, 3] }); // [C, N, H, W]
  const dYm = b.op('Reshape', [b.op('Transpose', [ctx.dY()!], { perm: [1, 0, 2, 3] }), b.i64([g.O, -1])]); // [O, N·P]
  const taps = tapSlices(ctx, g, xt);
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

/** n·stride for every image n of a batch of `n` (a run-time scalar), as [1, N, 1]. */
function batchOffsets(b: GraphBuilder, n: string, stride: number): string {
  const offsets = b.op('Range', [b.i64Scalar(0), b.op('Mul', [n, b.i64Scalar(stride)]), b.i64Scalar(stride)]);
  return b.op('Reshape', [offsets, b.i64([1, -1, 1])]);
}

/** The conv input's batch size at run time (a scalar): the batch stays symbolic in the step graphs. */
function batchSize(ctx: RuleContext): string {
  return ctx.b.op('Gather', [ctx.shapeOf(ctx.node.inputs[0]), ctx.b.i64Scalar(0)]);
}

/**
 * A tensor as rows of `width` values for row Gathers, plus one zero row at the end that rows outside the
 * image read: `imageStart` is each image's first row ([1, N, 1]) and `zeroRow` the zero row's index, both
 * at run time, since the batch stays symbolic.
 */
function gatherableRows(ctx: RuleContext, v: string, width: number, rowsPerImage: number): { n: string; rows: string; imageStart: string; zeroRow: string } {
  const { b } = ctx;
  const n = batchSize(ctx);
  const rows = b.op('Concat', [b.op('Reshape', [v, b.i64([-1, width])]), b.shared(`zero-row:${width}`, () => float32([1, width]))], { axis: 0 });
  return { n, rows, imageStart: batchOffsets(b, n, rowsPerImage), zeroRow: b.op('Mul', [n, b.i64Scalar(rowsPerImage)]) };
}

/**
 * Row indices `idx` whose source row falls outside [0, limit) read the zero row instead: `sourceRow(k)`
 * is the source row of the k-th element of `shape` (which broadcasts against idx), `key` names that
 * mapping for sharing the mask between convs of one geometry.
 */
function zeroOutside(b: GraphBuilder, idx: string, shape: number[], sourceRow: (k: number) => number, limit: number, zeroRow: string, key: string): string {
  const inside = Uint8Array.from({ length: numel(shape) }, (_, k) => {
    const row = sourceRow(k);
    return row >= 0 && row < limit ? 1 : 0;
  });
  if (!inside.includes(0)) return idx;
  return b.op('Where', [b.shared(`rows-inside:${key}:${shape.join('x')}:${limit}`, () => tensor('bool', shape, inside)), idx, zeroRow]);
}

/**
 * Weight gradients without per-tap copies of X (stride 1, or stride 2 on even-sized inputs):
 *   dW[o, c, i, j] = Σ_{n, y, x} dY[n, o, y, x] · X[n, c, s·y + i·dh − pt, s·x + j·dw − pl]
 * With stride 1, kernel row i needs X's rows shifted by i (one Gather per kernel row, which also puts the
 * channel axis first, reading a zero row where the shift leaves the image) and kernel column j needs dY's
 * columns shifted by j (one Pad of dY per kernel column), against X's rows at full width. With stride 2,
 * one SpaceToDepth pass splits X into its four parity planes (X[2y + a, 2x + b] for a, b ∈ {0, 1}); tap
 * (i, j) reads plane ((i·dh − pt) mod 2, (j·dw − pl) mod 2) at a shift of ⌊(i·dh − pt)/2⌋ rows and
 * ⌊(j·dw − pl)/2⌋ columns, so the same row gathers and dY shifts apply, with one gather per column parity.
 * Every kernel row's rows of X come from that one Gather, stacked, so that each kernel column is one
 * product for all kernel rows (below). Why: onnxruntime runs Slice, Pad and Transpose on one thread, and on two threads those
 * copies ran slower than on one, while Gather copies rows in parallel (a strided tap slice at 64 × 56², in
 * 28-float runs: 0.6 ms on a quiet machine, 3 ms on a busy one; its row gather 0.4 ms). A 3 × 3 conv with
 * pads 1: one (stride 1) or two (stride 2) Gathers of X, one of dY and two or one shifted copies of dY,
 * instead of transposes, a pad and nine slices.
 * CPU time per stride-1 layer on 2 threads (bench/finetune/tune-conv.ts): 68 → 60 ms at 64 × 56², 52 → 44 ms
 * at 128 × 28², 45 → 42 ms at 256 × 14².
 */
function dwTapGather(ctx: RuleContext, g: ConvGeometry): string {
  const { b, node } = ctx;
  const x = node.inputs[0];
  const dY = ctx.dY()!;
  const s = g.sh; // = g.sw, 1 or 2 (chooseDw)
  const planes = s * s;
  const [Hs, Ws] = [g.H / s, g.W / s];
  // Small products (64 × 64 filters) over long sums split the sum in two halves of the output rows, one
  // batched MatMul (ORT fuses the transpose into it) and a sum of the halves: onnxruntime splits a
  // Gemm's threads over its output columns, so each thread read all of dY; per half, each reads half.
  // ResNet-18's 64 × 64 × 56² Gemm: 3.40 → 2.77 ms on 2 threads, 5.41 → 4.99 ms on 1 (none at 128 × 128).
  const P = g.O * g.C <= 64 * 64 && g.OH % 2 === 0 ? 2 : 1;
  const [OHp, lead] = [g.OH / P, P > 1 ? [P] : []];
  /** [P?, rows, 1, OH/P] indices: row base(r) + y of each output row y, the halves of the rows first. */
  const rowIndex = (rows: number, base: (r: number) => number) =>
    int64([...lead, rows, 1, OHp], Array.from({ length: P * rows * OHp }, (_, k) => {
      const [h, r, y] = [Math.floor(k / (rows * OHp)), Math.floor(k / OHp) % rows, k % OHp];
      return base(r) + h * OHp + y;
    }));
  // rows [N·planes·C·Hs, Ws] of X or of its parity planes, plus the zero row
  const source = s === 1 ? x : b.op('SpaceToDepth', [x], { blocksize: s });
  const { n, rows, imageStart, zeroRow } = gatherableRows(ctx, source, Ws, planes * g.C * Hs);
  // dYᵀ [P?, O, N, OH/P, OW] by a row Gather, then per column shift moved to the planes' width (negative pads crop)
  const dyRows = b.shared(`dy-rows:${P}:${g.O}x${g.OH}`, () => rowIndex(g.O, (o) => o * g.OH));
  const dyIdx = b.op('Add', [dyRows, batchOffsets(b, n, g.O * g.OH)]);
  const dYt = b.op('Gather', [b.op('Reshape', [dY, b.i64([-1, g.OW])]), dyIdx], { axis: 0 });
  const dYShifted = new Map<number, string>();
  const dYAt = (shift: number): string => {
    let v = dYShifted.get(shift);
    if (!v) {
      const right = Ws - g.OW - shift;
      const zeros = lead.map(() => 0);
      const shifted = shift === 0 && right === 0 ? dYt : b.op('Pad', [dYt, b.i64([...zeros, 0, 0, 0, shift, ...zeros, 0, 0, 0, right])]);
      dYShifted.set(shift, (v = b.op('Reshape', [shifted, b.i64([...lead, g.O, -1])]))); // [P?, O, N·OH/P·Ws]
    }
    return v;
  };
  // X's rows for every kernel row at once, [P?, C·kh, N·OH/P·Ws] (one stack per column parity): each
  // product is then [C·kh, K] × [K, O], three times the rows of a per-tap [C, K] × [K, O]. Why: the GEMM
  // packs its right operand (dY's K × O) once per product, so per-tap products of 64 × 64 over 50 176
  // positions spent a fifth of their time packing (ResNet-18's first stage, 2 threads: 23.8 → 18.9 ms per
  // layer's nine taps, 1 thread 45.7 → 36.5 ms; 128 × 28²: 21.4 → 19.3 ms), at the price of kh copies of
  // X's rows alive at once instead of one.
  const kernelRows = Array.from({ length: g.kh }, (_, i) => parityShift(i * g.dh - g.pt, s));
  // Large maps keep one kernel row's copy of X alive at a time instead (products per tap): InceptionV3's
  // 147² layers would hold three 44 MB copies at batch 16 (whole run's peak RSS +150 MB)
  const stackRows = g.C * g.kh * g.OH * Ws <= MAX_ROW_STACK_PER_IMAGE ? g.kh : 1;
  /** X's rows of kernel rows first … first + count − 1, [P?, C·count, N·OH/P·Ws] (rows in (c, i) order). */
  const stackFor = (first: number, count: number, colParity: number): string => {
    const rowsOf = kernelRows.slice(first, first + count);
    // row (plane·C + c)·Hs + y + shift of image 0, as [P?, C, count, 1, OH/P]; the batch offset is added at run time
    const key = `tap-row-stack:${P}:${planes}x${g.C}x${Hs}:${g.OH}:${colParity}:${rowsOf.join(';')}`;
    const base = b.shared(key, () => {
      // rowIndex's [P?, C·count, 1, OH/P], its row axis split in two so that the mask below broadcasts over C
      const r = rowIndex(g.C * count, (cr) => {
        const [rowParity, shift] = rowsOf[cr % count];
        return ((rowParity * s + colParity) * g.C + Math.floor(cr / count)) * Hs + shift;
      });
      return tensor('int64', [...lead, g.C, count, 1, OHp], r.data);
    });
    // [P?, C, count, N, OH/P]; output row h·OH/P + y of kernel row i reads source row h·OH/P + y + shift(i)
    const sourceRow = (k: number) => Math.floor(k / (count * OHp)) * OHp + (k % OHp) + rowsOf[Math.floor(k / OHp) % count][1];
    const idx = zeroOutside(b, b.op('Add', [base, imageStart]), [...lead, 1, count, 1, OHp], sourceRow, Hs, zeroRow, key);
    return b.op('Reshape', [b.op('Gather', [rows, idx], { axis: 0 }), b.i64([...lead, g.C * count, -1])]);
  };
  /** Σ over positions of X's stacked rows × dY's: [C·count, O]. */
  const product = (xs: string, dy: string): string =>
    P === 1 ? b.op('Gemm', [xs, dy], { transB: 1 }) : b.op('ReduceSum', [b.op('MatMul', [xs, b.op('Transpose', [dy], { perm: [0, 2, 1] })]), b.i64([0])], { keepdims: 0 });
  const columns = Array.from({ length: g.kw }, (_, j) => parityShift(j * g.dw - g.pl, s));
  // emitted stack by stack, each stack's products together, so that one stack of X's rows is alive at a time
  const byStack: string[][] = []; // [stack][column] → [C·count, O]
  for (let first = 0; first < g.kh; first += stackRows) {
    const stacks = new Map<number, string>();
    byStack.push(
      columns.map(([colParity, colShift]) => {
        let xs = stacks.get(colParity);
        if (!xs) stacks.set(colParity, (xs = stackFor(first, stackRows, colParity)));
        return product(xs, dYAt(colShift));
      }),
    );
  }
  // per column, [C·kh, O] in (c, i) order: one stack's product, or the per-row products interleaved
  const parts = columns.map((_, j) =>
    byStack.length === 1 ? byStack[0][j] : b.op('Reshape', [b.op('Concat', byStack.map((ps) => b.op('Unsqueeze', [ps[j], b.i64([1])])), { axis: 1 }), b.i64([-1, g.O])]),
  );
  // [C·kh, kw, O] (runs of O floats), then one 2-D transpose (onnxruntime's blocked one): [O, C·kh·kw]
  const taps = parts.length === 1 ? parts[0] : b.op('Concat', parts.map((p) => b.op('Unsqueeze', [p, b.i64([1])])), { axis: 1 });
  return b.op('Reshape', [b.op('Transpose', [b.op('Reshape', [taps, b.i64([-1, g.O])])], { perm: [1, 0] }), b.i64([g.O, g.C, g.kh, g.kw])]);
}

/**
 * Per tap, one MatMul per image straight from the NCHW tensors — dY [N, O, P] × slice(X)ᵀ [N, P, C] (ORT
 * fuses the transpose into the MatMul) — then one sum over the batch: no transposed copies of X and dY,
 * at the price of an [N, O, C, k·k] partial result.
 */
function dwTapMatMul(ctx: RuleContext, g: ConvGeometry): string {
  const { b, node } = ctx;
  const dY = b.op('Reshape', [ctx.dY()!, b.i64([0, g.O, -1])]); // [N, O, P]
  const parts = tapSlices(ctx, g, node.inputs[0]).map((s) => {
    const st = b.op('Transpose', [b.op('Reshape', [s, b.i64([0, g.C, -1])])], { perm: [0, 2, 1] }); // [N, P, C]
    return b.op('MatMul', [dY, st]); // [N, O, C]
  });
  const stacked = parts.length === 1 ? parts[0] : b.op('Concat', parts.map((p) => b.op('Unsqueeze', [p, b.i64([3])])), { axis: 3 });
  return b.op('Reshape', [b.op('ReduceSum', [stacked, b.i64([0])], { keepdims: 0 }), b.i64([g.O, g.C, g.kh, g.kw])]);
}

/**
 * Weight gradients as one product per image, X's whole im2col matrix against dY as it is:
 *   dW[o, (c, i, j)] = Σ_n Σ_p dY[n, o, p] · cols[n, (c, i, j), p],  cols[n, (c, i, j), (y, x)] = X_pad[n, c, s·y + i, s·x + j]
 * cols comes from one row Gather: X (padded) is split into its s × s parity planes by SpaceToDepth, so tap
 * (i, j) reads plane (i mod s, j mod s) from row ⌊i/s⌋ and column ⌊j/s⌋ on; the few column offsets are
 * cut once each as a window of every plane (Slices, concatenated), after which each tap's rows are
 * whole rows of one window. dY is read as it is, [N, O, P], with no transposed copy (whose N·O·P floats
 * dwarf X's when C is small); only where cols would outgrow dY, chunks of images gather their part of it.
 * For small C only (RGB stems): cols holds C·kh·kw copies of the output grid, and per-image products
 * would be small matrices for deep layers. 2 threads, batch 16 (bench/finetune/tune-conv.ts, CPU ms):
 * MobileNetV2's 3 × 3 stem 50.2 → 16.4 (per-tap Gemms before, whose [O, K] × [K, 3] products re-read dY
 * nine times), 1 thread 47 → 14; ResNet-18's 7 × 7 stem 90.8 → 70.4 against its batch-as-channels Conv
 * (1 thread 91 → 60, both with cols whole), its products at the GEMM's full speed (3.8 GFLOP in 19 ms on
 * 2 threads); in chunks, the ResNet-18 full step (step-time.ts) 1086 → 1074 ms on 2 threads, 1978 → 1899 on 1.
 */
function dwImageIm2col(ctx: RuleContext, g: ConvGeometry): string {
  const { b, node } = ctx;
  const s = g.sh; // = g.sw, dilation 1 (chooseDw)
  const hp = g.H + g.pt + g.pb;
  const wp = g.W + g.pl + g.pr;
  // SpaceToDepth needs sizes divisible by s: extra zero rows / columns, which no tap reads
  const [eh, ew] = [(s - (hp % s)) % s, (s - (wp % s)) % s];
  const xp = padSpatial(ctx, node.inputs[0], [g.pt, g.pl, g.pb + eh, g.pr + ew]);
  const planes = s === 1 ? xp : b.op('SpaceToDepth', [xp], { blocksize: s }); // [N, s²·C, Hs, Ws], channel (a·s + b)·C + c
  const [Hs, Ws] = [(hp + eh) / s, (wp + ew) / s];
  const offsets = Math.floor((g.kw - 1) / s) + 1;
  const windows = Array.from({ length: offsets }, (_, off) =>
    off === 0 && g.OW === Ws ? planes : b.op('Slice', [planes, b.i64([off]), b.i64([off + g.OW]), b.i64([3])]),
  );
  const shifted = windows.length === 1 ? windows[0] : b.op('Concat', windows, { axis: 1 }); // [N, offsets·s²·C, Hs, OW]
  const rows = b.op('Reshape', [shifted, b.i64([-1, g.OW])]);
  const CK = g.C * g.kh * g.kw;
  const perImage = offsets * s * s * g.C * Hs; // rows
  // row of image 0 for every (c, i, j) and output row y, as [1, CK, OH]; the batch offset is added at run time
  const base = b.shared(`image-im2col:${g.C}x${Hs}x${g.OW}:${g.kh}x${g.kw}:${s}:${g.OH}`, () =>
    int64([1, CK, g.OH], Array.from({ length: CK * g.OH }, (_, k) => {
      const [r, y] = [Math.floor(k / g.OH), k % g.OH];
      const [c, i, j] = [Math.floor(r / (g.kh * g.kw)), Math.floor(r / g.kw) % g.kh, r % g.kw];
      const channel = (Math.floor(j / s) * s * s + (i % s) * s + (j % s)) * g.C + c;
      return channel * Hs + Math.floor(i / s) + y;
    })),
  );
  const n = batchSize(ctx);
  let dYm: string | undefined;
  const dYAll = () => (dYm ??= b.op('Reshape', [ctx.dY()!, b.i64([0, g.O, -1])])); // [N, O, P]
  /** The products over images `images` ([n] int64), or over all of them: [CK, O]. */
  const product = (images?: string): string => {
    const starts = images ? b.op('Mul', [images, b.i64Scalar(perImage)]) : batchOffsets(b, n, perImage);
    const imageStart = b.op('Reshape', [starts, b.i64([-1, 1, 1])]); // [n, 1, 1]
    const cols = b.op('Reshape', [b.op('Gather', [rows, b.op('Add', [base, imageStart])], { axis: 0 }), b.i64([-1, CK, g.OH * g.OW])]); // [n, CK, P]; n may be 0
    const dy = images ? b.op('Gather', [dYAll(), images], { axis: 0 }) : dYAll();
    // cols on the left: the GEMM streams its left operand and packs its right one, here dY's smaller [P, O]
    // (dY on the left: ResNet's stem 24.2 ms instead of 18.9 on 2 threads); ORT fuses the transpose into it
    const products = b.op('MatMul', [cols, b.op('Transpose', [dy], { perm: [0, 2, 1] })]); // [n, CK, O]
    return b.op('ReduceSum', [products, b.i64([0])], { keepdims: 0 });
  };
  // cols larger than dY (ResNet's 7 × 7 stem: 147 rows against 64 channels, 2.3 times) goes chunk by chunk of
  // images, each chunk's cols at most half dY's size, emitted one after the other so that onnxruntime frees
  // each before it gathers the next: all at once raised the ResNet-18 step's peak RSS from 1044 to
  // 1164–1193 MB, in 5 chunks it stays at 1040–1058 (bench/run.ts finetune). A chunk copies its images' dY
  // (a Gather, on every thread: 0.8 ms per 4 images), and chunks past a small batch are empty. Splitting
  // cols by input channel instead (not kept) made three thin products slower than the batch-as-channels
  // Conv: 50 ms against 39 (2 threads, bench/finetune/probe-profile.ts)
  const chunks = CK <= g.O ? 1 : Math.min(MAX_IMAGE_CHUNKS, Math.ceil((2 * CK) / g.O));
  let summed: string;
  if (chunks === 1) summed = product();
  else {
    const size = b.op('Div', [b.op('Add', [n, b.i64Scalar(chunks - 1)]), b.i64Scalar(chunks)]); // ⌈N / chunks⌉
    const bound = (k: number) => b.op('Min', [b.op('Mul', [size, b.i64Scalar(k)]), n]);
    const parts = Array.from({ length: chunks }, (_, k) => product(b.op('Range', [bound(k), bound(k + 1), b.i64Scalar(1)])));
    summed = b.op('Sum', parts);
  }
  return b.op('Reshape', [b.op('Transpose', [summed], { perm: [1, 0] }), b.i64([g.O, g.C, g.kh, g.kw])]);
}

/**
 * Depthwise weight gradients at stride 1, per tap a product with dY summed over batch and positions:
 *   dW[c, 0, i, j] = Σ_{n, y, x} dY[n, c, y, x] · X[n, c, y + i·dh − pt, x + j·dw − pl]
 * Kernel row i reads X's rows shifted by i·dh − pt (one row Gather, which onnxruntime runs on every
 * thread, reading a zero row where the shift leaves the image) at X's own width; kernel column j shifts
 * dY's columns by j·dw − pl instead (one Pad of dY; negative pads crop). That replaces a Pad and nine
 * Slices of X — copies onnxruntime makes on one thread — by a Concat (the zero row), kh Gathers and at
 * most kw Pads. MobileNetV2 full step on 2 threads: 754 → 736 and 725 → 698 ms (medians of 16 alternating
 * pairs in one process), 1 thread unchanged (999 vs 1002 ms); peak RSS unchanged.
 */
function depthwiseTaps(ctx: RuleContext, g: ConvGeometry): string[] {
  const { b, node } = ctx;
  const x = node.inputs[0];
  const dY = ctx.dY()!;
  const { rows, imageStart, zeroRow } = gatherableRows(ctx, x, g.W, g.C * g.H);
  const imageRows = b.op('Reshape', [imageStart, b.i64([-1, 1, 1])]); // [N, 1, 1]: images first here
  const shiftedRows = Array.from({ length: g.kh }, (_, i) => {
    const shift = i * g.dh - g.pt;
    const base = b.shared(`dw-rows:${g.C}x${g.H}:${g.OH}:${shift}`, () => int64([1, g.C, g.OH], Array.from({ length: g.C * g.OH }, (_, k) => Math.floor(k / g.OH) * g.H + (k % g.OH) + shift)));
    const idx = zeroOutside(b, b.op('Add', [base, imageRows]), [1, 1, g.OH], (y) => y + shift, g.H, zeroRow, `shift:${shift}`); // [N, C, OH]
    return b.op('Gather', [rows, idx], { axis: 0 }); // [N, C, OH, W]
  });
  const shiftedDY = Array.from({ length: g.kw }, (_, j) => {
    const left = j * g.dw - g.pl;
    const right = g.W - g.OW - left;
    return left === 0 && right === 0 ? dY : b.op('Pad', [dY, b.i64([0, 0, 0, left, 0, 0, 0, right])]); // [N, C, OH, W]
  });
  return shiftedRows.flatMap((xr) => shiftedDY.map((dy) => b.op('ReduceSum', [b.op('Mul', [dy, xr]), b.i64([0, 2, 3])], { keepdims: 0 })));
}

function dwTapReduce(ctx: RuleContext, g: ConvGeometry): string {
  const { b, node } = ctx;
  const dY = ctx.dY()!;
  const sums =
    g.sh === 1 && g.sw === 1
      ? depthwiseTaps(ctx, g)
      : tapSlices(ctx, g, node.inputs[0]).map((s) => b.op('ReduceSum', [b.op('Mul', [dY, s]), b.i64([0, 2, 3])], { keepdims: 0 }));
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
        const forms: Record<Exclude<ConvDwMethod, 'auto'>, () => string> = {
          tapGemm: () => dwTapGemm(ctx, g, false),
          im2col: () => dwTapGemm(ctx, g, true),
          tapGather: () => dwTapGather(ctx, g),
          tapMatMul: () => dwTapMatMul(ctx, g),
          imageIm2col: () => dwImageIm2col(ctx, g),
          tapReduce: () => dwTapReduce(ctx, g),
          batchAsChannels: () => dwBatchAsChannels(ctx, g),
        };
        const dW = forms[m]();
        ctx.grad(1, dW);
      }
      if (node.input(2) && ctx.needs(2)) ctx.grad(2, b.op('ReduceSum', [ctx.dY()!, b.i64([0, 2, 3])], { keepdims: 0 }));
    },
  },
};
