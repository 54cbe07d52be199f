/**
 * One shape rule per ONNX op: from a node's input types (and the data of small inputs), its output types
 * and, for shape arithmetic, its output data. Rules may leave outputs unset; they never guess.
 */
import { dtypeFromOnnx, toNumbers, type DType } from '../onnx/tensor.js';
import { addDim, broadcastShapes, divDim, isNumber, isStatic, mergeDim, mulDim, prodDims, subDim, sumDims } from './dims.js';
import type { Dim } from './ir.js';
import type { InferCtx } from './shapes.js';

type Rule = (c: InferCtx) => void;

export const SHAPE_RULES = new Map<string, Rule>();

function rule(ops: string | readonly string[], r: Rule): void {
  for (const op of typeof ops === 'string' ? [ops] : ops) SHAPE_RULES.set(op, r);
}

const INT_TYPES = new Set<DType>(['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64']);
/** ONNX INT64_MAX/MIN as doubles; Slice uses them for "to the end". */
const BIG = 2 ** 31 - 1;

const normAxis = (a: number, rank: number) => (a < 0 ? a + rank : a);
const fill = <T>(n: number, v: T): T[] => Array.from({ length: n }, () => v);

// ---------------------------------------------------------------------------------------------------------
// element-wise value arithmetic (for shape vectors)

/** Applies f over the broadcast of the inputs' known data; undefined when some data or shape is unknown. */
function broadcastValues(c: InferCtx, inputs: number[], out: Dim[] | undefined, f: (xs: Dim[]) => Dim): Dim[] | undefined {
  if (!isStatic(out)) return undefined;
  const shapes: number[][] = [];
  const datas: Dim[][] = [];
  for (const i of inputs) {
    const s = c.shape(i);
    const v = c.value(i);
    if (!isStatic(s) || !v) return undefined;
    shapes.push(s);
    datas.push(v);
  }
  const n = out.reduce((a, b) => a * b, 1);
  const res: Dim[] = [];
  const idx = fill(out.length, 0);
  for (let flat = 0; flat < n; flat++) {
    let r = flat;
    for (let d = out.length - 1; d >= 0; d--) {
      idx[d] = r % out[d];
      r = Math.floor(r / out[d]);
    }
    const xs = shapes.map((s, k) => {
      let off = 0;
      for (let d = 0; d < s.length; d++) off = off * s[d] + (s[d] === 1 ? 0 : idx[out.length - s.length + d]);
      return datas[k][off];
    });
    res.push(f(xs));
  }
  return res;
}

const both = (f: (a: number, b: number) => number) => (a: Dim, b: Dim): Dim => (isNumber(a) && isNumber(b) ? f(a, b) : null);

function divValue(intDiv: boolean) {
  return (a: Dim, b: Dim): Dim => {
    if (isNumber(a) && isNumber(b)) return b === 0 ? null : intDiv ? Math.trunc(a / b) : a / b;
    return divDim(a, b);
  };
}

/** Symbolic dims are ≥ 0, so they never equal a negative number (torch's `shape == -1` checks). */
function equalValue(a: Dim, b: Dim): Dim {
  if (isNumber(a) && isNumber(b)) return a === b ? 1 : 0;
  if (a !== null && a === b) return 1;
  if ((typeof a === 'string' && isNumber(b) && b < 0) || (typeof b === 'string' && isNumber(a) && a < 0)) return 0;
  return null;
}

function maxValue(a: Dim, b: Dim): Dim {
  if (isNumber(a) && isNumber(b)) return Math.max(a, b);
  if (a !== null && a === b) return a;
  if (typeof a === 'string' && isNumber(b) && b <= 0) return a;
  if (typeof b === 'string' && isNumber(a) && a <= 0) return b;
  return null;
}

