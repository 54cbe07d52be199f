/**
 * What a model is and what graft can do with it, without running it: its graph (inputs, outputs, ops,
 * parameters), how graft would feed and read it as a classifier, the layers a new head could sit on,
 * and how far back fine-tuning could reach (ops without a gradient rule stop the backward pass).
 */
import { differentiableOps } from '../autodiff/registry.js';
import { isGraftError } from '../errors.js';
import { topologicalOrder, type Model } from '../graph/graph.js';
import { isDefaultDomain, type Dim, type Node } from '../graph/ir.js';
import { inferShapes } from '../graph/shapes.js';
import { countParams, cutPoints, featureCandidates, opHistogram, type ParamCount } from '../graph/surgery.js';
import { BUILTIN_MODELS } from '../models/builtins.js';
import type { PreprocessConfig } from '../models/preprocess.js';
import { resolveModel, type ModelSourceKind } from '../models/sources.js';
import { planClassifier, type ClassifierOptions, type ClassifierPlan, type LabelsOrigin, type OutputKind, type PreprocessResolution } from './classifier.js';

export type InspectOptions = Omit<ClassifierOptions, 'runtime' | 'threads'>;

export interface ValueReport {
  name: string;
  dtype: string;
  /** Dims: numbers, symbolic names ("N"), null where unknown; null when the rank is unknown. */
  shape: Dim[] | null;
}

export interface FeatureLayerReport {
  /** The value a new head would read (what --feature-layer takes). */
  value: string;
  node: string;
  op: string;
  shape: Dim[];
  channels: number;
  /** Every path from the input to the output passes through it: the network splits cleanly here. */
  blockEnd: boolean;
  /** The builtin registry's measured default feature layer. */
  default: boolean;
  /** Fine-tuning with a head on this layer. */
  fineTune: {
    /** Float parameters upstream of the layer that gradients can reach. */
    trainableParams: number;
    /** Upstream float parameters no gradient reaches (behind an op without a gradient rule). */
    unreachableParams: number;
    /** Ops without a gradient rule between the input and this layer (node names). */
    blockedBy: string[];
    /** The earliest cut point from which everything up to this layer can be unfrozen; "input" when all of it can. */
    unfreezeFrom: string | null;
  };
}

export interface InspectReport {
  spec: string;
  source: ModelSourceKind;
  path: string;
  /** sha256 identity of the model (bytes and external data). */
  id: string;
  irVersion: number;
  opset: number;
  opsetImports: { domain: string; version: number }[];
  producer: { name: string; version: string };
  description: string;
  inputs: ValueReport[];
  outputs: ValueReport[];
  nodes: number;
  /** Op type → count, most frequent first. */
  ops: { op: string; count: number }[];
  params: ParamCount;
  /** How graft would run the model as an image classifier; null with `problem` when it cannot. */
  classifier: {
    input: string;
    output: string;
    numClasses: number | null;
    outputKind: OutputKind;
    outputKindFrom: 'metadata' | 'graph';
    /** The classifier layer found in the graph, when surgery recognises one. */
    layer: {
      kind: 'gemm' | 'matmul' | 'conv';
      featureValue: string;
      featureShape: Dim[] | null;
      stackInput: string;
      stackDepth: number;
      spatialValue: string | null;
    } | null;
    layerProblem?: string;
  } | null;
  problem?: string;
  preprocess: (Omit<PreprocessResolution, 'config'> & { config: PreprocessConfig }) | null;
  labels: { count: number; first: string[]; from: LabelsOrigin } | null;
  /** The builtin registry's default feature layer, when it names one. */
  defaultFeatureLayer: string | null;
  featureLayers: FeatureLayerReport[];
  /** Values every input→output path passes through, in order: where the network splits into blocks. */
  cutPoints: { value: string; shape: Dim[] | null }[];
  trainability: {
    /** Op types graft can differentiate (the registry). */
    differentiableOps: string[];
    /** Op types in this graph with no gradient rule; `onDataPath` when some node of that type carries image data. */
    missingGradient: { op: string; count: number; onDataPath: boolean }[];
  };
}

