/**
 * Compiles a forward classifier into one ONNX "training step" graph that onnxruntime runs as an
 * ordinary inference session:
 *
 *   inputs   data [N,…], labels int64 [N], (sample weights [N]), trainable weights, dropout masks,
 *            running BN statistics (batch-statistics mode only)
 *   outputs  loss, logits, one gradient per trainable weight, updated BN statistics
 *
 * Frozen weights stay initializers, so ORT constant-folds and pre-packs them; only what leads from a
 * trainable weight to the loss is differentiated. Every shape except the batch is static, the batch
 * is symbolic, so one graph serves full and partial batches alike.
 */
import { GraftError } from '../errors.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Model } from '../graph/graph.js';
import { isDefaultDomain, type Dim, type Node, type ValueInfo } from '../graph/ir.js';
import { inferShapes } from '../graph/shapes.js';
import { lowerConvsToNchwc } from '../graph/nchwc.js';
import { float32, toNumbers } from '../onnx/tensor.js';
import { softmaxCrossEntropy } from './loss.js';
import type { GradOptions } from './rule.js';
import { buildBackward } from './sweep.js';

/** The opset training graphs are written in (ScatterElements with reduction needs ≥ 16). */
export const TRAIN_OPSET = 17;

export interface TrainStepOptions {
  /** Initializer names to train; everything else stays frozen. */
  trainable: Iterable<string>;
  /** The value holding the logits [N, K] (before any softmax). Default: the graph's only output. */
  logits?: string;
  /** Shape of the data input; its first dim should be symbolic (default: declared shape, batch → 'N'). */
  inputShape?: Dim[];
  labelSmoothing?: number;
  /** Adds a float [N] input `sample_weight` (class weighting). */
  sampleWeights?: boolean;
  /** 'frozen' (default): BN uses its running statistics. 'train': BN layers with a trainable scale use batch statistics and report updated running statistics. */
  batchNorm?: 'frozen' | 'train';
  /**
   * Frozen-statistics BN after a trainable conv is folded into that conv as W·s and a bias (default
   * true): the same function, but the forward loses a full pass over the activations (and ORT fuses
   * the activation into the conv), and the backward needs neither the BN input kept alive nor the
   * activation-sized passes for dX, dγ and dβ — γ and β get their gradients through weight-sized ops.
   */
  foldBatchNorm?: boolean;
  /**
   * ORT's NCHWc block size on this machine (Runtime.nchwcBlock()): convs with run-time weights go to the
   * blocked kernels (graph/nchwc). Absent or 0: plain Conv nodes.
   */
  nchwcBlock?: number;
  /**
   * A Relu or Clip whose only reader is a MaxPool runs after the pool instead (default true): the same
   * values and gradients (max commutes with a nondecreasing function), but the activation and its
   * gradient mask work on the pooled tensor — a quarter of the size for ResNet's stem and VGG's pools.
   */
  poolBeforeActivation?: boolean;
  grad?: GradOptions;
}

export interface TrainStep {
  model: Model;
  dataInput: string;
  labels: string;
  sampleWeight?: string;
  loss: string;
  logits: string;
  numClasses: number;
  /** Trainable weights, fed as inputs each step, with their gradient outputs. */
  params: { name: string; dims: number[]; grad: string }[];
  /** Dropout layers become `x · mask`; the trainer feeds masks (0 or 1/(1−p)) from its seeded RNG. */
  dropout: { input: string; shape: Dim[]; ratio: number }[];
  /** Running statistics fed in and read back (batchNorm: 'train'). */
  bnStats: { input: string; dims: number[]; updated: string }[];
}

