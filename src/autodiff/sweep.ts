/**
 * The reverse sweep: from seed gradients (d loss / d logits) back to the requested values, emitting
 * only what is needed — nodes upstream of every trainable value are never differentiated, and inputs
 * that lead to nothing trainable get no gradient.
 */
import { GraftError } from '../errors.js';
import type { Graph } from '../graph/graph.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Dim, Node, ValueInfo } from '../graph/ir.js';
import { toNumbers } from '../onnx/tensor.js';
import { ruleFor } from './registry.js';
import { DEFAULT_GRAD_OPTIONS, type GradOptions, type GradRule, type RuleContext } from './rule.js';

export interface BackwardRequest {
  /** The graph holding the forward nodes; backward nodes are appended to it. */
  graph: Graph;
  /** value → name of its gradient (already computed in the graph, e.g. d loss / d logits). */
  seeds: ReadonlyMap<string, string>;
  /** Values whose gradients are wanted (trainable weights, usually graph inputs now). */
  wrt: readonly string[];
  /** Static shapes of every forward value (see graph/shapes). */
  shapes: ReadonlyMap<string, ValueInfo>;
  opset: number;
  options?: GradOptions;
  /** Builder to emit with (so callers share fresh-name state); one is made when absent. */
  builder?: GraphBuilder;
}

export interface BackwardResult {
  /** wrt value → its gradient value. */
  grads: Map<string, string>;
  /** Forward nodes that were differentiated, in forward order (for inspection and tests). */
  differentiated: Node[];
}

/** Which inputs of `node` carry differentiable data according to its rule (all when no rule). */
function differentiableInputs(node: Node, rule: GradRule | undefined): readonly number[] {
  if (rule?.differentiable) return rule.differentiable(node);
  return node.inputs.map((_, i) => i);
}

/** Values that depend (through differentiable edges) on any of `sources`. */
export function requiresGrad(nodes: readonly Node[], sources: Iterable<string>): Set<string> {
  const req = new Set(sources);
  for (const n of nodes) {
    const rule = ruleFor(n);
    const diff = differentiableInputs(n, rule);
    if (diff.some((i) => n.inputs[i] && req.has(n.inputs[i]))) for (const o of n.outputs) if (o) req.add(o);
  }
  return req;
}

