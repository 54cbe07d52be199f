/**
 * The new classifier head: features [N, D] → (standardisation) → (Dropout → Linear → ReLU) → Dropout →
 * Linear → logits [N, K], initialised as torch.nn.Linear does (U(−1/√fan_in, 1/√fan_in) for weights and
 * biases), from a seed.
 */
import { GraftError } from '../errors.js';
import { GraphBuilder } from '../graph/builder.js';
import { Graph, Model } from '../graph/graph.js';
import type { Node } from '../graph/ir.js';
import { float32 } from '../onnx/tensor.js';
import { fork } from '../util/random.js';

export interface HeadSpec {
  inputDim: number;
  numClasses: number;
  /** Width of an optional hidden layer (0 / undefined = a single linear layer). */
  hidden?: number;
  /** Dropout before each linear layer (0 = none). */
  dropout?: number;
  /**
   * Fixed per-feature standardisation in front of everything else, (x − mean) · invStd, as constants:
   * a head warmed up on standardised features keeps seeing them — and its dropout keeps dropping
   * standardised values (to the mean), not raw ones (to 0, far outside what the head learned on).
   */
  standardize?: Standardizer;
  seed: number;
}

export interface Standardizer {
  mean: Float32Array;
  /** 1 / std (std floored: see fitStandardizer). */
  invStd: Float32Array;
}

export interface Head {
  model: Model;
  /** Input value name ("features"). */
  input: string;
  /** Output value name ("logits"). */
  logits: string;
  /** Parameter names, in order. */
  params: string[];
  /** Constant initializers that are not parameters (the standardisation's mean and 1/std). */
  constants: string[];
}

export const HEAD_PREFIX = 'head/';
/** Initializer names of the standardisation's constants (see HeadSpec.standardize). */
export const STANDARDIZE_MEAN = `${HEAD_PREFIX}features.mean`;
export const STANDARDIZE_INV_STD = `${HEAD_PREFIX}features.inv_std`;

function linearInit(seed: number, key: string, fanIn: number, dims: number[]) {
  const bound = 1 / Math.sqrt(fanIn);
  const rng = fork(seed, 'head', key);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.uniform(-bound, bound);
  return float32(dims, data);
}

export function buildHead(spec: HeadSpec): Head {
  const { inputDim: D, numClasses: K } = spec;
  if (!(Number.isInteger(D) && D > 0)) throw new GraftError('MODEL_UNSUPPORTED', `the feature layer must give a flat vector per image; got ${D} features.`);
  if (!(Number.isInteger(K) && K >= 2)) throw new GraftError('DATASET_INVALID', `a classifier needs at least 2 classes, got ${K}.`);
  const p = spec.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new GraftError('INVALID_ARGUMENT', `dropout must be in [0, 1), not ${p}.`);
  const input = `${HEAD_PREFIX}features`;
  const g = new Graph({ name: 'head', inputs: [{ name: input, dtype: 'float32', shape: ['N', D] }] });
  const b = new GraphBuilder(g);
  b.reserve(input);
  const params: string[] = [];
  const constants: string[] = [];
  const linear = (x: string, fanIn: number, out: number, name: string, output?: string) => {
    const w = `${HEAD_PREFIX}${name}.weight`;
    const bias = `${HEAD_PREFIX}${name}.bias`;
    g.initializers.set(w, linearInit(spec.seed, w, fanIn, [out, fanIn]));
    g.initializers.set(bias, linearInit(spec.seed, bias, fanIn, [out]));
    b.reserve(w, bias);
    params.push(w, bias);
    return b.op('Gemm', [x, w, bias], { transB: 1 }, { name: `${HEAD_PREFIX}${name}`, outputs: output ? [output] : 1 });
  };
  const drop = (x: string) => (p > 0 ? b.op('Dropout', [x, b.f32(p)], {}, { name: b.fresh(`${HEAD_PREFIX}dropout`) }) : x);
  let x = input;
  const st = spec.standardize;
  if (st) {
    if (st.mean.length !== D || st.invStd.length !== D) throw new GraftError('INVALID_ARGUMENT', `the standardisation has ${st.mean.length} means and ${st.invStd.length} scales for ${D} features.`);
    const [mean, invStd] = [STANDARDIZE_MEAN, STANDARDIZE_INV_STD];
    g.initializers.set(mean, float32([D], st.mean));
    g.initializers.set(invStd, float32([D], st.invStd));
    b.reserve(mean, invStd);
    constants.push(mean, invStd);
    x = b.op('Mul', [b.op('Sub', [x, mean]), invStd], {}, { name: `${HEAD_PREFIX}standardize` });
  }
  let fanIn = D;
  if (spec.hidden) {
    x = b.op('Relu', [linear(drop(x), fanIn, spec.hidden, 'hidden')], {}, { name: `${HEAD_PREFIX}relu` });
    fanIn = spec.hidden;
  }
  const logits = linear(drop(x), fanIn, K, 'fc', `${HEAD_PREFIX}logits`);
  g.outputs = [{ name: logits, dtype: 'float32', shape: ['N', K] }];
  return { model: new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] }), input, logits, params, constants };
}