export function buildTrainStep(forward: Model, opts: TrainStepOptions): TrainStep {
  if (forward.opset < 13) {
    throw new GraftError('MODEL_UNSUPPORTED', `the model uses ONNX opset ${forward.opset}; graft trains opset 13 or newer. Re-export it with a newer opset (torch.onnx.export(..., opset_version=17)).`);
  }
  const model = forward.clone();
  model.opsetImports = model.opsetImports.map((o) => (isDefaultDomain(o.domain) ? { ...o, version: Math.max(o.version, TRAIN_OPSET) } : o));
  model.irVersion = Math.max(model.irVersion, 8);
  const g = model.graph;
  const b = new GraphBuilder(g, { opset: model.opset });

  if (g.inputs.length !== 1) throw new GraftError('MODEL_UNSUPPORTED', `graft trains models with one image input; this one has ${g.inputs.length} inputs.`);
  const data = g.inputs[0];
  const declared = opts.inputShape ?? data.shape;
  if (!declared || declared.length < 2) throw new GraftError('MODEL_UNSUPPORTED', `the model input "${data.name}" has no usable shape.`);
  data.shape = ['N', ...declared.slice(1)];

  const logits = opts.logits ?? (g.outputs.length === 1 ? g.outputs[0].name : undefined);
  if (!logits) throw new GraftError('MODEL_UNSUPPORTED', 'the model has several outputs; say which value holds the logits.');

  const trainable = new Set(opts.trainable);
  for (const name of trainable) {
    const t = g.initializers.get(name);
    if (!t) throw new GraftError('LAYER_NOT_FOUND', `"${name}" is not a weight of the model, so it cannot be trained.`, { subject: name });
    if (t.dtype !== 'float32') throw new GraftError('MODEL_UNSUPPORTED', `weight "${name}" is ${t.dtype}; graft trains float32 weights (dequantise the model first).`, { subject: name });
  }

  const before = inferShapes(model, { inputShapes: { [data.name]: data.shape } });
  const dropout = replaceDropout(g.nodes, b, before);
  const bnStats = opts.batchNorm === 'train' ? decomposeTrainingBatchNorm(model, b, trainable, before) : [];
  if (opts.foldBatchNorm ?? true) foldFrozenBatchNorm(model, b, trainable);
  if (opts.poolBeforeActivation ?? true) poolBeforeActivation(model, b);

  // trainable weights (and live BN statistics) become inputs, in a stable order
  const params = [...trainable].map((name) => ({ name, dims: [...g.initializers.get(name)!.dims] }));
  for (const p of params) g.initializers.delete(p.name);
  const statInputs = bnStats.map((s) => ({ name: s.input, dims: s.dims }));
  for (const s of statInputs) g.initializers.delete(s.name);
  g.inputs = [
    data,
    ...dropout.map((d) => ({ name: d.input, dtype: 'float32' as const, shape: d.shape })),
    ...statInputs.map((s) => ({ name: s.name, dtype: 'float32' as const, shape: s.dims })),
    ...params.map((p) => ({ name: p.name, dtype: 'float32' as const, shape: p.dims })),
  ];

  const shapes = inferShapes(model, { inputShapes: { [data.name]: data.shape } });
  const logitShape = shapes.get(logits)?.shape;
  const K = logitShape?.[1];
  if (logitShape?.length !== 2 || typeof K !== 'number') {
    throw new GraftError('MODEL_UNSUPPORTED', `the logits "${logits}" must have shape [N, classes]; got ${JSON.stringify(logitShape ?? 'unknown')}.`, { subject: logits });
  }

  const labels = 'labels';
  const sampleWeight = opts.sampleWeights ? 'sample_weight' : undefined;
  b.reserve(labels, ...(sampleWeight ? [sampleWeight] : []));
  g.inputs.splice(1, 0, { name: labels, dtype: 'int64', shape: ['N'] });
  if (sampleWeight) g.inputs.splice(2, 0, { name: sampleWeight, dtype: 'float32', shape: ['N'] });

  const { loss, dLogits } = softmaxCrossEntropy(b, { logits, labels, numClasses: K, labelSmoothing: opts.labelSmoothing, sampleWeight });
  const { grads } = buildBackward({
    graph: g,
    seeds: new Map([[logits, dLogits]]),
    wrt: params.map((p) => p.name),
    shapes,
    opset: model.opset,
    options: opts.grad,
    builder: b,
  });

  const outputs: ValueInfo[] = [
    { name: loss, dtype: 'float32', shape: [] },
    { name: logits, dtype: 'float32', shape: ['N', K] },
  ];
  const paramsOut = params.map((p) => {
    const grad = b.op('Identity', [grads.get(p.name)!], {}, { outputs: [b.fresh(`grad/${p.name}`)] });
    outputs.push({ name: grad, dtype: 'float32', shape: p.dims });
    return { ...p, grad };
  });
  for (const s of bnStats) outputs.push({ name: s.updated, dtype: 'float32', shape: s.dims });
  g.outputs = outputs;
  g.valueInfo.clear();
  g.prune();
  if (opts.nchwcBlock) lowerConvsToNchwc(model, { block: opts.nchwcBlock });
  return {
    model,
    dataInput: data.name,
    labels,
    sampleWeight,
    loss,
    logits,
    numClasses: K,
    params: paramsOut,
    dropout,
    bnStats,
  };
}

