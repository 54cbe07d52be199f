/**
 * What a layer converter sees: the layer's config, its weights, its inputs (with Keras shapes) and a
 * small vocabulary for emitting ONNX nodes under the layer's name.
 *
 * Layout rule of the importer: a Keras tensor of rank 4 (NHWC) lives in the ONNX graph as NCHW; every
 * other rank keeps Keras' order. Shapes tracked here are always in Keras order.
 */
import { GraftError } from '../../errors.js';
import type { GraphBuilder } from '../../graph/builder.js';
import type { AttrInput } from '../../graph/ir.js';
import { toFloat32, type Tensor } from '../../onnx/tensor.js';
import type { KerasLayer } from './topology.js';

export type KDim = number | null;

/** A value in the ONNX graph and the shape Keras gives it (batch first, channels last). */
export interface KTensor {
  readonly name: string;
  readonly shape: readonly KDim[];
}

/** Keras axis of a rank-4 tensor → ONNX axis under NCHW. */
const NHWC_TO_NCHW_AXIS = [0, 2, 3, 1];

export class LayerContext {
  readonly name: string;
  readonly className: string;
  readonly cfg: Config;

  constructor(
    readonly b: GraphBuilder,
    layer: KerasLayer,
    private readonly weightOf: (local: string) => Tensor,
  ) {
    this.name = layer.name;
    this.className = layer.className;
    this.cfg = new Config(layer.config, this);
  }

  /** Emits one node under the layer's name and returns its output. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrInput | undefined> = {}): string {
    const name = this.b.fresh(`${this.name}/${opType}`);
    return this.b.op(opType, inputs, attrs, { name, outputs: [this.b.fresh(`${this.name}/${opType}_out`)] });
  }

  /** A new initializer named after the layer. */
  constant(what: string, t: Tensor): string {
    return this.b.initializer(`${this.name}/${what}`, t);
  }

  /** The layer's weight `local` ("kernel", "bias", "gamma"...) as float32. */
  weight(local: string): Tensor<Float32Array> {
    const t = this.weightOf(local);
    return toFloat32(t);
  }

  unsupported(why: string): never {
    throw new GraftError(
      'IMPORT_UNSUPPORTED_LAYER',
      `Layer "${this.name}" (${this.className}) cannot be converted to ONNX: ${why}.`,
      { subject: this.name },
    );
  }

  /** Requires a rank-4 (image) input. */
  image(x: KTensor): KTensor {
    if (x.shape.length !== 4) this.unsupported(`it expects a 4-D image tensor, got rank ${x.shape.length}`);
    if (this.cfg.str('data_format', 'channels_last') !== 'channels_last') this.unsupported('only data_format "channels_last" is supported');
    return x;
  }

  /** ONNX axis for a Keras axis (negative counts from the end) of a rank-`rank` tensor. */
  axis(rank: number, kerasAxis: number): number {
    const a = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
    if (a < 0 || a >= rank) this.unsupported(`axis ${kerasAxis} is out of range for a rank-${rank} tensor`);
    return rank === 4 ? NHWC_TO_NCHW_AXIS[a] : a;
  }

  /** The value in Keras' element order (NHWC for images). */
  toKerasOrder(x: KTensor): string {
    return x.shape.length === 4 ? this.op('Transpose', [x.name], { perm: [0, 2, 3, 1] }) : x.name;
  }

  /** A value in Keras' element order, moved into the graph's layout for its rank. */
  fromKerasOrder(name: string, rank: number): string {
    return rank === 4 ? this.op('Transpose', [name], { perm: [0, 3, 1, 2] }) : name;
  }
}

/** Typed reads of a layer config with messages that name the layer. */
export class Config {
  constructor(
    readonly raw: Record<string, unknown>,
    private readonly ctx: LayerContext,
  ) {}

  private get(keys: string | readonly string[]): unknown {
    for (const k of typeof keys === 'string' ? [keys] : keys) if (this.raw[k] !== undefined && this.raw[k] !== null) return this.raw[k];
    return undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  num(keys: string | readonly string[], fallback?: number): number {
    const v = this.get(keys);
    if (v === undefined && fallback !== undefined) return fallback;
    // Keras 2.2 sometimes serialised scalars as numpy 0-d arrays → plain numbers or 1-element lists
    const n = Array.isArray(v) && v.length === 1 ? v[0] : v;
    if (typeof n !== 'number') return this.ctx.unsupported(`config "${String(keys)}" is ${JSON.stringify(v)}, not a number`);
    return n;
  }

  optNum(keys: string | readonly string[]): number | undefined {
    return this.get(keys) === undefined ? undefined : this.num(keys);
  }

  str(keys: string | readonly string[], fallback: string): string {
    const v = this.get(keys);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') return this.ctx.unsupported(`config "${String(keys)}" is ${JSON.stringify(v)}, not a string`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    return typeof v === 'boolean' ? v : fallback;
  }

  /** An int or [a, b] (kernel sizes, strides, dilations). */
  pair(key: string, fallback: [number, number]): [number, number] {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v === 'number') return [v, v];
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0] as number, v[1] as number];
    return this.ctx.unsupported(`config "${key}" is ${JSON.stringify(v)}, not an int or a pair`);
  }

  /** Padding / cropping: n, [a, b] (symmetric per axis) or [[top, bottom], [left, right]]. */
  margins(key: string, fallback: number): [[number, number], [number, number]] {
    const v = this.get(key) ?? fallback;
    if (typeof v === 'number') return [
      [v, v],
      [v, v],
    ];
    if (Array.isArray(v) && v.length === 2) {
      const [h, w] = v.map((x) => (typeof x === 'number' ? [x, x] : x)) as unknown[];
      const ok = (p: unknown): p is [number, number] => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'number');
      if (ok(h) && ok(w)) return [h, w];
    }
    return this.ctx.unsupported(`config "${key}" is ${JSON.stringify(v)}`);
  }

  /** Keras activations: a string, or Keras 3's serialised {class_name, config} object. */
  activation(key = 'activation'): string {
    const v = this.get(key);
    if (v === undefined) return 'linear';
    if (typeof v === 'string') return v;
    if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      if (typeof o.config === 'string') return o.config;
      if (typeof o.class_name === 'string') return o.class_name;
    }
    return this.ctx.unsupported(`activation ${JSON.stringify(v)} is not understood`);
  }

  /** An axis given as an int or a one-element list (BatchNormalization in TF 2.x). */
  axis(key: string, fallback: number): number {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (Array.isArray(v) && v.length !== 1) this.ctx.unsupported(`config "${key}" names several axes (${JSON.stringify(v)})`);
    return this.num(key);
  }
}

/** TF's "same" padding along one axis: output ⌈in/s⌉, the odd pixel goes at the end. */
export function samePads(size: KDim, kernel: number, stride: number, dilation: number): [number, number] | undefined {
  if (size === null) return undefined;
  const out = Math.ceil(size / stride);
  const effective = (kernel - 1) * dilation + 1;
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
}

/** Output size of a conv / pool window along one axis. */
export function windowOutput(size: KDim, kernel: number, stride: number, dilation: number, padding: string): KDim {
  if (size === null) return null;
  if (padding === 'same') return Math.ceil(size / stride);
  const effective = (kernel - 1) * dilation + 1;
  return Math.floor((size - effective) / stride) + 1;
}
