/**
 * Graph surgery for transfer learning: find a model's classifier and its feature layers, cut a model at a
 * feature value, fold BatchNormalization into convolutions, drop no-op nodes, count parameters.
 */
import { GraftError } from '../errors.js';
import { float32, numel, type Tensor } from '../onnx/tensor.js';
import { GraphBuilder } from './builder.js';
import { Model, topologicalOrder, type Graph } from './graph.js';
import { attr, isDefaultDomain, type Dim, type Node } from './ir.js';
import { inferShapes } from './shapes.js';

const graphOf = (t: Graph | Model): Graph => (t instanceof Model ? t.graph : t);
const isDefault = (n: Node) => isDefaultDomain(n.domain);
const FLOAT_TYPES = new Set(['float32', 'float16', 'bfloat16', 'float64']);

/** The initializer a value comes from, following Identity nodes (torch shares equal weights through them). */
function sourceInitializer(g: Graph, name: string | undefined, producer: ReadonlyMap<string, Node>): string | undefined {
  for (let i = 0; name && i < 64; i++) {
    if (g.initializers.has(name)) return name;
    const p = producer.get(name);
    if (!p || p.opType !== 'Identity' || !isDefault(p)) return undefined;
    name = p.inputs[0];
  }
  return undefined;
}

/** A constant tensor by value name: an initializer (possibly through Identity), or a Constant node's tensor. */
export function constantOf(g: Graph, name: string | undefined, producer: ReadonlyMap<string, Node>): Tensor | undefined {
  if (!name) return undefined;
  const init = sourceInitializer(g, name, producer);
  if (init) return g.initializers.get(init);
  const p = producer.get(name);
  return p && p.opType === 'Constant' && isDefault(p) ? p.tensor('value') : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// classifier

export interface ClassifierInfo {
  /** How the last layer computes: Gemm, MatMul (+ Add), or a 1×1 Conv (SqueezeNet / Keras MobileNet). */
  kind: 'gemm' | 'matmul' | 'conv';
  /** The graph output the walk started from. */
  output: string;
  numClasses: number | null;
  /** True when the output is a softmax over the classes. */
  outputIsProbabilities: boolean;
  /** The activation between the classifier and the output, if any. */
  outputActivation: 'softmax' | 'log-softmax' | 'sigmoid' | null;
  /** The last layer's nodes and everything after them up to the output, in graph order (what a new head replaces). */
  classifierNodes: Node[];
  /** Input of the last layer with Dropout/Identity skipped: the penultimate feature ([N, C], or [N, C, H, W] for conv classifiers). */
  featureValue: string;
  featureShape?: Dim[];
  /**
   * Input of the whole stack of fully connected layers when several are stacked (Dense 256 → Dense 128 → Dense 5:
   * the input of Dense 256, e.g. a Flatten output); equals featureValue when there is one layer.
   */
  stackInput: string;
  stackInputShape?: Dim[];
  /** Nodes of the whole stack up to the output, in graph order. */
  stackNodes: Node[];
  /** Number of fully connected layers in the stack (1 for a plain linear classifier). */
  stackDepth: number;
  /** The 4-D map the features were pooled from (input of GlobalAveragePool / ReduceMean / global AveragePool), if any. */
  spatialValue?: string;
  spatialShape?: Dim[];
}

const OUTPUT_PASS = new Set(['Softmax', 'LogSoftmax', 'Sigmoid', 'Identity', 'Dropout', 'Flatten', 'Reshape', 'Squeeze']);
/** Ops that may sit between a 1×1-conv classifier and the output (SqueezeNet: Conv → Relu → GAP → Flatten). */
const AFTER_CONV_CLASSIFIER = new Set(['Relu', 'GlobalAveragePool', 'ReduceMean', 'AveragePool']);
const NOOP = new Set(['Dropout', 'Identity']);
const DENSE_ACTIVATIONS = new Set(['Relu', 'Clip', 'LeakyRelu', 'Elu', 'Selu', 'Tanh', 'Sigmoid', 'HardSwish', 'Gelu', 'Softplus', 'PRelu', 'BatchNormalization']);
const FLATTENING = new Set(['Flatten', 'Reshape', 'Squeeze', 'Dropout', 'Identity', 'Transpose']);
const POOLS = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean', 'ReduceMax', 'AveragePool', 'MaxPool']);

interface Layer {
  kind: ClassifierInfo['kind'];
  nodes: Node[];
  input: string;
  units: number | null;
}

/** The fully connected layer producing `v` (Gemm, MatMul, MatMul + Add) with constant 2-D weights, if any. */
function denseAt(g: Graph, v: string, producer: Map<string, Node>): Layer | undefined {
  const p = producer.get(v);
  if (!p || !isDefault(p)) return undefined;
  if (p.opType === 'Gemm') {
    const w = constantOf(g, p.input(1), producer);
    if (!w || w.dims.length !== 2) return undefined;
    return { kind: 'gemm', nodes: [p], input: p.inputs[0], units: w.dims[p.int('transB', 0) ? 0 : 1] };
  }
  const matmul = (m: Node | undefined): Layer | undefined => {
    if (!m || m.opType !== 'MatMul' || !isDefault(m)) return undefined;
    const w = constantOf(g, m.input(1), producer);
    return w && w.dims.length === 2 ? { kind: 'matmul', nodes: [m], input: m.inputs[0], units: w.dims[1] } : undefined;
  };
  if (p.opType === 'MatMul') return matmul(p);
  if (p.opType === 'Add') {
    for (const [a, b] of [
      [0, 1],
      [1, 0],
    ]) {
      const l = matmul(producer.get(p.inputs[a]));
      if (l && constantOf(g, p.input(b), producer)) return { ...l, nodes: [...l.nodes, p] };
    }
  }
  return undefined;
}

function conv1x1At(g: Graph, v: string, producer: Map<string, Node>): Layer | undefined {
  const p = producer.get(v);
  if (!p || p.opType !== 'Conv' || !isDefault(p)) return undefined;
  const w = constantOf(g, p.input(1), producer);
  if (!w || w.dims.length < 3 || w.dims.slice(2).some((k) => k !== 1)) return undefined;
  return { kind: 'conv', nodes: [p], input: p.inputs[0], units: w.dims[0] };
}

/** Walks back from `v` through producers whose op is in `ops` (following their first input). */
function skip(v: string, producer: Map<string, Node>, ops: Set<string>): string {
  for (let p = producer.get(v); p && ops.has(p.opType) && p.inputs[0]; p = producer.get(v)) v = p.inputs[0];
  return v;
}

/**
 * Walks back from the graph output through Softmax/LogSoftmax/Identity/Dropout/Flatten/Reshape/Squeeze to
 * the final classifier (Gemm, MatMul (+Add) or a 1×1 Conv), then further back through any stack of fully
 * connected layers and the global pooling that feeds them. Throws MODEL_UNSUPPORTED when the output is not
 * produced by such a classifier.
 */
export function findClassifier(target: Graph | Model, opts: { output?: string } = {}): ClassifierInfo {
  const g = graphOf(target);
  const output = opts.output ?? g.outputs[0]?.name;
  if (!output) throw new GraftError('MODEL_UNSUPPORTED', 'the model has no outputs, so it has no classifier.');
  if (!opts.output && g.outputs.length > 1) {
    // several outputs (e.g. logits and probabilities): the first is as good a start as any, unless it is not a classifier
    for (const o of g.outputs) {
      try {
        return findClassifier(target, { output: o.name });
      } catch {
        // try the next output
      }
    }
  }
  const { producer } = g.index();
  const after: Node[] = [];
  let activation: ClassifierInfo['outputActivation'] = null;
  let v = output;
  let layer: Layer | undefined;
  let afterConv = false;
  for (;;) {
    layer = afterConv ? conv1x1At(g, v, producer) : (denseAt(g, v, producer) ?? conv1x1At(g, v, producer));
    if (layer) break;
    const p = producer.get(v);
    if (!p || !p.inputs[0] || !isDefault(p) || !(OUTPUT_PASS.has(p.opType) || AFTER_CONV_CLASSIFIER.has(p.opType))) {
      const what = p ? `a ${p.opType} node ("${p.name}")` : g.inputs.some((i) => i.name === v) ? 'the graph input' : `"${v}"`;
      throw new GraftError(
        'MODEL_UNSUPPORTED',
        `no classifier found: walking back from output "${output}" reached ${what} instead of a Gemm, MatMul or 1×1 Conv. ` +
          'Name the feature layer to use explicitly; featureCandidates() lists them.',
        { subject: output },
      );
    }
    if (AFTER_CONV_CLASSIFIER.has(p.opType)) afterConv = true;
    if (activation === null && p.opType === 'Softmax') activation = 'softmax';
    if (activation === null && p.opType === 'LogSoftmax') activation = 'log-softmax';
    if (activation === null && p.opType === 'Sigmoid') activation = 'sigmoid';
    after.push(p);
    v = p.inputs[0];
  }

  const shapes = inferShapes(target);
  const shape = (name: string) => shapes.get(name)?.shape;
  const featureValue = skip(layer.input, producer, NOOP);
  let stackInput = featureValue;
  let depth = 1;
  if (layer.kind !== 'conv') {
    for (;;) {
      const dense = denseAt(g, skip(stackInput, producer, DENSE_ACTIVATIONS), producer);
      if (!dense) break;
      depth++;
      stackInput = skip(dense.input, producer, NOOP);
    }
  }
  const order = topologicalOrder(g);

  let spatialValue: string | undefined;
  const flat = skip(stackInput, producer, FLATTENING);
  const pool = producer.get(flat);
  const inputRank = (n: Node) => shape(n.inputs[0])?.length;
  if (pool && POOLS.has(pool.opType) && inputRank(pool) === 4 && isGlobal(pool, shape)) spatialValue = pool.inputs[0];
  else if (shape(stackInput)?.length === 4) spatialValue = stackInput;

  return {
    kind: layer.kind,
    output,
    numClasses: layer.units ?? (shape(output)?.[1] as number | undefined) ?? null,
    outputIsProbabilities: activation === 'softmax',
    outputActivation: activation,
    classifierNodes: collectBetween(featureValue, output, order),
    featureValue,
    featureShape: shape(featureValue),
    stackInput,
    stackInputShape: shape(stackInput),
    stackNodes: collectBetween(stackInput, output, order),
    stackDepth: depth,
    spatialValue,
    spatialShape: spatialValue ? shape(spatialValue) : undefined,
  };
}

/** Nodes of `order` on a path from `from` to `to` (nodes reading `from`, directly or not, that `to` depends on). */
function collectBetween(from: string, to: string, order: Node[]): Node[] {
  const reach = new Set([from]);
  const downstream: Node[] = [];
  for (const n of order) {
    if (n.inputs.some((i) => reach.has(i))) {
      downstream.push(n);
      for (const o of n.outputs) if (o) reach.add(o);
    }
  }
  const need = new Set([to]);
  const out: Node[] = [];
  for (let i = downstream.length - 1; i >= 0; i--) {
    const n = downstream[i];
    if (n.outputs.some((o) => need.has(o))) {
      out.unshift(n);
      for (const x of n.inputs) if (x) need.add(x);
    }
  }
  return out;
}

/** Whether a pooling node reduces the whole spatial extent (its output is 1×1). */
function isGlobal(n: Node, shape: (v: string) => Dim[] | undefined): boolean {
  if (n.opType === 'GlobalAveragePool' || n.opType === 'GlobalMaxPool') return true;
  const out = shape(n.outputs[0]);
  if (n.opType === 'ReduceMean' || n.opType === 'ReduceMax') return !!out && (out.length === 2 || (out.length === 4 && out[2] === 1 && out[3] === 1));
  return !!out && out.length === 4 && out[2] === 1 && out[3] === 1;
}

// ---------------------------------------------------------------------------------------------------------
// feature layers and cut points

export interface FeatureCandidate {
  /** The value to pass to cutAt. */
  value: string;
  /** Producing node's name and op type. */
  node: string;
  opType: string;
  shape: Dim[];
  channels: number;
  /** Position of the producing node in topological order (depth). */
  index: number;
  /** True when every path from the input to the output passes through this value (see cutPoints). */
  blockEnd: boolean;
}

const FEATURE_OPS = new Set([
  'Relu', 'Clip', 'LeakyRelu', 'PRelu', 'Elu', 'Selu', 'Celu', 'HardSwish', 'Gelu', 'Mish', 'Add', 'Sum', 'Concat',
  'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean', 'Flatten', 'BatchNormalization',
]);

/** x * sigmoid(x): SiLU / Swish as exporters write it (EfficientNet). */
function isSilu(n: Node, producer: Map<string, Node>): boolean {
  if (n.opType !== 'Mul') return false;
  const [a, b] = n.inputs;
  const sa = producer.get(a);
  const sb = producer.get(b);
  return (sb?.opType === 'Sigmoid' && sb.inputs[0] === a) || (sa?.opType === 'Sigmoid' && sa.inputs[0] === b);
}

/**
 * Candidate feature layers in depth order: outputs of activations, Add/Concat, pools, Flatten and
 * BatchNormalization whose shape is [N, C, H, W] or [N, C] with a known C. The classifier (last layer to the
 * output) is left out; fully connected layers below it are candidates.
 */
export function featureCandidates(target: Graph | Model): FeatureCandidate[] {
  const g = graphOf(target);
  const shapes = inferShapes(target);
  const { producer } = g.index();
  const cuts = new Set(cutPoints(g));
  const live = liveValues(g);
  const outputs = new Set(g.outputs.map((o) => o.name));
  let head = new Set<Node>();
  try {
    head = new Set(findClassifier(target).classifierNodes);
  } catch {
    // no recognisable classifier: every layer is a candidate
  }
  const out: FeatureCandidate[] = [];
  topologicalOrder(g).forEach((n, index) => {
    if (!isDefault(n) || head.has(n) || !(FEATURE_OPS.has(n.opType) || isSilu(n, producer))) return;
    const v = n.outputs[0];
    const shape = shapes.get(v)?.shape;
    if (!v || outputs.has(v) || !live.has(v) || !shape || (shape.length !== 4 && shape.length !== 2)) return;
    const channels = shape[1];
    if (typeof channels !== 'number') return;
    out.push({ value: v, node: n.name, opType: n.opType, shape, channels, index, blockEnd: cuts.has(v) });
  });
  return out;
}

/** Values some graph output depends on. */
function liveValues(g: Graph): Set<string> {
  const { producer } = g.index();
  const live = new Set<string>();
  const stack = g.outputs.map((o) => o.name);
  while (stack.length) {
    const v = stack.pop()!;
    if (live.has(v)) continue;
    live.add(v);
    for (const i of producer.get(v)?.inputs ?? []) if (i) stack.push(i);
  }
  return live;
}

/**
 * Values every path from the graph inputs to the outputs passes through, in topological order: the places a
 * network can be split into stages. A value qualifies when no other input-dependent value produced before it
 * is read after it (no edge "jumps over" it); constants and dead branches are ignored.
 */
export function cutPoints(target: Graph | Model): string[] {
  const g = graphOf(target);
  const live = liveValues(g);
  const order = topologicalOrder(g).filter((n) => n.outputs.some((o) => live.has(o)));
  const dynamic = new Set(g.inputs.map((i) => i.name));
  const pos = new Map<string, number>(g.inputs.map((i) => [i.name, -1]));
  const lastUse = new Map<string, number>();
  order.forEach((n, i) => {
    for (const x of n.inputs) if (x && dynamic.has(x)) lastUse.set(x, i);
    if (n.inputs.some((x) => dynamic.has(x))) {
      for (const o of n.outputs) {
        if (!o) continue;
        dynamic.add(o);
        pos.set(o, i);
      }
    }
  });
  for (const o of g.outputs) if (dynamic.has(o.name)) lastUse.set(o.name, order.length);
  // open[i] = number of input-dependent values produced at or before node i and read after it
  const diff = new Array<number>(order.length + 2).fill(0);
  for (const [v, p] of pos) {
    const last = lastUse.get(v);
    if (last === undefined || last <= p) continue;
    diff[p + 1]++;
    diff[last + 1]--;
  }
  const cuts: string[] = [];
  let open = diff[0];
  for (let i = 0; i < order.length; i++) {
    open += diff[i + 1];
    if (open !== 1) continue;
    for (const o of order[i].outputs) if (o && pos.get(o) === i && (lastUse.get(o) ?? -1) > i) cuts.push(o);
  }
  return cuts;
}

// ---------------------------------------------------------------------------------------------------------
// cutting

/**
 * The part of the model after `value` — a cut point (see cutPoints), so nothing after it reads anything
 * before it: a new model whose single input is `value`. With cutAt, it splits a network into a frozen
 * prefix (run once, its output cached) and a trainable tail.
 */
export function tailFrom(model: Model, value: string): Model {
  const m = model.clone();
  const g = m.graph;
  const v = resolveValue(g, value);
  if (!cutPoints(m).includes(v)) {
    throw new GraftError('MODEL_UNSUPPORTED', `"${v}" is not a point every path of the network passes through, so the network cannot be split there. graft inspect lists the cut points.`, { subject: v });
  }
  const info = inferShapes(m).get(v);
  if (!info) throw new GraftError('MODEL_UNSUPPORTED', `the type of "${v}" is unknown.`, { subject: v });
  g.nodes = g.nodes.filter((n) => !n.outputs.includes(v));
  g.inputs = [{ name: v, dtype: info.dtype, shape: info.shape && [...info.shape] }];
  g.prune({ dropInputs: false });
  g.valueInfo.clear();
  return m;
}

export interface CutOptions {
  /** 'avg' (default for 4-D values): GlobalAveragePool + Flatten to [N, C]; 'none': the value as is. */
  pool?: 'avg' | 'none';
  /** Name of the new output when pooling adds nodes (default "features", or a fresh variant). */
  outputName?: string;
}

/** Resolves a value name or a node name (→ its first output); LAYER_NOT_FOUND with close names otherwise. */
export function resolveValue(g: Graph, name: string): string {
  const produced = new Set(g.nodes.flatMap((n) => n.outputs.filter((o) => o)));
  if (produced.has(name)) return name;
  const node = g.findNode(name);
  if (node && node.outputs[0]) return node.outputs[0];
  const pool = [...new Set([...produced, ...g.nodes.map((n) => n.name)])];
  const close = closeNames(name, pool, 5);
  const why = g.initializers.has(name) ? ` "${name}" is a weight, not a layer output.` : g.inputs.some((i) => i.name === name) ? ` "${name}" is the graph input.` : '';
  throw new GraftError(
    'LAYER_NOT_FOUND',
    `no layer or value named "${name}" in the model.${why}${close.length ? ` Close names: ${close.map((c) => `"${c}"`).join(', ')}.` : ''} ` +
      'featureCandidates() lists the layers a model can be cut at.',
    { subject: name },
  );
}

function closeNames(name: string, pool: string[], k: number): string[] {
  const q = name.toLowerCase();
  const scored = pool.map((p) => {
    const l = p.toLowerCase();
    const contains = l.includes(q) || q.includes(l);
    return { p, score: (contains ? 0 : 1000) + editDistance(q, l) };
  });
  const best = scored.sort((a, b) => a.score - b.score || a.p.localeCompare(b.p)).slice(0, k);
  // far-off names are noise, not help
  return best.filter((s) => s.score < 1000 || s.score - 1000 <= Math.max(3, q.length / 2)).map((s) => s.p);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * A copy of the model whose single output is `value` (a value name or a node name), pooled to [N, C] when
 * it is a 4-D map and `pool` is 'avg' (the default for 4-D), with everything past it removed. Metadata,
 * opset imports and the input are kept; the input model is not changed.
 */
export function cutAt(model: Model, value: string, opts: CutOptions = {}): Model {
  const m = model.clone();
  const g = m.graph;
  const v = resolveValue(g, value);
  const info = inferShapes(m).get(v);
  const rank = info?.shape?.length;
  const pool = opts.pool ?? (rank === 4 ? 'avg' : 'none');
  let out = v;
  if (pool === 'avg' && rank !== 2) {
    if (rank !== 4) {
      throw new GraftError(
        'INVALID_ARGUMENT',
        `cannot average-pool "${v}": it is ${rank === undefined ? 'of unknown rank' : `${rank}-D`}, and pooling needs an [N, C, H, W] map. Cut with pool 'none'.`,
        { subject: v },
      );
    }
    const b = new GraphBuilder(g);
    const name = b.fresh(opts.outputName ?? 'features');
    out = b.op('Flatten', [b.op('GlobalAveragePool', [v], {}, { name: `${v}_pool` })], { axis: 1 }, { name: `${v}_flatten`, outputs: [name] });
  }
  g.outputs = [{ name: out, dtype: info?.dtype ?? 'float32' }];
  g.prune({ dropInputs: true });
  const shape = inferShapes(m).get(out)?.shape;
  g.outputs = [{ name: out, dtype: info?.dtype ?? 'float32', ...(shape ? { shape } : {}) }];
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// counting

/** Inputs that hold constants rather than learned weights, per op (float ones only; integer inputs never count). */
const NON_PARAMETER_INPUTS: Record<string, readonly number[]> = {
  Clip: [1, 2],
  Resize: [1, 2],
  Upsample: [1],
  Pad: [2],
  Dropout: [1],
  OneHot: [2],
  Range: [0, 1, 2],
};

export interface ParamCount {
  /** weights + bnStats. */
  total: number;
  /** Learned float parameters: conv/dense weights and biases, norm scales and shifts. */
  weights: number;
  /** BatchNormalization running means and variances. */
  bnStats: number;
}

/**
 * Float parameters in initializers read by compute nodes (directly or through Identity). Integer tensors
 * (shapes, axes) and scalar constants (Clip bounds) are not parameters. `trainableOnly` limits the count
 * to the named values (initializer names, or the names of the Identity outputs compute nodes read).
 */
export function countParams(target: Graph | Model, opts: { trainableOnly?: Set<string> } = {}): ParamCount {
  const g = graphOf(target);
  const { producer } = g.index();
  // keyed by the name compute nodes read: torch shares equal-valued weights through Identity nodes named
  // after each parameter, and those stay separate parameters
  const params = new Map<string, { size: number; kind: 'weight' | 'bn'; source: string }>();
  for (const n of g.nodes) {
    if (n.opType === 'Identity') continue;
    n.inputs.forEach((name, i) => {
      const source = sourceInitializer(g, name, producer);
      const t = source ? g.initializers.get(source) : undefined;
      if (!t || !FLOAT_TYPES.has(t.dtype) || t.dims.length === 0) return;
      if (NON_PARAMETER_INPUTS[n.opType]?.includes(i)) return;
      const bn = n.opType === 'BatchNormalization' && (i === 3 || i === 4);
      // a tensor used both ways counts as a weight
      if (!bn || !params.has(name)) params.set(name, { size: numel(t.dims), kind: bn ? 'bn' : 'weight', source: source! });
    });
  }
  let weights = 0;
  let bnStats = 0;
  for (const [name, { size, kind, source }] of params) {
    if (opts.trainableOnly && !opts.trainableOnly.has(name) && !opts.trainableOnly.has(source)) continue;
    if (kind === 'bn') bnStats += size;
    else weights += size;
  }
  return { total: weights + bnStats, weights, bnStats };
}

/** How many nodes of each op type, most frequent first (ties by name); other domains as "domain.Op". */
export function opHistogram(target: Graph | Model): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of graphOf(target).nodes) {
    const key = isDefault(n) ? n.opType : `${n.domain}.${n.opType}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return new Map([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

// ---------------------------------------------------------------------------------------------------------
// rewrites

function usesOf(g: Graph): Map<string, number> {
  const uses = new Map<string, number>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const o of g.outputs) uses.set(o.name, (uses.get(o.name) ?? 0) + 1);
  for (const name of subgraphReads(g)) uses.set(name, (uses.get(name) ?? 0) + 1);
  return uses;
}

/** Names read inside subgraph attributes (If/Loop/Scan bodies), which may capture outer values. */
function subgraphReads(g: Graph): Set<string> {
  const names = new Set<string>();
  type G = { node?: { input?: string[] | null; attribute?: A[] | null }[] | null };
  type A = { g?: G | null; graphs?: G[] | null };
  const visit = (sub: G | null | undefined) => {
    for (const n of sub?.node ?? []) {
      for (const i of n.input ?? []) if (i) names.add(i);
      for (const a of n.attribute ?? []) {
        visit(a.g);
        for (const s of a.graphs ?? []) visit(s);
      }
    }
  };
  for (const n of g.nodes) for (const a of n.attrs.values()) if (a.kind === 'proto') visit(a.value as A as never);
  return names;
}

function floatData(t: Tensor | undefined): Float32Array | undefined {
  return t && t.dtype === 'float32' ? (t.data as Float32Array) : undefined;
}

/**
 * Folds inference-mode BatchNormalization into the Conv or Gemm before it, when that layer has constant
 * float32 weights and the BN is its only reader. Returns a new model; the input is not changed.
 */
export function foldBatchNorm(model: Model): Model {
  const m = model.clone();
  const g = m.graph;
  const b = new GraphBuilder(g);
  let folded = 0;
  const removed = new Set<Node>();
  const { producer } = g.index();
  const uses = usesOf(g);
  const drop = (name: string | undefined) => name && uses.set(name, (uses.get(name) ?? 1) - 1);
  for (const bn of g.nodes.filter((n) => n.opType === 'BatchNormalization' && isDefault(n))) {
    if (bn.int('training_mode', 0) === 1 || bn.int('spatial', 1) === 0) continue;
    if (bn.outputs.slice(1).some((o) => o && uses.has(o))) continue;
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => floatData(constantOf(g, bn.input(i), producer)));
    if (!gamma || !beta || !mean || !variance) continue;
    const x = bn.inputs[0];
    const layer = producer.get(x);
    if (!layer || !isDefault(layer) || (layer.opType !== 'Conv' && layer.opType !== 'Gemm') || uses.get(x) !== 1) continue;
    const wName = layer.inputs[1];
    const w = constantOf(g, wName, producer);
    const wData = floatData(w);
    if (!w || !wData) continue;
    const channels = gamma.length;
    const eps = bn.float('epsilon', 1e-5);
    const scale = Float64Array.from(gamma, (gm, c) => gm / Math.sqrt(variance[c] + eps));

    const newW = new Float32Array(wData.length);
    let bias: Float64Array;
    if (layer.opType === 'Conv') {
      if (w.dims[0] !== channels) continue;
      const per = wData.length / channels;
      for (let i = 0; i < wData.length; i++) newW[i] = wData[i] * scale[Math.floor(i / per)];
      const old = layer.input(2) ? floatData(constantOf(g, layer.inputs[2], producer)) : new Float32Array(channels);
      if (!old || old.length !== channels) continue;
      bias = Float64Array.from(old);
    } else {
      const transB = layer.int('transB', 0) === 1;
      if (w.dims.length !== 2 || w.dims[transB ? 0 : 1] !== channels) continue;
      const cT = layer.input(2) ? constantOf(g, layer.inputs[2], producer) : undefined;
      const cData = layer.input(2) ? floatData(cT) : new Float32Array(1);
      // C of [N] / [1, N] / a scalar folds; a per-row C ([M, N]) would not fit a per-column bias
      const perColumn = cT && numel(cT.dims) === channels && cT.dims.slice(0, -1).every((d) => d === 1);
      if (!cData || (cData.length !== 1 && !perColumn)) continue;
      const [rows, cols] = w.dims;
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) newW[r * cols + c] = wData[r * cols + c] * scale[transB ? r : c];
      const betaC = layer.float('beta', 1);
      bias = Float64Array.from({ length: channels }, (_, c) => betaC * cData[cData.length === 1 ? 0 : c]);
      layer.set('beta', attr.f(1));
    }
    const newB = Float32Array.from(bias, (v, c) => (v - mean[c]) * scale[c] + beta[c]);

    // a weight only this layer reads is replaced in place (keeping its name); shared ones get a copy
    const own = (name: string | undefined) => !!name && g.initializers.has(name) && uses.get(name) === 1;
    if (own(wName)) g.initializers.set(wName, float32(w.dims, newW));
    else {
      drop(wName);
      layer.inputs[1] = b.initializer(`${wName}_folded`, float32(w.dims, newW));
      uses.set(layer.inputs[1], 1);
    }
    const bName = layer.input(2);
    if (bName && own(bName)) g.initializers.set(bName, float32([channels], newB));
    else {
      drop(bName);
      while (layer.inputs.length < 3) layer.inputs.push('');
      layer.inputs[2] = b.initializer(wName.endsWith('.weight') ? `${wName.slice(0, -'.weight'.length)}.bias` : `${wName}_bias`, float32([channels], newB));
      uses.set(layer.inputs[2], 1);
    }
    for (const p of bn.inputs) drop(p);
    layer.outputs[0] = bn.outputs[0];
    producer.set(bn.outputs[0], layer);
    producer.delete(x);
    g.valueInfo.delete(x);
    folded++;
    removed.add(bn);
  }
  g.nodes = g.nodes.filter((n) => !removed.has(n));
  if (folded) dropUnusedConstants(g);
  return m;
}

/** Removes initializers nobody reads, and Identity nodes over initializers whose output nobody reads. */
function dropUnusedConstants(g: Graph): void {
  for (let changed = true; changed; ) {
    const uses = usesOf(g);
    const before = g.nodes.length;
    g.nodes = g.nodes.filter((n) => !(n.opType === 'Identity' && g.initializers.has(n.inputs[0]) && !uses.has(n.outputs[0])));
    changed = g.nodes.length !== before;
  }
  const uses = usesOf(g);
  for (const k of [...g.initializers.keys()]) if (!uses.has(k)) g.initializers.delete(k);
}

/** Inference-mode Dropout: no training_mode input (or a constant false one) and an unused mask. */
function isNoopDropout(g: Graph, n: Node, uses: Map<string, number>): boolean {
  if (n.opType !== 'Dropout') return false;
  if (n.outputs[1] && uses.has(n.outputs[1])) return false;
  const tm = n.input(2);
  if (!tm) return true;
  const t = g.initializers.get(tm);
  return !!t && t.dtype === 'bool' && (t.data as Uint8Array)[0] === 0;
}

/**
 * Removes Identity and inference-mode Dropout nodes by reading their input directly, in place. A node whose
 * output is a graph output stays only when its input is a graph input or weight (the output must be
 * produced by something). Returns how many nodes were removed.
 */
export function removeIdentities(g: Graph): number {
  let removed = 0;
  for (const n of [...g.nodes]) {
    if (!isDefault(n) || (n.opType !== 'Identity' && n.opType !== 'Dropout')) continue;
    const uses = usesOf(g);
    if (n.opType === 'Dropout' && !isNoopDropout(g, n, uses)) continue;
    const src = n.inputs[0];
    const dst = n.outputs[0];
    if (!src || !dst) continue;
    const isOutput = (v: string) => g.outputs.some((o) => o.name === v);
    const reads = subgraphReads(g);
    if (reads.has(dst)) continue;
    if (!isOutput(dst)) {
      for (const c of g.nodes) c.inputs = c.inputs.map((i) => (i === dst ? src : i));
    } else {
      // the output name must survive: rename the input's value to it instead
      const { producer } = g.index();
      if (!producer.has(src) || isOutput(src) || reads.has(src)) continue;
      for (const c of g.nodes) {
        c.inputs = c.inputs.map((i) => (i === src ? dst : i));
        c.outputs = c.outputs.map((o) => (o === src ? dst : o));
      }
      g.valueInfo.delete(src);
    }
    g.valueInfo.delete(dst);
    g.nodes = g.nodes.filter((x) => x !== n);
    removed++;
  }
  return removed;
}