/** Dropout → x·mask, with the mask a graph input: seeded by graft, reproducible across resumes. */
function replaceDropout(nodes: Node[], b: GraphBuilder, shapes: ReadonlyMap<string, ValueInfo>): TrainStep['dropout'] {
  const out: TrainStep['dropout'] = [];
  for (let k = 0; k < nodes.length; k++) {
    const n = nodes[k];
    if (n.opType !== 'Dropout') continue;
    const ratioInput = n.input(1);
    const ratio = ratioInput ? constantScalar(b, ratioInput) : n.float('ratio', 0.5);
    if (ratio === undefined) throw new GraftError('MODEL_UNSUPPORTED', `Dropout "${n.name}" has a ratio computed at run time.`, { subject: n.name });
    if (n.outputs[1]) throw new GraftError('MODEL_UNSUPPORTED', `Dropout "${n.name}" exposes its mask; graft cannot train through that.`, { subject: n.name });
    if (ratio <= 0) {
      n.opType = 'Identity';
      n.inputs = [n.inputs[0]];
      n.attrs.clear();
      continue;
    }
    const mask = b.fresh(`dropout_mask/${n.name}`);
    nodes[k] = n.clone();
    Object.assign(nodes[k], { opType: 'Mul', inputs: [n.inputs[0], mask], outputs: [n.outputs[0]], attrs: new Map() });
    const shape = shapes.get(n.inputs[0])?.shape;
    if (!shape) throw new GraftError('MODEL_UNSUPPORTED', `the input shape of Dropout "${n.name}" is unknown.`, { subject: n.name });
    out.push({ input: mask, shape, ratio });
  }
  return out;
}

function constantScalar(b: GraphBuilder, v: string): number | undefined {
  const t = b.graph.initializers.get(v);
  if (t) return toNumbers(t)[0];
  const c = b.graph.nodes.find((n) => n.opType === 'Constant' && n.outputs[0] === v)?.tensor('value');
  return c ? toNumbers(c)[0] : undefined;
}

/**
 * BatchNormalization with a trainable scale → explicit batch-statistics ops (PyTorch train() semantics:
 * normalise with the biased batch variance, update running variance with the unbiased one), so the
 * generic rules differentiate it exactly.
 */