function minValue(a: Dim, b: Dim): Dim {
  if (isNumber(a) && isNumber(b)) return Math.min(a, b);
  if (a !== null && a === b) return a;
  if (typeof a === 'string' && isNumber(b) && b <= 0) return b;
  if (typeof b === 'string' && isNumber(a) && a <= 0) return a;
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// same shape as input 0

function unary(fn?: (d: Dim) => Dim, dtype?: DType): Rule {
  return (c) => {
    const v = c.value(0);
    c.set(0, dtype ?? c.dtype(0), c.shape(0), fn && v ? v.map(fn) : undefined);
  };
}

const onNumber = (f: (x: number) => number) => (d: Dim): Dim => (isNumber(d) ? f(d) : null);
// symbolic dims are non-negative integers: rounding and abs keep them
const keepSymbol = (f: (x: number) => number) => (d: Dim): Dim => (isNumber(d) ? f(d) : d);

rule(
  [
    'Clip', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'LeakyRelu', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign',
    'ThresholdedRelu', 'Mish', 'Erf', 'Gelu', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Sin', 'Cos', 'Tan', 'Asin', 'Acos',
    'Atan', 'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh', 'Sign', 'Softmax', 'LogSoftmax', 'Hardmax', 'LRN',
    'InstanceNormalization', 'LpNormalization', 'MeanVarianceNormalization', 'CumSum', 'Trilu', 'ReverseSequence',
    'Shrink', 'EyeLike', 'PRelu', 'Scatter', 'ScatterElements', 'ScatterND', 'BitwiseNot',
  ],
  unary(),
);
rule('Identity', unary((d) => d));
rule('Relu', unary(keepSymbol((x) => Math.max(0, x))));
rule('Neg', unary(onNumber((x) => -x)));
rule('Abs', unary(keepSymbol(Math.abs)));
rule('Floor', unary(keepSymbol(Math.floor)));
rule('Ceil', unary(keepSymbol(Math.ceil)));
rule('Round', unary(keepSymbol((x) => x - Math.floor(x) === 0.5 ? 2 * Math.round(x / 2) : Math.round(x))));
rule('Not', unary(onNumber((x) => (x ? 0 : 1)), 'bool'));
rule(['IsNaN', 'IsInf'], unary(undefined, 'bool'));

rule('Cast', (c) => {
  const to = dtypeFromOnnx(c.node.int('to', 0));
  const v = c.value(0);
  let conv: ((d: Dim) => Dim) | undefined;
  if (to === 'bool') conv = onNumber((x) => (x ? 1 : 0));
  else if (to && INT_TYPES.has(to)) conv = keepSymbol(Math.trunc);
  else if (to === 'float32' || to === 'float16') conv = keepSymbol(Math.fround);
  else if (to === 'float64') conv = (d) => d;
  c.set(0, to, c.shape(0), v && conv ? v.map(conv) : undefined);
});
rule('CastLike', (c) => c.set(0, c.dtype(1), c.shape(0), c.value(0)));

rule('Dropout', (c) => {
  c.set(0, c.dtype(0), c.shape(0), c.value(0));
  c.set(1, c.opset >= 10 ? 'bool' : c.dtype(0), c.shape(0));
});

rule('BatchNormalization', (c) => {
  const x = c.shape(0);
  c.set(0, c.dtype(0), x);
  // opset ≥ 14: running mean/var; 9–13: mean, var, saved mean, saved var — all per channel
  const ch = x && x.length > 1 ? [x[1]] : c.shape(1);
  for (let i = 1; i < c.node.outputs.length; i++) c.set(i, c.dtype(3) ?? c.dtype(0), ch);
});

rule('LayerNormalization', (c) => {
  const x = c.shape(0);
  c.set(0, c.dtype(0), x);
  const stash = dtypeFromOnnx(c.node.int('stash_type', 1)) ?? 'float32';
  const axis = x ? normAxis(c.node.int('axis', -1), x.length) : 0;
  const stats = x && x.map((d, i) => (i < axis ? d : 1));
  c.set(1, stash, stats);
  c.set(2, stash, stats);
});

rule(['QuantizeLinear'], (c) => c.set(0, c.dtype(2) ?? 'uint8', c.shape(0)));
rule(['DequantizeLinear'], (c) => c.set(0, c.dtype(1) ?? 'float32', c.shape(0)));

// ---------------------------------------------------------------------------------------------------------
// broadcasting

function broadcasting(outType: (c: InferCtx) => DType | undefined, fn?: (a: Dim, b: Dim, c: InferCtx) => Dim): Rule {
  return (c) => {
    const inputs = c.node.inputs.map((_, i) => i).filter((i) => c.has(i));
    const shape = broadcastShapes(...inputs.map((i) => c.shape(i)));
    const v = fn ? broadcastValues(c, inputs, shape, (xs) => xs.reduce((a, b) => fn(a, b, c))) : undefined;
    c.set(0, outType(c), shape, v);
  };
}

const first = (c: InferCtx) => c.dtype(0);
const bool = () => 'bool' as const;
const isIntOut = (c: InferCtx) => INT_TYPES.has(c.dtype(0) ?? 'float32');

rule('Add', broadcasting(first, addDim));
rule('Sub', broadcasting(first, subDim));
rule('Mul', broadcasting(first, mulDim));
rule('Div', broadcasting(first, (a, b, c) => divValue(isIntOut(c))(a, b)));
rule('Max', broadcasting(first, maxValue));
rule('Min', broadcasting(first, minValue));
rule('Sum', broadcasting(first, addDim));
rule(['Pow', 'Mean', 'Mod', 'BitShift', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor'], broadcasting(first));
rule('Equal', broadcasting(bool, equalValue));
rule('Greater', broadcasting(bool, both((a, b) => +(a > b))));
rule('Less', broadcasting(bool, both((a, b) => +(a < b))));
rule('GreaterOrEqual', broadcasting(bool, both((a, b) => +(a >= b))));
rule('LessOrEqual', broadcasting(bool, both((a, b) => +(a <= b))));
rule('And', broadcasting(bool, both((a, b) => +(!!a && !!b))));
rule('Or', broadcasting(bool, both((a, b) => +(!!a || !!b))));
rule('Xor', broadcasting(bool, both((a, b) => +(!!a !== !!b))));

rule('Where', (c) => {
  const shape = broadcastShapes(c.shape(0), c.shape(1), c.shape(2));
  const v = broadcastValues(c, [0, 1, 2], shape, ([cond, x, y]) => (cond === null ? (x !== null && x === y ? x : null) : cond ? x : y));
  c.set(0, c.dtype(1) ?? c.dtype(2), shape, v);
});

// ---------------------------------------------------------------------------------------------------------
// convolution and pooling

interface Window {
  kernel: readonly number[];
  strides: readonly number[];
  dilations: readonly number[];
  pads: readonly number[];
  autoPad: string;
  ceil: boolean;
}

function windowOf(c: InferCtx, n: number, kernel: readonly number[]): Window {
  return {
    kernel,
    strides: c.node.ints('strides') ?? fill(n, 1),
    dilations: c.node.ints('dilations') ?? fill(n, 1),
    pads: c.node.ints('pads') ?? fill(2 * n, 0),
    autoPad: c.node.string('auto_pad', 'NOTSET'),
    ceil: c.node.int('ceil_mode', 0) === 1,
  };
}

/** Output length of a sliding window (Conv, pools). */
function windowOut(inp: Dim, w: Window, i: number): Dim {
  const n = w.kernel.length;
  const s = w.strides[i] ?? 1;
  const ek = ((w.kernel[i] ?? 1) - 1) * (w.dilations[i] ?? 1) + 1;
  const same = w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER';
  let pb = w.pads[i] ?? 0;
  let pe = w.pads[i + n] ?? 0;
  if (same || w.autoPad === 'VALID') pb = pe = 0;
  if (!isNumber(inp)) return s === 1 && (same || (ek === 1 && pb + pe === 0)) ? inp : null;
  if (same) return Math.ceil(inp / s);
  const span = inp + pb + pe - ek;
  if (!w.ceil) return Math.floor(span / s) + 1;
  let out = Math.ceil(span / s) + 1;
  // a last window that would start in the right padding is dropped
  if ((out - 1) * s >= inp + pb) out--;
  return out;
}

function kernelFromWeights(w: Dim[] | undefined): number[] | undefined {
  const k = w?.slice(2);
  return k && isStatic(k) ? k : undefined;
}

rule('Conv', (c) => {
  const x = c.shape(0);
  const w = c.shape(1);
  if (!x) return c.set(0, c.dtype(0), undefined);
  const n = x.length - 2;
  const kernel = c.node.ints('kernel_shape') ?? kernelFromWeights(w);
  const win = kernel && windowOf(c, n, kernel);
  const spatial = x.slice(2).map((d, i) => (win ? windowOut(d, win, i) : null));
  c.set(0, c.dtype(0), [x[0], w ? w[0] : null, ...spatial]);
});

rule('ConvTranspose', (c) => {
  const x = c.shape(0);
  const w = c.shape(1);
  if (!x) return c.set(0, c.dtype(0), undefined);
  const n = x.length - 2;
  const channels = w ? mulDim(w[1], c.node.int('group', 1)) : null;
  const outputShape = c.node.ints('output_shape');
  const kernel = c.node.ints('kernel_shape') ?? kernelFromWeights(w);
  let spatial: Dim[];
  if (outputShape) spatial = outputShape.slice(outputShape.length - n);
  else if (!kernel) spatial = fill(n, null);
  else {
    const win = windowOf(c, n, kernel);
    const op = c.node.ints('output_padding') ?? fill(n, 0);
    spatial = x.slice(2).map((d, i) => {
      const s = win.strides[i];
      const ek = (kernel[i] - 1) * win.dilations[i] + 1;
      if (win.autoPad === 'SAME_UPPER' || win.autoPad === 'SAME_LOWER') return mulDim(d, s);
      const pads = win.autoPad === 'VALID' ? 0 : win.pads[i] + win.pads[i + n];
      if (!isNumber(d)) return s === 1 && ek - pads + op[i] === 1 ? d : null;
      return s * (d - 1) + op[i] + ek - pads;
    });
  }
  c.set(0, c.dtype(0), [x[0], channels, ...spatial]);
});

rule(['MaxPool', 'AveragePool', 'LpPool'], (c) => {
  const x = c.shape(0);
  const kernel = c.node.ints('kernel_shape');
  if (!x || !kernel) return c.set(0, c.dtype(0), x && x.map((d, i) => (i < 2 ? d : null)));
  const win = windowOf(c, x.length - 2, kernel);
  const y = [x[0], x[1], ...x.slice(2).map((d, i) => windowOut(d, win, i))];
  c.set(0, c.dtype(0), y);
  c.set(1, 'int64', y);
});

rule(['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool'], (c) => {
  const x = c.shape(0);
  c.set(0, c.dtype(0), x && x.map((d, i) => (i < 2 ? d : 1)));
});

rule(['DepthToSpace', 'SpaceToDepth'], (c) => {
  const x = c.shape(0);
  const b = c.node.int('blocksize', 1);
  const up = c.node.opType === 'DepthToSpace';
  if (!x || x.length !== 4) return c.set(0, c.dtype(0), undefined);
  const [n, ch, h, w] = x;
  c.set(0, c.dtype(0), up ? [n, divDim(ch, b * b), mulDim(h, b), mulDim(w, b)] : [n, mulDim(ch, b * b), divDim(h, b), divDim(w, b)]);
});

// ---------------------------------------------------------------------------------------------------------
// matrix products

rule('Gemm', (c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  const m = a && a.length === 2 ? a[c.node.int('transA', 0) ? 1 : 0] : null;
  const n = b && b.length === 2 ? b[c.node.int('transB', 0) ? 0 : 1] : null;
  c.set(0, c.dtype(0), [m, n]);
});

rule(['MatMul', 'MatMulInteger'], (c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  const dtype = c.node.opType === 'MatMulInteger' ? 'int32' : c.dtype(0);
  if (!a || !b || a.length === 0 || b.length === 0) return c.set(0, dtype, undefined);
  const a2 = a.length === 1 ? [1, a[0]] : a;
  const b2 = b.length === 1 ? [b[0], 1] : b;
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2))!;
  const out = [...batch];
  if (a.length > 1) out.push(a2[a2.length - 2]);
  if (b.length > 1) out.push(b2[b2.length - 1]);
  c.set(0, dtype, out);
});

// ---------------------------------------------------------------------------------------------------------
// shape manipulation

rule('Flatten', (c) => {
  const x = c.shape(0);
  if (!x) return c.set(0, c.dtype(0), [null, null]);
  const axis = normAxis(c.node.int('axis', 1), x.length);
  c.set(0, c.dtype(0), [prodDims(x.slice(0, axis)), prodDims(x.slice(axis))], c.value(0));
});

rule('Reshape', (c) => {
  const x = c.shape(0);
  let target: Dim[] | undefined = c.opset < 5 ? c.node.ints('shape')?.slice() : c.value(1);
  if (!target) {
    const s = c.shape(1);
    if (s && s.length === 1 && isNumber(s[0])) target = fill(s[0], null);
    return c.set(0, c.dtype(0), target);
  }
  const allowZero = c.node.int('allowzero', 0) === 1;
  const out = target.map((t, i) => (t === 0 && !allowZero ? (x && i < x.length ? x[i] : null) : t));
  const free = out.indexOf(-1);
  if (free >= 0) out[free] = x ? divDim(prodDims(x), prodDims(out.filter((_, i) => i !== free))) : null;
  c.set(0, c.dtype(0), out, c.value(0));
});

rule('Transpose', (c) => {
  const x = c.shape(0);
  if (!x) return c.set(0, c.dtype(0), undefined);
  const perm = c.node.ints('perm') ?? x.map((_, i) => x.length - 1 - i);
  c.set(0, c.dtype(0), perm.map((p) => x[p]), x.length <= 1 ? c.value(0) : undefined);
});

rule('Concat', (c) => {
  const shapes = c.node.inputs.map((_, i) => c.shape(i));
  const known = shapes.find((s) => s);
  if (!known) return c.set(0, c.dtype(0), undefined);
  const rank = known.length;
  const axis = normAxis(c.node.int('axis', 0), rank);
  const out: Dim[] = known.map((_, d) => {
    if (d === axis) return shapes.some((s) => !s) ? null : sumDims(shapes.map((s) => s![d]));
    return shapes.reduce<Dim>((m, s) => (s ? mergeDim(m, s[d]) : m), null);
  });
  // data: concatenate chunk by chunk along the axis
  let value: Dim[] | undefined;
  const values = c.node.inputs.map((_, i) => c.value(i));
  if (values.every((v) => v) && shapes.every((s) => isStatic(s))) {
    const outer = (shapes[0] as number[]).slice(0, axis).reduce((a, b) => a * b, 1);
    value = [];
    for (let o = 0; o < outer; o++) {
      shapes.forEach((s, k) => {
        const chunk = (s as number[]).slice(axis).reduce((a, b) => a * b, 1);
        value!.push(...values[k]!.slice(o * chunk, (o + 1) * chunk));
      });
    }
  }
  c.set(0, c.dtype(0), out, value);
});

rule('Split', (c) => {
  const x = c.shape(0);
  const nOut = c.node.outputs.length;
  if (!x) {
    for (let i = 0; i < nOut; i++) c.set(i, c.dtype(0), undefined);
    return;
  }
  const axis = normAxis(c.node.int('axis', 0), x.length);
  const d = x[axis];
  let sizes: Dim[] | undefined = c.opset >= 13 ? (c.has(1) ? c.value(1) : undefined) : c.node.ints('split')?.slice();
  if (!sizes && c.opset >= 13 && c.has(1)) sizes = fill(nOut, null);
  if (!sizes) {
    const parts = c.node.int('num_outputs') ?? nOut;
    if (!isNumber(d)) sizes = fill(nOut, parts === 1 ? d : null);
    else if (c.node.int('num_outputs') !== undefined) {
      const chunk = Math.ceil(d / parts);
      sizes = fill(nOut, chunk).map((s, i) => (i === nOut - 1 ? d - chunk * (nOut - 1) : s));
    } else sizes = fill(nOut, d % nOut === 0 ? d / nOut : null);
  }
  const v = c.value(0);
  let offset = 0;
  for (let i = 0; i < nOut; i++) {
    const s = sizes[i] ?? null;
    const shape = x.map((dim, j) => (j === axis ? s : dim));
    const part = v && x.length === 1 && isNumber(s) ? v.slice(offset, offset + s) : undefined;
    if (isNumber(s)) offset += s;
    c.set(i, c.dtype(0), shape, part);
  }
});

/** Indices a Slice picks along one axis of length d (all static), following ONNX's clamping rules. */
function sliceRange(d: number, start: number, end: number, step: number): number[] {
  const out: number[] = [];
  if (step > 0) {
    let s = start < 0 ? start + d : start;
    let e = end < 0 ? end + d : end;
    s = Math.min(Math.max(s, 0), d);
    e = Math.min(Math.max(e, 0), d);
    for (let i = s; i < e; i += step) out.push(i);
  } else {
    let s = start < 0 ? start + d : start;
    let e = end < 0 ? end + d : end;
    s = Math.min(Math.max(s, -1), d - 1);
    e = Math.min(Math.max(e, -1), d - 1);
    for (let i = s; i > e; i += step) out.push(i);
  }
  return out;
}

rule('Slice', (c) => {
  const x = c.shape(0);
  if (!x) return c.set(0, c.dtype(0), undefined);
  let starts: number[] | undefined;
  let ends: number[] | undefined;
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (c.opset < 10) {
    starts = c.node.ints('starts')?.slice();
    ends = c.node.ints('ends')?.slice();
    axes = c.node.ints('axes')?.slice();
  } else {
    starts = c.numbers(1);
    ends = c.numbers(2);
    axes = c.has(3) ? c.numbers(3) : undefined;
    steps = c.has(4) ? c.numbers(4) : undefined;
    if ((c.has(3) && !axes) || (c.has(4) && !steps)) starts = undefined;
  }
  if (!starts || !ends) {
    // which axes change is unknown unless axes are given
    const touched = axes ? new Set(axes.map((a) => normAxis(a, x.length))) : undefined;
    return c.set(0, c.dtype(0), x.map((d, i) => (touched && !touched.has(i) ? d : null)));
  }
  axes ??= starts.map((_, i) => i);
  steps ??= starts.map(() => 1);
  const out = [...x];
  const picks: (number[] | undefined)[] = x.map(() => undefined);
  axes.forEach((a0, k) => {
    const a = normAxis(a0, x.length);
    const d = x[a];
    if (isNumber(d)) {
      picks[a] = sliceRange(d, starts[k], ends[k], steps[k]);
      out[a] = picks[a].length;
    } else {
      const whole = (steps[k] === 1 && starts[k] === 0 && ends[k] >= BIG) || (steps[k] === -1 && starts[k] === -1 && ends[k] <= -BIG);
      out[a] = whole ? d : null;
    }
  });
  const v = c.value(0);
  let value: Dim[] | undefined;
  if (v && x.length === 1 && isNumber(x[0])) value = (picks[0] ?? v.map((_, i) => i)).map((i) => v[i]);
  c.set(0, c.dtype(0), out, value);
});

function axesOf(c: InferCtx, inputFrom: number, inputIndex = 1): number[] | undefined {
  return c.opset >= inputFrom ? (c.has(inputIndex) ? c.numbers(inputIndex) : undefined) : c.node.ints('axes')?.slice();
}

rule('Squeeze', (c) => {
  const x = c.shape(0);
  if (!x) return c.set(0, c.dtype(0), undefined);
  const axes = axesOf(c, 13);
  if (c.opset >= 13 && c.has(1) && !axes) return c.set(0, c.dtype(0), undefined);
  let drop: Set<number>;
  if (axes && axes.length) drop = new Set(axes.map((a) => normAxis(a, x.length)));
  else if (isStatic(x)) drop = new Set(x.flatMap((d, i) => (d === 1 ? [i] : [])));
  else return c.set(0, c.dtype(0), undefined);
  c.set(0, c.dtype(0), x.filter((_, i) => !drop.has(i)), c.value(0));
});

rule('Unsqueeze', (c) => {
  const x = c.shape(0);
  const axes = axesOf(c, 13);
  if (!x || !axes) return c.set(0, c.dtype(0), undefined);
  const rank = x.length + axes.length;
  const ins = new Set(axes.map((a) => normAxis(a, rank)));
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(ins.has(i) ? 1 : x[j++]);
  c.set(0, c.dtype(0), out, c.value(0));
});

rule('Pad', (c) => {
  const x = c.shape(0);
  if (!x) return c.set(0, c.dtype(0), undefined);
  const r = x.length;
  const pads = c.opset >= 11 ? c.numbers(1) : (c.node.ints('pads') ?? c.node.ints('paddings'))?.slice();
  if (!pads) return c.set(0, c.dtype(0), fill(r, null));
  const axes = c.opset >= 18 && c.has(3) ? c.numbers(3)?.map((a) => normAxis(a, r)) : x.map((_, i) => i);
  if (!axes) return c.set(0, c.dtype(0), fill(r, null));
  const out = [...x];
  axes.forEach((a, k) => {
    out[a] = addDim(x[a], pads[k] + pads[k + axes.length]);
  });
  c.set(0, c.dtype(0), out);
});

rule('Shape', (c) => {
  const x = c.shape(0);
  if (!x) return c.set(0, 'int64', [null]);
  const r = x.length;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const dims = x.slice(clamp(c.node.int('start', 0)), clamp(c.node.int('end', r)));
  c.set(0, 'int64', [dims.length], dims);
});

rule('Size', (c) => {
  const x = c.shape(0);
  c.set(0, 'int64', [], x ? [prodDims(x)] : undefined);
});

rule('Gather', (c) => {
  const x = c.shape(0);
  const ind = c.shape(1);
  if (!x || !ind) return c.set(0, c.dtype(0), undefined);
  const axis = normAxis(c.node.int('axis', 0), x.length);
  const out = [...x.slice(0, axis), ...ind, ...x.slice(axis + 1)];
  const data = c.value(0);
  const idx = c.numbers(1);
  let value: Dim[] | undefined;
  if (data && idx && isStatic(x)) {
    const outer = x.slice(0, axis).reduce((a, b) => a * b, 1);
    const len = x[axis];
    const inner = x.slice(axis + 1).reduce((a, b) => a * b, 1);
    value = [];
    for (let o = 0; o < outer; o++)
      for (const i0 of idx) {
        const i = i0 < 0 ? i0 + len : i0;
        for (let k = 0; k < inner; k++) value.push(data[(o * len + i) * inner + k] ?? null);
      }
  }
  c.set(0, c.dtype(0), out, value);
});

rule('GatherElements', (c) => c.set(0, c.dtype(0), c.shape(1)));

rule('GatherND', (c) => {
  const x = c.shape(0);
  const ind = c.shape(1);
  const b = c.node.int('batch_dims', 0);
  const last = ind?.[ind.length - 1] ?? null;
  if (!x || !ind || !isNumber(last)) return c.set(0, c.dtype(0), undefined);
  c.set(0, c.dtype(0), [...ind.slice(0, -1), ...x.slice(b + last)]);
});

rule('Constant', (c) => {
  const n = c.node;
  const t = n.tensor('value');
  if (t) return c.set(0, t.dtype, [...t.dims], t.dtype === 'string' ? undefined : toNumbers(t));
  const f = n.attrs.get('value_float');
  if (f) return c.set(0, 'float32', [], [Math.fround(f.value as number)]);
  const i = n.attrs.get('value_int');
  if (i) return c.set(0, 'int64', [], [i.value as number]);
  const fs = n.attrs.get('value_floats');
  if (fs) return c.set(0, 'float32', [(fs.value as number[]).length], (fs.value as number[]).map(Math.fround));
  const is = n.attrs.get('value_ints');
  if (is) return c.set(0, 'int64', [(is.value as number[]).length], [...(is.value as number[])]);
  const s = n.attrs.get('value_string');
  if (s) return c.set(0, 'string', []);
  const ss = n.attrs.get('value_strings');
  if (ss) return c.set(0, 'string', [(ss.value as string[]).length]);
});

rule('ConstantOfShape', (c) => {
  const t = c.node.tensor('value');
  const dtype = t?.dtype ?? 'float32';
  const shape = c.value(0) ?? (() => {
    const s = c.shape(0);
    return s && isNumber(s[0]) ? fill(s[0], null) : undefined;
  })();
  const fillValue = t && t.dtype !== 'string' ? toNumbers(t)[0] : 0;
  c.set(0, dtype, shape, isStatic(shape) ? fill(shape.reduce((a, b) => a * b, 1), fillValue) : undefined);
});

rule('Expand', (c) => {
  const x = c.shape(0);
  let target = c.value(1);
  if (!target) {
    const s = c.shape(1);
    if (s && isNumber(s[0])) target = fill(s[0], null);
  }
  const shape = broadcastShapes(x, target);
  const v = broadcastValues(c, [0], shape, ([a]) => a);
  c.set(0, c.dtype(0), shape, v);
});

rule('Tile', (c) => {
  const x = c.shape(0);
  const reps = c.value(1);
  if (!x) return c.set(0, c.dtype(0), undefined);
  c.set(0, c.dtype(0), x.map((d, i) => (reps ? mulDim(d, reps[i]) : null)));
});

rule('Range', (c) => {
  const [start, limit, delta] = [0, 1, 2].map((i) => c.value(i)?.[0] ?? null);
  const dtype = c.dtype(0);
  if (isNumber(start) && isNumber(limit) && isNumber(delta) && delta !== 0) {
    const n = Math.max(Math.ceil((limit - start) / delta), 0);
    return c.set(0, dtype, [n], Array.from({ length: n }, (_, i) => start + i * delta));
  }
  // Range(0, N, 1) has N elements even when N is symbolic
  const n = start === 0 && delta === 1 && typeof limit === 'string' ? limit : null;
  c.set(0, dtype, [n]);
});

function reduceRule(axesInputFrom: number): Rule {
  return (c) => {
    const x = c.shape(0);
    const keep = c.node.int('keepdims', 1) === 1;
    if (!x) return c.set(0, c.dtype(0), undefined);
    const fromInput = c.opset >= axesInputFrom;
    const axes = axesOf(c, axesInputFrom);
    if (fromInput && c.has(1) && !axes) return c.set(0, c.dtype(0), keep ? fill(x.length, null) : undefined);
    if (!axes || axes.length === 0) {
      if (fromInput && c.node.int('noop_with_empty_axes', 0) === 1) return c.set(0, c.dtype(0), x, c.value(0));
      return c.set(0, c.dtype(0), keep ? fill(x.length, 1) : []);
    }
    const red = new Set(axes.map((a) => normAxis(a, x.length)));
    const out = keep ? x.map((d, i) => (red.has(i) ? 1 : d)) : x.filter((_, i) => !red.has(i));
    c.set(0, c.dtype(0), out);
  };
}
rule('ReduceSum', reduceRule(13));
rule(
  ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'],
  reduceRule(18),
);

rule(['ArgMax', 'ArgMin'], (c) => {
  const x = c.shape(0);
  if (!x) return c.set(0, 'int64', undefined);
  const axis = normAxis(c.node.int('axis', 0), x.length);
  const keep = c.node.int('keepdims', 1) === 1;
  c.set(0, 'int64', keep ? x.map((d, i) => (i === axis ? 1 : d)) : x.filter((_, i) => i !== axis));
});

rule('TopK', (c) => {
  const x = c.shape(0);
  const k: Dim = c.opset >= 10 ? (c.value(1)?.[0] ?? null) : c.node.int('k') ?? null;
  const shape = x && x.map((d, i) => (i === normAxis(c.node.int('axis', -1), x.length) ? k : d));
  c.set(0, c.dtype(0), shape);
  c.set(1, 'int64', shape);
});

rule(['Resize', 'Upsample'], (c) => {
  const x = c.shape(0);
  if (!x) return c.set(0, c.dtype(0), undefined);
  const r = x.length;
  const upsample = c.node.opType === 'Upsample';
  const scalesAt = upsample || c.opset < 11 ? 1 : 2;
  const axes = (c.opset >= 18 && !upsample ? c.node.ints('axes')?.map((a) => normAxis(a, r)) : undefined) ?? x.map((_, i) => i);
  const present = (i: number) => c.has(i) && !(c.shape(i)?.[0] === 0);
  const sizes = !upsample && c.opset >= 11 && present(3) ? c.value(3) : undefined;
  const scales = upsample && c.opset < 9 ? c.node.floats('scales')?.slice() : present(scalesAt) ? c.numbers(scalesAt) : undefined;
  const out = [...x];
  if (sizes) {
    const policy = c.node.string('keep_aspect_ratio_policy', 'stretch');
    if (policy === 'stretch') axes.forEach((a, k) => (out[a] = sizes[k]));
    else {
      const ratios = axes.map((a, k) => (isNumber(sizes[k]) && isNumber(x[a]) ? (sizes[k] as number) / (x[a] as number) : NaN));
      const scale = policy === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
      axes.forEach((a) => (out[a] = isNumber(x[a]) && Number.isFinite(scale) ? Math.floor((x[a] as number) * scale + 0.5) : null));
    }
  } else if (scales) {
    // ORT multiplies in float32, so the floor sees the float32 product
    axes.forEach((a, k) => {
      const d = x[a];
      out[a] = scales[k] === 1 ? d : isNumber(d) ? Math.floor(Math.fround(d * scales[k])) : null;
    });
  } else axes.forEach((a) => (out[a] = null));
  c.set(0, c.dtype(0), out);
});

rule('OneHot', (c) => {
  const ind = c.shape(0);
  const depth = c.value(1)?.[0] ?? null;
  if (!ind) return c.set(0, c.dtype(2), undefined);
  const axis = normAxis(c.node.int('axis', -1), ind.length + 1);
  const out = [...ind];
  out.splice(axis, 0, isNumber(depth) ? Math.trunc(depth) : depth);
  c.set(0, c.dtype(2), out);
});

rule('NonZero', (c) => {
  const x = c.shape(0);
  c.set(0, 'int64', [x ? x.length : null, null]);
});

rule('NonMaxSuppression', (c) => c.set(0, 'int64', [null, 3]));