/**
 * Folds the head's standardisation (HeadSpec.standardize) into its first linear layer, as BatchNorm is
 * folded into convs for export: Gemm(Dropout((x − mean)·invStd), W, b) = Gemm(Dropout(x), W·invStd,
 * b − (W·invStd)·mean) at inference. The model then reads raw features; without a standardisation it is
 * left as it is.
 */
export function foldStandardization(model: Model): void {
  const g = model.graph;
  const scale = g.nodes.find((n) => n.name === `${HEAD_PREFIX}standardize`);
  if (!scale) return;
  const { producer, consumers } = g.index();
  const center = producer.get(scale.inputs[0]);
  const mean = g.initializers.get(STANDARDIZE_MEAN);
  const invStd = g.initializers.get(STANDARDIZE_INV_STD);
  if (!center || center.opType !== 'Sub' || !mean || !invStd) throw new GraftError('MODEL_UNSUPPORTED', 'the head standardisation is not (x − mean) · invStd.');
  // the first linear layer, through the dropout (an identity at inference) in between
  let v = scale.outputs[0];
  let gemm: Node | undefined;
  for (;;) {
    const users = consumers.get(v) ?? [];
    if (users.length !== 1) break;
    if (users[0].opType === 'Gemm') gemm = users[0];
    if (users[0].opType !== 'Dropout') break;
    v = users[0].outputs[0];
  }
  if (!gemm || gemm.inputs[0] !== v || gemm.int('transB', 0) !== 1 || gemm.int('transA', 0) !== 0) throw new GraftError('MODEL_UNSUPPORTED', 'the head standardisation does not feed a linear layer.');
  foldIntoLinear(g, gemm.inputs[1], gemm.inputs[2], { mean: mean.data as Float32Array, invStd: invStd.data as Float32Array });
  for (const n of consumers.get(scale.outputs[0]) ?? []) n.inputs = n.inputs.map((i) => (i === scale.outputs[0] ? center.inputs[0] : i));
  g.nodes = g.nodes.filter((n) => n !== scale && n !== center);
  g.initializers.delete(STANDARDIZE_MEAN);
  g.initializers.delete(STANDARDIZE_INV_STD);
}

/**
 * Rewrites the linear layer (weight [out, D], bias [out]) of standardised inputs as one of raw inputs:
 * W' = W·diag(invStd), b' = b − W'·mean.
 */
export function foldIntoLinear(g: Graph, weight: string, bias: string, s: Standardizer): void {
  const w = g.initializers.get(weight)!;
  const [out, dim] = w.dims;
  const W = Float32Array.from(w.data as Float32Array);
  const B = Float32Array.from(g.initializers.get(bias)!.data as Float32Array);
  for (let o = 0; o < out; o++) {
    let shift = 0;
    for (let d = 0; d < dim; d++) {
      W[o * dim + d] *= s.invStd[d];
      shift += W[o * dim + d] * s.mean[d];
    }
    B[o] -= shift;
  }
  g.initializers.set(weight, float32([out, dim], W));
  g.initializers.set(bias, float32([out], B));
}