const FLOATS = new Set(['float32', 'float16', 'bfloat16', 'float64']);
const LABELS_SHOWN = 10;

const opKey = (n: Node) => (isDefaultDomain(n.domain) ? n.opType : `${n.domain}.${n.opType}`);

/** Describes a model for `graft inspect`: never runs it, and reports (rather than throws) what stops it being a classifier. */
export async function inspect(spec: string, opts: InspectOptions = {}): Promise<InspectReport> {
  const resolved = await resolveModel(spec, opts);
  const model = resolved.model;
  const g = model.graph;

  let plan: ClassifierPlan | undefined;
  let problem: string | undefined;
  try {
    plan = planClassifier(resolved, opts);
  } catch (e) {
    // flags the caller got wrong are errors; a model that is not a classifier is a finding
    if (!isGraftError(e) || !['MODEL_UNSUPPORTED', 'MODEL_INVALID'].includes(e.code)) throw e;
    problem = e.message;
  }

  const types = inferShapes(model);
  const shapeOf = (v: string): Dim[] | null => types.get(v)?.shape ?? null;
  const builtin = resolved.kind === 'builtin' ? BUILTIN_MODELS[spec.trim()] : undefined;
  const defaultFeatureLayer = builtin?.defaultFeatureLayer ?? null;
  const cuts = cutPoints(model);
  const grads = new Set(differentiableOps());

  return {
    spec,
    source: resolved.kind,
    path: resolved.modelPath,
    id: resolved.id,
    irVersion: model.irVersion,
    opset: model.opset,
    opsetImports: model.opsetImports.map((o) => ({ domain: o.domain || 'ai.onnx', version: o.version })),
    producer: { name: model.producerName, version: model.producerVersion },
    description: model.docString,
    inputs: g.inputs.map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape ?? null })),
    outputs: g.outputs.map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape ?? shapeOf(v.name) })),
    nodes: g.nodes.length,
    ops: [...opHistogram(model)].map(([op, count]) => ({ op, count })),
    params: countParams(model),
    classifier: plan
      ? {
          input: plan.input.name,
          output: plan.output.name,
          numClasses: plan.numClasses,
          outputKind: plan.outputKind,
          outputKindFrom: plan.outputKindFrom,
          layer: plan.classifier
            ? {
                kind: plan.classifier.kind,
                featureValue: plan.classifier.featureValue,
                featureShape: plan.classifier.featureShape ?? null,
                stackInput: plan.classifier.stackInput,
                stackDepth: plan.classifier.stackDepth,
                spatialValue: plan.classifier.spatialValue ?? null,
              }
            : null,
          ...(plan.classifierProblem ? { layerProblem: plan.classifierProblem } : {}),
        }
      : null,
    ...(problem ? { problem } : {}),
    preprocess: plan ? { ...plan.preprocess } : null,
    labels: plan?.labels ? { count: plan.labels.length, first: plan.labels.slice(0, LABELS_SHOWN), from: plan.labelsFrom! } : null,
    defaultFeatureLayer,
    featureLayers: featureLayers(model, cuts, grads, defaultFeatureLayer, types),
    cutPoints: cuts.map((value) => ({ value, shape: shapeOf(value) })),
    trainability: { differentiableOps: [...grads], missingGradient: missingGradient(model, grads, types) },
  };
}

/** A value carries data gradients could flow through: floating point (or of unknown type). */
function isFloatValue(types: ReturnType<typeof inferShapes>, v: string): boolean {
  const t = types.get(v);
  return !t || FLOATS.has(t.dtype);
}

function hasRule(n: Node, grads: Set<string>): boolean {
  return isDefaultDomain(n.domain) && grads.has(n.opType);
}

