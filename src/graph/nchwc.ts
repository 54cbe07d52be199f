/**
 * Lowers Convs whose weights are computed or fed at run time to ONNX Runtime's blocked-layout kernels
 * (domain com.microsoft.nchwc), which ORT only picks on its own for constant weights.
 *
 * Why: a training step feeds its trainable weights as inputs, so ORT runs those convs (forward and the
 * input-gradient convs) through im2col + a GEMM per image, 15–35 % slower than its NCHWc kernels. Those
 * kernels take the filter in a blocked order ([O/B, I/B, kh, kw, Bi, Bo], or [O/B, I, kh, kw, Bo] when
 * the input stays NCHW); the reorder is a Reshape + Transpose on weight-sized data, emitted here in the
 * graph. Activations enter the blocked layout through ReorderInput and leave through ReorderOutput;
 * a conv whose input is another lowered conv's output takes the blocked tensor directly, and a Relu
 * that is a conv output's only consumer is fused into the conv, so chains of convs stay blocked.
 *
 * B (the block size) depends on the CPU ORT runs on (16 with AVX-512, 8 with AVX2): callers get it
 * from runtime/nchwc-block, which checks it against a plain Conv on this machine.
 */
import { GraphBuilder } from './builder.js';
import type { Model } from './graph.js';
import type { Dim, Node, ValueInfo } from './ir.js';
import { inferShapes } from './shapes.js';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

export interface NchwcLowering {
  /** Convs moved to the blocked kernels. */
  lowered: number;
  /** Layout conversions left in the graph (ReorderInput + ReorderOutput; unread ones are pruned). */
  reorders: number;
}

const isStatic = (s: readonly Dim[] | undefined): s is number[] => !!s && s.every((d) => typeof d === 'number');

/**
 * Rewrites, in place, every eligible 2-D Conv of the default domain whose weight is not an initializer.
 * Eligible: group 1 with O divisible by B and I divisible by B (or I < B: the input stays NCHW), or
 * depthwise (I = 1, group = O) with O divisible by B; explicit pads; a known weight shape.
 */
export function lowerConvsToNchwc(model: Model, opts: { block: number; shapes?: ReadonlyMap<string, ValueInfo> }): NchwcLowering {
  const B = opts.block;
  const g = model.graph;
  const shapes = opts.shapes ?? inferShapes(model);
  const b = new GraphBuilder(g, { opset: model.opset });
  const outputs = new Set(g.outputs.map((o) => o.name));
  const { consumers } = g.index();
  /** NCHW value → its blocked twin, for values produced by lowered convs. */
  const blocked = new Map<string, string>();
  const replaced = new Map<Node, Node[]>();
  const dropped = new Set<Node>();
  let lowered = 0;

  for (const n of g.nodes) {
    if (n.opType !== 'Conv' || (n.domain !== '' && n.domain !== 'ai.onnx') || dropped.has(n)) continue;
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

    const start = g.nodes.length;
    let xc = x;
    if (!nchwInput) {
      xc = blocked.get(x) ?? '';
      if (!xc) {
        xc = b.op('ReorderInput', [x], { channels_last: 0 }, { domain: NCHWC_DOMAIN });
        blocked.set(x, xc);
      }
    }
    const filter = depthwise || nchwInput ? reorderFilterOIHWBo(b, w, [O, I, kh, kw], B) : reorderFilterOIHWBiBo(b, w, [O, I, kh, kw], B);

    // a Relu that only this conv feeds runs fused in the blocked kernel, as ORT's FusedConv does
    let out = n.outputs[0];
    let activation: string | undefined;
    const users = consumers.get(out) ?? [];
    if (!outputs.has(out) && users.length === 1 && users[0].opType === 'Relu' && (users[0].domain === '' || users[0].domain === 'ai.onnx')) {
      activation = 'Relu';
      dropped.add(users[0]);
      out = users[0].outputs[0];
    }
    const attrs = {
      kernel_shape: [kh, kw],
      strides: n.ints('strides'),
      pads: n.ints('pads'),
      dilations: n.ints('dilations'),
      group,
      activation,
    };
    const yc = b.op('Conv', [xc, filter, bias || undefined], attrs, { domain: NCHWC_DOMAIN, name: `${n.name}_nchwc` });
    b.op('ReorderOutput', [yc], { channels_last: 0, channels: O }, { domain: NCHWC_DOMAIN, outputs: [out] });
    blocked.set(out, yc);
    lowered++;
    replaced.set(n, g.nodes.splice(start));
  }
  if (lowered === 0) return { lowered, reorders: 0 };
  g.nodes = g.nodes.filter((n) => !dropped.has(n)).flatMap((n) => replaced.get(n) ?? [n]);
  if (!model.opsetImports.some((o) => o.domain === NCHWC_DOMAIN)) model.opsetImports.push({ domain: NCHWC_DOMAIN, version: 1 });
  g.prune();
  const reorders = g.nodes.filter((n) => n.domain === NCHWC_DOMAIN && n.opType.startsWith('Reorder')).length;
  return { lowered, reorders };
}

/** [O, I, kh, kw] → [O/B, I/B, kh, kw, Bi, Bo] (viewed as [O, I, kh, kw], the shape the kernel reads). */
function reorderFilterOIHWBiBo(b: GraphBuilder, w: string, [O, I, kh, kw]: number[], B: number): string {
  const split = b.op('Reshape', [w, b.i64([O / B, B, I / B, B, kh, kw])]);
  const blockedW = b.op('Transpose', [split], { perm: [0, 2, 4, 5, 3, 1] });
  return b.op('Reshape', [blockedW, b.i64([O, I, kh, kw])]);
}

/** [O, I, kh, kw] → [O/B, I, kh, kw, Bo]: depthwise filters and convs reading an NCHW input. */
function reorderFilterOIHWBo(b: GraphBuilder, w: string, [O, I, kh, kw]: number[], B: number): string {
  const split = b.op('Reshape', [w, b.i64([O / B, B, I, kh, kw])]);
  const blockedW = b.op('Transpose', [split], { perm: [0, 2, 3, 4, 1] });
  return b.op('Reshape', [blockedW, b.i64([O, I, kh, kw])]);
}
