/**
 * Lowers Convs whose weights are computed or fed at run time to ONNX Runtime's blocked-layout kernels
 * (domain com.microsoft.nchwc), which ORT only picks on its own for constant weights.
 *
 * Why: a training step feeds its trainable weights as inputs, so ORT runs those convs (forward and the
 * input-gradient convs) through im2col + a GEMM per image, 15–35 % slower than its NCHWc kernels. Those
 * kernels take the filter in a blocked order ([O/B, I/B, kh, kw, Bi, Bo], or [O/B, I, kh, kw, Bo] when
 * the input stays NCHW); those reorders, of weight-sized data every step, are emitted here in the graph.
 * Activations enter the blocked layout through ReorderInput and leave through ReorderOutput; a conv
 * whose input is another lowered conv's output takes the blocked tensor directly, and a residual Add and
 * a Relu that only a conv's output feeds are fused into the conv, so chains of convs and whole residual
 * blocks stay blocked; values something else reads in NCHW get a ReorderOutput. A conv's input that
 * pointwise ops compute from blocked values (a training step's gradient masks, masked gradients and
 * gradient sums) is computed in the blocked layout too, so the backward's chains of input-gradient convs
 * stay blocked as the forward's do.
 *
 * B (the block size) depends on the CPU ORT runs on (16 with AVX-512, 8 with AVX2): callers get it
 * from Runtime.nchwcBlock() (runtime/nchwc-probe), which checks it against a plain Conv on this machine.
 */
import { GraphBuilder } from './builder.js';
import type { Model } from './graph.js';
import { isDefaultDomain, type Dim, type Node } from './ir.js';
import { inferShapes } from './shapes.js';
import { constantOf } from './surgery.js';
import { numel, tensor } from '../onnx/tensor.js';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

/** Name stem of the ReorderInput nodes that reorder filters (not activations). */
export const FILTER_REORDER = 'FilterReorder';

/**
 * The k×k anti-identity (ones on the anti-diagonal). The conv rule (autodiff/rules/conv) flips a filter's
 * taps by a MatMul with it; the lowering recognises that flip by the same matrix.
 */
export function antiIdentity(k: number): Float32Array {
  const data = new Float32Array(k * k);
  for (let i = 0; i < k; i++) data[i * k + (k - 1 - i)] = 1;
  return data;
}

export interface NchwcLowering {
  /** Convs moved to the blocked kernels. */
  lowered: number;
  /** Activations' layout conversions left in the graph (ReorderInput + ReorderOutput; unread ones are pruned). */
  reorders: number;
  /**
   * Input-gradient filters, flip(Wᵀ), recognised and built from their forward weight's reorder (the
   * rest are reordered like any computed weight: correct, but slower). Tests pin this to the conv
   * rule's output, so a change to how the rule emits the flip cannot silently lose the fold.
   */
  foldedFlips: number;
}

/** Default-domain ops that pointwiseBlocked computes in the blocked layout (same-shape operands or scalars). */
const POINTWISE = new Set(['Mul', 'Add', 'Sum', 'Cast', 'Greater', 'Less', 'And', 'Clip']);
/** Those of them with a boolean output. */
const BOOLEAN = new Set(['Greater', 'Less', 'And']);

const isStatic = (s: readonly Dim[] | undefined): s is number[] => !!s && s.every((d) => typeof d === 'number');
const sameShape = (a: readonly Dim[] | undefined, b: readonly Dim[] | undefined): boolean => !!a && !!b && a.length === b.length && a.every((d, i) => d !== null && d === b[i]);

/**
 * Rewrites, in place, every eligible 2-D Conv of the default domain whose weight is not an initializer.
 * Eligible: group 1 with O divisible by B and I divisible by B (or I < B: the input stays NCHW), or
 * depthwise (I = 1, group = O) with O divisible by B; explicit pads; a known weight shape.
 */