/** Values computed from the graph inputs through float values (what image data flows through). */
function dataPath(model: Model, types: ReturnType<typeof inferShapes>): Set<string> {
  const g = model.graph;
  const live = new Set(g.inputs.map((i) => i.name));
  for (const n of topologicalOrder(g)) {
    if (n.inputs.some((i) => i && live.has(i) && isFloatValue(types, i))) for (const o of n.outputs) if (o && isFloatValue(types, o)) live.add(o);
  }
  return live;
}

function missingGradient(model: Model, grads: Set<string>, types: ReturnType<typeof inferShapes>): InspectReport['trainability']['missingGradient'] {
  const data = dataPath(model, types);
  const found = new Map<string, { count: number; onDataPath: boolean }>();
  for (const n of model.graph.nodes) {
    if (hasRule(n, grads) || n.opType === 'Constant') continue;
    const key = opKey(n);
    const e = found.get(key) ?? { count: 0, onDataPath: false };
    e.count++;
    e.onDataPath ||= n.outputs.some((o) => data.has(o));
    found.set(key, e);
  }
  return [...found].map(([op, e]) => ({ op, ...e })).sort((a, b) => Number(b.onDataPath) - Number(a.onDataPath) || b.count - a.count || a.op.localeCompare(b.op));
}

function featureLayers(model: Model, cuts: string[], grads: Set<string>, defaultLayer: string | null, types: ReturnType<typeof inferShapes>): FeatureLayerReport[] {
  const g = model.graph;
  const order = topologicalOrder(g);
  const position = new Map(order.map((n, i) => [n, i]));
  const { producer } = g.index();
  const data = dataPath(model, types);
  const cutIndex = cuts.map((v) => ({ v, at: position.get(producer.get(v)!) ?? -1 }));

  return featureCandidates(model).map((c) => {
    // upstream nodes on the data path; gradients reach those with a rule-only path to the layer
    const upstream = upstreamOf(c.value, producer, data);
    const blockers = new Set([...upstream].filter((n) => !hasRule(n, grads)));
    const ok = upstreamOf(c.value, producer, data, (n) => hasRule(n, grads));
    const trainable = new Set<string>();
    const all = new Set<string>();
    // constant inputs (initializers, or torch's Identity copies of them): countParams keeps the parameters
    for (const n of upstream) for (const i of n.inputs) if (i && !data.has(i)) all.add(i);
    for (const n of ok) for (const i of n.inputs) if (i && !data.has(i)) trainable.add(i);
    const params = (names: Set<string>) => (names.size ? countParams(model, { trainableOnly: names }).weights : 0);
    const trainableParams = params(trainable);
    const lastBlocker = Math.max(-1, ...[...blockers].map((n) => position.get(n)!));
    const layerAt = position.get(producer.get(c.value)!) ?? -1;
    const unfreezeFrom = lastBlocker < 0 ? 'input' : (cutIndex.find((k) => k.at >= lastBlocker && k.at < layerAt)?.v ?? null);
    return {
      value: c.value,
      node: c.node,
      op: c.opType,
      shape: c.shape,
      channels: c.channels,
      blockEnd: c.blockEnd,
      default: defaultLayer !== null && (c.value === defaultLayer || c.node === defaultLayer),
      fineTune: {
        trainableParams,
        unreachableParams: params(all) - trainableParams,
        blockedBy: [...blockers].sort((a, b) => position.get(a)! - position.get(b)!).map((n) => `${n.name} (${opKey(n)})`),
        unfreezeFrom,
      },
    };
  });
}

/**
 * The producers of `value` and of every data value it depends on. With `enter`, the walk stops at nodes it
 * refuses (they and whatever lies behind them only through them are left out).
 */
function upstreamOf(value: string, producer: Map<string, Node>, data: Set<string>, enter: (n: Node) => boolean = () => true): Set<Node> {
  const out = new Set<Node>();
  const stack = [value];
  const seen = new Set<string>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const p = producer.get(v);
    if (!p || !data.has(v) || out.has(p) || !enter(p)) continue;
    out.add(p);
    for (const i of p.inputs) if (i) stack.push(i);
  }
  return out;
}
