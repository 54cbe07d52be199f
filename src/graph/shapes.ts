/**
 * Static shape inference: dtype and shape (numbers, symbols such as "N", null where unknown) of every value
 * an op rule covers. It also tracks the data of small tensors (shape vectors, axes, scales) so targets
 * computed in-graph — torch's Shape → Gather → Unsqueeze → Concat → Reshape — resolve to dims, symbolic
 * ones included. Unknown ops leave their outputs unknown; nothing here throws on a model it cannot read.
 */
import { GraftError } from '../errors.js';
import { numel, toNumbers, type DType } from '../onnx/tensor.js';
import { isStatic, mergeShapes } from './dims.js';
import { Model, topologicalOrder, type Graph } from './graph.js';
import { isDefaultDomain, type Dim, type Node, type ValueInfo } from './ir.js';
import { SHAPE_RULES } from './shape-rules.js';

export interface ShapeInferenceOptions {
  /** Overrides the declared shapes of graph inputs, e.g. `{ input: ['N', 3, 224, 224] }`. */
  inputShapes?: Record<string, Dim[]>;
  /** The default-domain opset; taken from the model when a Model is given, else 17. */
  opset?: number;
  /** Fill what inference cannot find from shapes the graph declares (value_info, outputs). Default true. */
  useDeclared?: boolean;
}

export interface ShapeInferenceResult {
  types: Map<string, ValueInfo>;
  /** Row-major data of small tensors whose contents are known (dims of shape vectors may be symbolic). */
  values: Map<string, Dim[]>;
}

/** Tensors up to this many elements have their data tracked. */
const MAX_TRACKED = 1024;

interface TypeInfo {
  dtype?: DType;
  shape?: Dim[];
}

/** What a rule sees of one node: its inputs' types, shapes and known data, and where to put its outputs. */
export interface InferCtx {
  readonly node: Node;
  readonly opset: number;
  /** True when input i is given (ONNX marks omitted optional inputs with an empty name). */
  has(i: number): boolean;
  dtype(i: number): DType | undefined;
  shape(i: number): Dim[] | undefined;
  /** Known row-major data of input i (elements may be symbolic dims or null). */
  value(i: number): Dim[] | undefined;
  /** Like value(), only when every element is a known number. */
  numbers(i: number): number[] | undefined;
  set(i: number, dtype: DType | undefined, shape: Dim[] | undefined, value?: Dim[]): void;
}

class Ctx implements InferCtx {
  constructor(
    readonly node: Node,
    readonly opset: number,
    private readonly types: Map<string, TypeInfo>,
    private readonly values: Map<string, Dim[]>,
  ) {}

  has(i: number): boolean {
    return !!this.node.input(i);
  }

  dtype(i: number): DType | undefined {
    const n = this.node.input(i);
    return n ? this.types.get(n)?.dtype : undefined;
  }

  shape(i: number): Dim[] | undefined {
    const n = this.node.input(i);
    const s = n ? this.types.get(n)?.shape : undefined;
    return s && [...s];
  }

  value(i: number): Dim[] | undefined {
    const n = this.node.input(i);
    const v = n ? this.values.get(n) : undefined;
    return v && [...v];
  }

  numbers(i: number): number[] | undefined {
    const v = this.value(i);
    return v && v.every((d): d is number => typeof d === 'number') ? v : undefined;
  }

  set(i: number, dtype: DType | undefined, shape: Dim[] | undefined, value?: Dim[]): void {
    const name = this.node.outputs[i];
    if (!name) return;
    this.types.set(name, { dtype, shape: shape && [...shape] });
    if (value && isStatic(shape) && numel(shape) === value.length && value.length <= MAX_TRACKED) this.values.set(name, value);
  }
}


/** Shapes, dtypes and small-tensor values of every value in the graph that inference can determine. */
export function inferShapesDetailed(target: Graph | Model, opts: ShapeInferenceOptions = {}): ShapeInferenceResult {
  const graph = target instanceof Model ? target.graph : target;
  const opset = opts.opset ?? (target instanceof Model ? target.opset : 17);
  const types = new Map<string, TypeInfo>();
  const values = new Map<string, Dim[]>();

  for (const [name, t] of graph.initializers) {
    types.set(name, { dtype: t.dtype, shape: [...t.dims] });
    if (t.dtype !== 'string' && numel(t.dims) <= MAX_TRACKED) values.set(name, toNumbers(t));
  }
  const inputNames = new Set(graph.inputs.map((i) => i.name));
  for (const name of Object.keys(opts.inputShapes ?? {})) {
    if (!inputNames.has(name)) {
      throw new GraftError('INVALID_ARGUMENT', `inputShapes names "${name}", which is not a graph input; the inputs are: ${[...inputNames].join(', ')}.`, {
        subject: name,
      });
    }
  }
  for (const inp of graph.inputs) types.set(inp.name, { dtype: inp.dtype, shape: opts.inputShapes?.[inp.name] ?? inp.shape });

  const declared = new Map<string, ValueInfo>();
  if (opts.useDeclared ?? true) {
    for (const v of graph.valueInfo.values()) declared.set(v.name, v);
    for (const v of graph.outputs) declared.set(v.name, v);
  }

  for (const node of topologicalOrder(graph)) {
    const rule = isDefaultDomain(node.domain) ? SHAPE_RULES.get(node.opType) : undefined;
    if (rule) {
      try {
        rule(new Ctx(node, opset, types, values));
      } catch {
        // a malformed node (wrong attribute kinds, bad ranks) leaves its outputs unknown, as unknown ops do
      }
    }
    for (const o of node.outputs) {
      if (!o) continue;
      const inferred = types.get(o);
      const d = declared.get(o);
      if (!d) continue;
      if (!inferred) types.set(o, { dtype: d.dtype, shape: d.shape && [...d.shape] });
      else types.set(o, { dtype: inferred.dtype ?? d.dtype, shape: mergeShapes(inferred.shape, d.shape) });
    }
  }

  const out = new Map<string, ValueInfo>();
  for (const [name, t] of types) if (t.dtype) out.set(name, t.shape ? { name, dtype: t.dtype, shape: t.shape } : { name, dtype: t.dtype });
  return { types: out, values };
}

/** dtype and shape of every value inference can determine (inputs, initializers and node outputs). */
export function inferShapes(target: Graph | Model, opts: ShapeInferenceOptions = {}): Map<string, ValueInfo> {
  return inferShapesDetailed(target, opts).types;
}

/**
 * Runs inference and stores the results in the graph: intermediate values in `graph.valueInfo`, and
 * graph outputs get the dims they did not declare. Returns the inferred types.
 */
export function annotateShapes(target: Graph | Model, opts: ShapeInferenceOptions = {}): Map<string, ValueInfo> {
  const graph = target instanceof Model ? target.graph : target;
  const types = inferShapes(target, opts);
  const outputIndex = new Map(graph.outputs.map((o, i) => [o.name, i]));
  for (const node of graph.nodes) {
    for (const o of node.outputs) {
      const t = o ? types.get(o) : undefined;
      if (!t) continue;
      const at = outputIndex.get(o);
      if (at === undefined) {
        graph.valueInfo.set(o, { ...t, shape: t.shape && [...t.shape] });
      } else {
        const prev = graph.outputs[at];
        graph.outputs[at] = { name: o, dtype: prev.dtype, shape: mergeShapes(t.shape, prev.shape) };
      }
    }
  }
  return types;
}