export function lowerConvsToNchwc(model: Model, opts: { block: number }): NchwcLowering {
  const B = opts.block;
  const g = model.graph;
  const shapes = inferShapes(model);
  const b = new GraphBuilder(g, { opset: model.opset });
  const outputs = new Set(g.outputs.map((o) => o.name));
  const { consumers, producer } = g.index();
  /** NCHW value → its blocked twin, for values produced by lowered convs. */
  const blocked = new Map<string, string>();
  const replaced = new Map<Node, Node[]>();
  const dropped = new Set<Node>();
  let lowered = 0;
  let foldedFlips = 0;

  /**
   * A weight's first reorder pass, [O, I, k] → [O, I/B, k, Bi], emitted once per weight: the forward
   * filter and an input-gradient conv's filter both start from it.
   */
  const firstPasses = new Map<string, string>();
  const firstPass = (w: string, O: number, I: number, k: number): string => {
    let v = firstPasses.get(w);
    if (!v) firstPasses.set(w, (v = blockChannels(b, w, [O, I, k])));
    return v;
  };

  /** The node reading `value`, when it is the only reader, of this default-domain type, and `value` is no graph output. */
  const soleUser = (value: string, opType: string): Node | undefined => {
    const users = consumers.get(value) ?? [];
    const u = users[0];
    return !outputs.has(value) && users.length === 1 && u.opType === opType && isDefaultDomain(u.domain) ? u : undefined;
  };

  /** A constant of one element (a Clip bound, a ReLU mask's zero). */
  const isScalarConstant = (v: string): boolean => {
    const c = constantOf(g, v, producer);
    return !!c && numel(c.dims) === 1;
  };

  /** The pointwise node computing v, when it is one pointwiseBlocked may move (whole-block channels, not yet moved). */
  const pointwiseProducer = (v: string): Node | undefined => {
    const p = producer.get(v);
    if (!p || !POINTWISE.has(p.opType) || !isDefaultDomain(p.domain) || dropped.has(p) || replaced.has(p) || outputs.has(v)) return undefined;
    const shape = shapes.get(v)?.shape;
    return shape && shape.length === 4 && typeof shape[1] === 'number' && shape[1] % B === 0 ? p : undefined;
  };
  /** Whether every operand on the way is a scalar constant or has (or can get) a blocked twin: checked before emitting anything. */
  const blockable = (v: string): boolean => {
    if (blocked.has(v)) return true;
    const p = pointwiseProducer(v);
    return !!p && p.inputs.every((i) => !i || isScalarConstant(i) || (sameShape(shapes.get(i)?.shape, shapes.get(v)?.shape) && blockable(i)));
  };
  /**
   * The blocked twin of a value that pointwise ops compute from blocked values — a ReLU's gradient
   * mask and product, a gradient sum — emitted in the blocked layout in place of the NCHW nodes, which
   * become a ReorderOutput for any NCHW reader left (pruned when none is). Why: the conv reading such a
   * value took it back through a ReorderInput, right after a ReorderOutput had left the blocked layout
   * for it (the conv before it, the forward output its mask reads): elementwise ops are layout-blind
   * once the channels fill whole blocks. undefined when something on the way is not such an op.
   */
  const pointwiseBlocked = (v: string): string | undefined => {
    if (!blockable(v)) return undefined;
    const known = blocked.get(v);
    if (known) return known;
    const p = pointwiseProducer(v)!;
    const inputs = p.inputs.map((i) => (!i || isScalarConstant(i) ? i : pointwiseBlocked(i)!));
    const start = g.nodes.length;
    const twin = b.op(p.opType, inputs, Object.fromEntries(p.attrs));
    // ReorderOutput takes floats only: a comparison's NCHW node stays for any NCHW reader (pruned if none)
    if (BOOLEAN.has(p.opType)) replaced.set(p, [...g.nodes.splice(start), p]);
    else {
      b.op('ReorderOutput', [twin], { channels_last: 0, channels: shapes.get(v)!.shape![1] as number }, { domain: NCHWC_DOMAIN, outputs: [v] });
      replaced.set(p, g.nodes.splice(start));
    }
    blocked.set(v, twin);
    return twin;
  };

  for (const n of g.nodes) {
    if (n.opType !== 'Conv' || !isDefaultDomain(n.domain) || dropped.has(n)) continue;
    const [x, w, bias] = n.inputs;
    if (g.initializers.has(w)) continue; // ORT lowers constant-weight convs itself, with pre-packed filters
    const wShape = shapes.get(w)?.shape;
    if (!isStatic(wShape) || wShape.length !== 4) continue;
    const [O, I, kh, kw] = wShape;
    const group = n.int('group', 1);
    const autoPad = n.string('auto_pad', 'NOTSET');
    if (autoPad !== 'NOTSET' || O % B !== 0) continue;
    const depthwise = group > 1 && I === 1 && group === O;
    if (group > 1 && !depthwise) continue;
    const nchwInput = !depthwise && I < B;
    if (!depthwise && !nchwInput && I % B !== 0) continue;

    const xTwin = nchwInput ? undefined : pointwiseBlocked(x);
    const start = g.nodes.length;
    let xc = x;
    if (!nchwInput) {
      xc = xTwin ?? blocked.get(x) ?? '';
      if (!xc) {
        xc = b.op('ReorderInput', [x], { channels_last: 0 }, { domain: NCHWC_DOMAIN });
        blocked.set(x, xc);
      }
    }
    const flippedOf = depthwise || nchwInput ? undefined : flippedSwapSource(g, producer, w, kh * kw);
    if (flippedOf) foldedFlips++;
    const filter =
      depthwise || nchwInput
        ? blockOutputChannels(b, w, [O, I, kh, kw], B)
        : flippedOf
          ? reorderFlippedFilterOIHWBiBo(b, firstPass(flippedOf, I, O, kh * kw), [O, I, kh, kw], B)
          : blockOutputChannels(b, firstPass(w, O, I, kh * kw), [O, I, kh, kw], B);

    // What ORT's own NCHWc rewrite fuses: a residual Add whose other operand is already blocked (the
    // kernel's Sum input), then a Relu — each only when this conv's value feeds nothing else.
    let out = n.outputs[0];
    let sum: string | undefined;
    const add = soleUser(out, 'Add');
    const other = add && (add.inputs[0] === out ? add.inputs[1] : add.inputs[0]);
    if (add && other && other !== out && blocked.has(other) && sameShape(shapes.get(other)?.shape, shapes.get(out)?.shape)) {
      sum = blocked.get(other);
      dropped.add(add);
      out = add.outputs[0];
    }
    let activation: string | undefined;
    const relu = soleUser(out, 'Relu');
    if (relu) {
      activation = 'Relu';
      dropped.add(relu);
      out = relu.outputs[0];
    }
    const attrs = {
      kernel_shape: [kh, kw],
      strides: n.ints('strides'),
      pads: n.ints('pads'),
      dilations: n.ints('dilations'),
      group,
      activation,
    };
    const yc = b.op('Conv', [xc, filter, bias || (sum ? '' : undefined), sum], attrs, { domain: NCHWC_DOMAIN, name: `${n.name}_nchwc` });
    b.op('ReorderOutput', [yc], { channels_last: 0, channels: O }, { domain: NCHWC_DOMAIN, outputs: [out] });
    blocked.set(out, yc);
    lowered++;
    replaced.set(n, g.nodes.splice(start));
  }
  if (lowered === 0) return { lowered, reorders: 0, foldedFlips };
  g.nodes = g.nodes.filter((n) => !dropped.has(n)).flatMap((n) => replaced.get(n) ?? [n]);
  if (!model.opsetImports.some((o) => o.domain === NCHWC_DOMAIN)) model.opsetImports.push({ domain: NCHWC_DOMAIN, version: 1 });
  g.prune();
  const reorders = g.nodes.filter((n) => n.domain === NCHWC_DOMAIN && n.opType.startsWith('Reorder') && !n.name.startsWith(FILTER_REORDER)).length;
  return { lowered, reorders, foldedFlips };
}