function decomposeTrainingBatchNorm(model: Model, b: GraphBuilder, trainable: ReadonlySet<string>, shapes: ReadonlyMap<string, ValueInfo>): TrainStep['bnStats'] {
  const g = model.graph;
  const data = g.inputs[0];
  const stats: TrainStep['bnStats'] = [];
  const emitted = new Map<Node, Node[]>();
  for (const n of g.nodes) {
    if (n.opType !== 'BatchNormalization' || !trainable.has(n.inputs[1])) continue;
    const [x, scale, bias, mean, variance] = n.inputs;
    const momentum = n.float('momentum', 0.9);
    const eps = n.float('epsilon', 1e-5);
    const dims = [...g.initializers.get(mean)!.dims];
    const start = g.nodes.length;
    const chan = b.i64([1, -1, 1, 1]);
    const mu = b.reduce('ReduceMean', x, [0, 2, 3], true);
    const centered = b.op('Sub', [x, mu]);
    const varBiased = b.reduce('ReduceMean', b.op('Mul', [centered, centered]), [0, 2, 3], true);
    const invStd = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [varBiased, b.f32(eps)])])]);
    // (x − μ) · (γ/σ) + β, not ((x − μ)/σ) · γ + β: the per-channel factor first, so the backward keeps
    // one activation-sized tensor per BN (x − μ) instead of two, and makes two passes over it, not four
    b.op('Add', [b.op('Mul', [centered, b.op('Mul', [invStd, b.op('Reshape', [scale, chan])])]), b.op('Reshape', [bias, chan])], {}, { outputs: [n.outputs[0]] });
    // running statistics, as torch updates them: r ← momentum·r + (1 − momentum)·batch (ONNX momentum)
    // values per channel: from the batch input and x's static dims where it has them — a Size(x) would
    // keep x alive until onnxruntime gets round to the statistics update
    const xDims = shapes.get(x)?.shape;
    const perImage = xDims?.slice(2);
    const count =
      xDims?.[0] === data.shape?.[0] && perImage?.every((d): d is number => typeof d === 'number')
        ? b.op('Mul', [b.op('Cast', [b.op('Shape', [data.name], { start: 0, end: 1 })], { to: 1 }), b.f32(perImage.reduce((p, d) => p * d, 1))])
        : b.op('Cast', [b.op('Div', [b.op('Size', [x]), b.i64Scalar(dims[0])])], { to: 1 });
    const unbiased = b.op('Mul', [b.op('Reshape', [varBiased, b.i64([-1])]), b.op('Div', [count, b.op('Sub', [count, b.f32(1)])])]);
    const blend = (r: string, batch: string, name: string) =>
      b.op('Add', [b.op('Mul', [r, b.f32(momentum)]), b.op('Mul', [batch, b.f32(1 - momentum)])], {}, { outputs: [b.fresh(name)] });
    const newMean = blend(mean, b.op('Reshape', [mu, b.i64([-1])]), `bn_update/${mean}`);
    const newVar = blend(variance, unbiased, `bn_update/${variance}`);
    stats.push({ input: mean, dims, updated: newMean }, { input: variance, dims, updated: newVar });
    emitted.set(n, g.nodes.splice(start));
  }
  // splice each decomposition where its BatchNormalization was, keeping topological order
  g.nodes = g.nodes.flatMap((n) => emitted.get(n) ?? [n]);
  return stats;
}

/**
 * Conv → BatchNormalization(frozen statistics) with a trainable conv weight becomes one Conv whose
 * weight and bias are computed in the graph from the trainable values:
 *
 *   s = γ / √(var + ε)      W' = W · s[o]      b' = β + (b − mean) · s      y = Conv(x, W', b')
 *
 * The gradients of W, γ and β then come from the generic Mul/Sub/Conv rules on weight-sized tensors.
 * BN after a frozen conv is left alone: folding it would turn the frozen weight into a computed one and
 * cost ORT its pre-packed kernels for that conv.
 */
function foldFrozenBatchNorm(model: Model, b: GraphBuilder, trainable: ReadonlySet<string>): void {
  const g = model.graph;
  const { producer, consumers } = g.index();
  const outputs = new Set(g.outputs.map((o) => o.name));
  const emitted = new Map<Node, Node[]>();
  const removed = new Set<Node>();
  for (const n of g.nodes) {
    if (n.opType !== 'BatchNormalization' || n.int('training_mode', 0) === 1 || n.outputs.slice(1).some(Boolean)) continue;
    const [x, scale, bias, mean, variance] = n.inputs;
    const conv = producer.get(x);
    if (!conv || conv.opType !== 'Conv' || !trainable.has(conv.inputs[1]) || outputs.has(x) || consumers.get(x)?.length !== 1) continue;
    const meanT = g.initializers.get(mean);
    const varT = g.initializers.get(variance);
    if (meanT?.dtype !== 'float32' || varT?.dtype !== 'float32') continue;
    const eps = n.float('epsilon', 1e-5);
    const start = g.nodes.length;
    const invStd = b.initializer(`${variance}_inv_std`, float32(varT.dims, Float32Array.from(varT.data as Float32Array, (v) => 1 / Math.sqrt(v + eps))));
    const s = b.op('Mul', [scale, invStd]);
    const w = b.op('Mul', [conv.inputs[1], b.op('Reshape', [s, b.i64([-1, 1, 1, 1])])]);
    const convBias = conv.input(2);
    const centered = convBias ? b.op('Sub', [convBias, mean]) : b.op('Neg', [mean]);
    const newBias = b.op('Add', [bias, b.op('Mul', [centered, s])]);
    emitted.set(conv, g.nodes.splice(start));
    conv.inputs = [conv.inputs[0], w, newBias];
    conv.outputs = [n.outputs[0]];
    removed.add(n);
  }
  g.nodes = g.nodes.filter((n) => !removed.has(n)).flatMap((n) => [...(emitted.get(n) ?? []), n]);
}