export function buildBackward(req: BackwardRequest): BackwardResult {
  const { graph, seeds, shapes, opset } = req;
  const options = req.options ?? DEFAULT_GRAD_OPTIONS;
  const forward = [...graph.nodes];
  const b = req.builder ?? new GraphBuilder(graph, { opset });
  const needsGrad = requiresGrad(forward, req.wrt);

  // values from which some seed can be reached: only those carry a gradient back
  const flows = new Set(seeds.keys());
  for (let k = forward.length - 1; k >= 0; k--) {
    const n = forward[k];
    if (!n.outputs.some((o) => flows.has(o))) continue;
    for (const i of differentiableInputs(n, ruleFor(n))) if (n.inputs[i]) flows.add(n.inputs[i]);
  }

  const contributions = new Map<string, string[]>();
  for (const [v, g] of seeds) contributions.set(v, [g]);
  const finalGrad = new Map<string, string | undefined>();
  const gradOf = (v: string): string | undefined => {
    if (finalGrad.has(v)) return finalGrad.get(v);
    const list = contributions.get(v);
    let g: string | undefined;
    if (list && list.length === 1) g = list[0];
    else if (list && list.length > 1) g = b.op('Sum', list, {}, { name: `grad_sum/${v}` });
    finalGrad.set(v, g);
    return g;
  };

  // A Shape node in the backward would keep its forward value — often activation-sized, and otherwise
  // dead by then — alive until the backward reaches it. So shapes are built from what is known: static
  // dims as constants, a symbolic dim (the batch) read from the graph input that declares it, which the
  // caller owns. Only a value with a dim known neither way is asked for its Shape.
  const declared = new Map<string, { input: string; axis: number }>();
  for (const i of graph.inputs) i.shape?.forEach((d, axis) => typeof d === 'string' && !declared.has(d) && declared.set(d, { input: i.name, axis }));
  const dimCache = new Map<string, string>();
  const declaredDim = (d: string): string => {
    let s = dimCache.get(d);
    if (!s) {
      const { input, axis } = declared.get(d)!;
      dimCache.set(d, (s = b.op('Shape', [input], { start: axis, end: axis + 1 })));
    }
    return s;
  };
  const shapeCache = new Map<string, string>();
  const shapeOf = (v: string): string => {
    let s = shapeCache.get(v);
    if (s) return s;
    const dims = (shapes.get(v) ?? graph.valueType(v))?.shape;
    if (dims?.every((d) => typeof d === 'number' || (typeof d === 'string' && declared.has(d)))) {
      // runs of static dims as one constant each, symbolic dims from their inputs
      const parts: string[] = [];
      let run: number[] = [];
      for (const d of dims) {
        if (typeof d === 'number') run.push(d);
        else {
          if (run.length) parts.push(b.i64(run));
          run = [];
          parts.push(declaredDim(d as string));
        }
      }
      if (run.length) parts.push(b.i64(run));
      s = parts.length === 0 ? b.i64([]) : parts.length === 1 ? parts[0] : b.op('Concat', parts, { axis: 0 });
    } else {
      s = b.op('Shape', [v]);
    }
    shapeCache.set(v, s);
    return s;
  };
  const shape = (v: string): Dim[] => {
    const info = shapes.get(v) ?? graph.valueType(v);
    if (!info?.shape) {
      throw new GraftError('MODEL_UNSUPPORTED', `the shape of "${v}" is unknown, so its gradient cannot be built. Give the model static input dimensions (except batch).`, { subject: v });
    }
    return info.shape;
  };
  const staticAxes = (v: string, axes: readonly number[], what: string): number[] => {
    const s = shape(v);
    return axes.map((a) => {
      const d = s[a < 0 ? s.length + a : a];
      if (typeof d !== 'number') {
        throw new GraftError('MODEL_UNSUPPORTED', `${what} needs a static size for axis ${a} of "${v}" (got ${d ?? 'unknown'}). Export the model with fixed image size.`, { subject: v });
      }
      return d;
    });
  };
  const constantValue = (v: string): number[] | undefined => {
    const init = graph.initializers.get(v);
    if (init) return init.dtype === 'string' ? undefined : toNumbers(init);
    const p = forward.find((n) => n.opType === 'Constant' && n.outputs[0] === v);
    const t = p?.tensor('value');
    if (t) return toNumbers(t);
    const vi = p?.ints('value_ints') ?? p?.floats('value_floats');
    if (vi) return [...vi];
    const one = p?.float('value_float') ?? p?.int('value_int');
    return one === undefined ? undefined : [one];
  };
  const unbroadcast = (g: string, input: string, output: string): string => {
    const si = shape(input);
    const so = shape(output);
    const lead = so.length - si.length;
    const axes: number[] = [];
    for (let a = 0; a < so.length; a++) {
      if (a < lead) {
        axes.push(a);
        continue;
      }
      const di = si[a - lead];
      const dout = so[a];
      if (di === 1 && dout !== 1) axes.push(a);
      else if (di === null || (dout === null && di !== dout)) {
        throw new GraftError('MODEL_UNSUPPORTED', `cannot tell how "${input}" was broadcast (unknown dims); give the model static shapes.`, { subject: input });
      }
    }
    if (axes.length === 0) return g;
    // only leading (prepended) axes reduced: keepdims=0 already gives the input's shape
    if (axes.length === lead) return b.op('ReduceSum', [g, b.i64(axes)], { keepdims: 0 });
    const summed = b.op('ReduceSum', [g, b.i64(axes)], { keepdims: 1 });
    if (lead === 0) return summed;
    return b.op('Reshape', [summed, shapeOf(input)]);
  };

  const wantedInputs = new Map<Node, boolean[]>();
  for (const node of forward) {
    const diff = new Set(differentiableInputs(node, ruleFor(node)));
    const wanted = node.inputs.map((v, i) => !!v && diff.has(i) && needsGrad.has(v) && flows.has(v));
    if (wanted.some(Boolean) && node.outputs.some((o) => flows.has(o))) wantedInputs.set(node, wanted);
  }
  for (const node of wantedInputs.keys()) ruleFor(node)?.prepareForward?.(node, b);

  const differentiated: Node[] = [];
  for (let k = forward.length - 1; k >= 0; k--) {
    const node = forward[k];
    const rule = ruleFor(node);
    const wanted = wantedInputs.get(node);
    if (!wanted) continue;
    const dYs = node.outputs.map((o) => (o && flows.has(o) ? gradOf(o) : undefined));
    if (dYs.every((d) => d === undefined)) continue;
    if (!rule) {
      throw new GraftError(
        'NO_GRADIENT_RULE',
        `graft has no gradient rule for ONNX op ${node.domain ? node.domain + '.' : ''}${node.opType} (node "${node.name}"), so it cannot fine-tune through it. Freeze the layers up to and including it (e.g. --unfreeze with fewer stages) or use --mode head.`,
        { subject: node.name },
      );
    }
    const ctx: RuleContext = {
      node,
      b,
      opset,
      options,
      dY: (i = 0) => dYs[i],
      dYOrZeros: (i) => dYs[i] ?? b.op('ConstantOfShape', [shapeOf(node.outputs[i])], { value: zeroLike(shapes, node.outputs[i]) }),
      needs: (i) => wanted[i] ?? false,
      grad: (i, value) => {
        if (!wanted[i]) return;
        const v = node.inputs[i];
        let list = contributions.get(v);
        if (!list) contributions.set(v, (list = []));
        list.push(value);
      },
      shape,
      staticDims: (v, what) => staticAxes(v, shape(v).map((_, i) => i), what),
      staticAxes,
      shapeOf,
      unbroadcast,
      constantValue,
    };
    rule.backward(ctx);
    differentiated.push(node);
  }

  const grads = new Map<string, string>();
  for (const w of req.wrt) {
    let g = gradOf(w);
    if (!g) {
      // a trainable value the loss does not depend on: its gradient is exactly zero
      g = b.op('ConstantOfShape', [shapeOf(w)], { value: zeroLike(shapes, w, graph) });
    }
    grads.set(w, g);
  }
  differentiated.reverse();
  return { grads, differentiated };
}

function zeroLike(shapes: ReadonlyMap<string, ValueInfo>, v: string, graph?: Graph) {
  const dtype = shapes.get(v)?.dtype ?? graph?.valueType(v)?.dtype ?? 'float32';
  if (dtype === 'float64') return { dtype, dims: [1], data: new Float64Array(1) } as const;
  return { dtype: 'float32', dims: [1], data: new Float32Array(1) } as const;
}