/**
 * [n, c, s] → [n, c/B, s, B] (c a multiple of B) by ORT's ReorderInput, which splits the work over its
 * threads, where a Transpose that moves single floats runs on one. A 512×512×3×3 weight's forward and
 * input-gradient filters on 2 threads: 9.9 → 8.0 ms (bench/finetune/filter-reorder.ts); ResNet-18 full
 * step 0.983× (16 alternating pairs in one process; 1 thread 0.996×, MobileNetV2 0.991×).
 */
export function blockChannels(b: GraphBuilder, v: string, [n, c, s]: number[]): string {
  return b.op('ReorderInput', [b.op('Reshape', [v, b.i64([n, c, s, 1])])], { channels_last: 0 }, { domain: NCHWC_DOMAIN, name: b.fresh(FILTER_REORDER) });
}

/**
 * A filter's output channels into lanes of B, its rows kept in their order: [O, rest] → [O/B, rest, Bo],
 * viewed as [O, I, kh, kw] (the shape the kernel reads). From a dense weight's first pass [O, I/B, k, Bi]
 * that is [O/B, I/B, kh, kw, Bi, Bo]; from a depthwise weight (or one for a conv reading NCHW) itself,
 * [O/B, I, kh, kw, Bo].
 */
export function blockOutputChannels(b: GraphBuilder, v: string, [O, I, kh, kw]: number[], B: number): string {
  return b.op('Reshape', [blockChannels(b, v, [O / B, B, I * kh * kw]), b.i64([O, I, kh, kw])]);
}