/**
 * Activation → MaxPool becomes MaxPool → activation, for Relu and Clip (nondecreasing, so the max of the
 * activated window is the activation of the window's max, and a window's first maximum is the same
 * element either way wherever the activation's gradient is not 0). Only when the MaxPool is the
 * activation's sole reader and the pool has no indices output; the pool's output name is kept.
 */
function poolBeforeActivation(model: Model, b: GraphBuilder): void {
  const g = model.graph;
  const { consumers } = g.index();
  const outputs = new Set(g.outputs.map((o) => o.name));
  const moved = new Map<Node, Node>();
  for (const act of g.nodes) {
    if ((act.opType !== 'Relu' && act.opType !== 'Clip') || !isDefaultDomain(act.domain) || outputs.has(act.outputs[0])) continue;
    const readers = consumers.get(act.outputs[0]) ?? [];
    const pool = readers[0];
    if (readers.length !== 1 || pool.opType !== 'MaxPool' || !isDefaultDomain(pool.domain) || pool.outputs.slice(1).some(Boolean) || pool.inputs[0] !== act.outputs[0]) continue;
    const pooled = pool.outputs[0];
    const raw = b.fresh(`${pooled}_before_${act.opType.toLowerCase()}`);
    pool.inputs = [act.inputs[0]];
    pool.outputs = [raw];
    act.inputs = [raw, ...act.inputs.slice(1)];
    act.outputs = [pooled];
    moved.set(act, pool);
  }
  if (moved.size === 0) return;
  const after = new Map([...moved].map(([act, pool]) => [pool, act]));
  g.nodes = g.nodes.filter((n) => !moved.has(n)).flatMap((n) => (after.has(n) ? [n, after.get(n)!] : [n]));
}

export interface EvalStep {
  model: Model;
  dataInput: string;
  logits: string;
  /** Weights fed as inputs (the ones being trained, so evaluation sees their current values). */
  params: { name: string; dims: number[] }[];
}

/**
 * The forward graph that goes with a training step: same weights fed as inputs (plus any initializers
 * listed in `extraInputs`, e.g. running BN statistics that training updates), dropout off, logits out.
 */
export function buildEvalStep(
  forward: Model,
  opts: { trainable: Iterable<string>; extraInputs?: Iterable<string>; logits?: string; inputShape?: Dim[]; foldBatchNorm?: boolean; nchwcBlock?: number },
): EvalStep {
  const model = forward.clone();
  const g = model.graph;
  if (g.inputs.length !== 1) throw new GraftError('MODEL_UNSUPPORTED', `graft trains models with one image input; this one has ${g.inputs.length} inputs.`);
  const data = g.inputs[0];
  const declared = opts.inputShape ?? data.shape;
  if (declared) data.shape = ['N', ...declared.slice(1)];
  const logits = opts.logits ?? g.outputs[0]?.name;
  if (!logits) throw new GraftError('MODEL_UNSUPPORTED', 'the model has no output to evaluate.');
  for (const n of g.nodes) {
    if (n.opType !== 'Dropout') continue;
    n.opType = 'Identity';
    n.inputs = [n.inputs[0]];
    n.outputs = [n.outputs[0]];
    n.attrs.clear();
  }
  const names = [...new Set([...opts.trainable, ...(opts.extraInputs ?? [])])];
  // the same folding as the training step (statistics fed as extraInputs are not initializers: left as BN)
  if (opts.foldBatchNorm ?? true) foldFrozenBatchNorm(model, new GraphBuilder(g, { opset: model.opset }), new Set(opts.trainable));
  const params = names.map((name) => {
    const t = g.initializers.get(name);
    if (!t) throw new GraftError('LAYER_NOT_FOUND', `"${name}" is not a weight of the model.`, { subject: name });
    g.initializers.delete(name);
    return { name, dims: [...t.dims] };
  });
  g.inputs = [data, ...params.map((p) => ({ name: p.name, dtype: 'float32' as const, shape: p.dims }))];
  g.outputs = [{ name: logits, dtype: 'float32', shape: ['N', null] }];
  g.valueInfo.clear();
  g.prune();
  if (opts.nchwcBlock) lowerConvsToNchwc(model, { block: opts.nchwcBlock });
  return { model, dataInput: data.name, logits, params };
}