/**
 * The forward weight W [I, O, kh, kw] when `w` is the input-gradient conv's filter the conv rule emits,
 * flip(Wᵀ) = Reshape(MatMul(Reshape(Transpose(W, [1,0,2,3]), [-1, k]), anti-identity), [O, I, kh, kw]);
 * undefined for anything else.
 */
function flippedSwapSource(g: Model['graph'], producer: ReadonlyMap<string, Node>, w: string, k: number): string | undefined {
  const from = (v: string | undefined, op: string): Node | undefined => {
    const n = v === undefined ? undefined : producer.get(v);
    return n && n.opType === op && isDefaultDomain(n.domain) ? n : undefined;
  };
  const mm = from(from(w, 'Reshape')?.inputs[0], 'MatMul');
  const swap = from(from(mm?.inputs[0], 'Reshape')?.inputs[0], 'Transpose');
  if (!mm || !swap || swap.ints('perm')?.join() !== '1,0,2,3') return undefined;
  const j = g.initializers.get(mm.inputs[1]);
  if (!j || j.dtype !== 'float32' || j.dims.join() !== `${k},${k}`) return undefined;
  const flip = antiIdentity(k);
  return (j.data as Float32Array).every((v, i) => v === flip[i]) ? swap.inputs[0] : undefined;
}

/**
 * The input-gradient conv's blocked filter straight from the forward weight W [I, O, kh, kw] (the conv
 * computes with flip(Wᵀ)): `first` is the forward filter's first pass, W as [I, O/B, k, Bo] (the same
 * node), and one Gather of its B-float rows puts them in order — (O/B, I/B, k reversed, Bi) — on every
 * thread, instead of a transpose of single floats, the flip MatMul and a reorder of its own.
 * (Bi, Bo: the lanes of this conv's input and output channels, i.e. W's output and input channels.)
 */
export function reorderFlippedFilterOIHWBiBo(b: GraphBuilder, first: string, [O, I, kh, kw]: number[], B: number): string {
  const k = kh * kw;
  const rows = b.shared(`flipped-filter-rows:${O}x${I}x${k}:${B}`, () => {
    const idx = new Int32Array((O / B) * I * k);
    let r = 0;
    for (let ob = 0; ob < O / B; ob++) for (let ib = 0; ib < I / B; ib++) for (let t = 0; t < k; t++) for (let bi = 0; bi < B; bi++) idx[r++] = ((ib * B + bi) * (O / B) + ob) * k + (k - 1 - t);
    return tensor('int32', [idx.length], idx);
  });
  const flipped = b.op('Gather', [b.op('Reshape', [first, b.i64([-1, B])]), rows], { axis: 0 });
  return b.op('Reshape', [flipped, b.i64([O, I, kh, kw])]);
}
