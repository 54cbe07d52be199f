/**
 * graft's in-memory graph: ONNX semantics, plain objects, no protobuf. Values are named strings as in
 * ONNX; initializers hold TypedArray tensors; attributes keep their ONNX kind so files round-trip.
 */
import type { AttributeProto } from '../onnx/proto.js';
import type { DType, Tensor } from '../onnx/tensor.js';

export type AttrValue =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'floats'; readonly value: readonly number[] }
  | { readonly kind: 'strings'; readonly value: readonly string[] }
  | { readonly kind: 'tensor'; readonly value: Tensor }
  // subgraphs, sparse tensors, type protos: kept verbatim so a model survives a round trip untouched
  | { readonly kind: 'proto'; readonly value: AttributeProto };

/** The standard ONNX operator set, which files name either way. */
export const isDefaultDomain = (domain: string): boolean => domain === '' || domain === 'ai.onnx';

/** Attribute constructors for the cases plain JS values can't express (a float with an integral value). */
export const attr = {
  i: (value: number): AttrValue => ({ kind: 'int', value }),
  f: (value: number): AttrValue => ({ kind: 'float', value }),
  s: (value: string): AttrValue => ({ kind: 'string', value }),
  is: (value: readonly number[]): AttrValue => ({ kind: 'ints', value: [...value] }),
  fs: (value: readonly number[]): AttrValue => ({ kind: 'floats', value: [...value] }),
  ss: (value: readonly string[]): AttrValue => ({ kind: 'strings', value: [...value] }),
  t: (value: Tensor): AttrValue => ({ kind: 'tensor', value }),
};

/**
 * Loose attribute input: integers → int, other numbers → float, number[] → ints (floats if any is
 * fractional), strings → string, tensors → tensor. Use `attr.f(1)` for a float that happens to be whole.
 */
export type AttrInput = AttrValue | number | readonly number[] | string | readonly string[] | Tensor;

export function toAttr(v: AttrInput): AttrValue {
  if (typeof v === 'number') return Number.isInteger(v) ? attr.i(v) : attr.f(v);
  if (typeof v === 'string') return attr.s(v);
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'string')) return attr.ss(v as string[]);
    const nums = v as number[];
    return nums.every(Number.isInteger) ? attr.is(nums) : attr.fs(nums);
  }
  if ('kind' in (v as object)) return v as AttrValue;
  return attr.t(v as Tensor);
}

export class Node {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, AttrValue>;
  docString?: string;

  constructor(init: {
    name: string;
    opType: string;
    inputs: readonly string[];
    outputs: readonly string[];
    attrs?: Iterable<[string, AttrValue]> | Record<string, AttrInput>;
    domain?: string;
    docString?: string;
  }) {
    this.name = init.name;
    this.opType = init.opType;
    this.domain = init.domain ?? '';
    this.inputs = [...init.inputs];
    this.outputs = [...init.outputs];
    this.attrs = new Map();
    if (init.attrs) {
      const entries = Symbol.iterator in init.attrs ? (init.attrs as Iterable<[string, AttrValue]>) : Object.entries(init.attrs);
      for (const [k, v] of entries) this.attrs.set(k, toAttr(v as AttrInput));
    }
    this.docString = init.docString;
  }

  /** Input i, or undefined when absent or given as the empty name (ONNX's "optional input omitted"). */
  input(i: number): string | undefined {
    const v = this.inputs[i];
    return v ? v : undefined;
  }

  int(name: string, fallback: number): number;
  int(name: string): number | undefined;
  int(name: string, fallback?: number): number | undefined {
    const a = this.attrs.get(name);
    return a && a.kind === 'int' ? a.value : fallback;
  }

  float(name: string, fallback: number): number;
  float(name: string): number | undefined;
  float(name: string, fallback?: number): number | undefined {
    const a = this.attrs.get(name);
    if (!a) return fallback;
    return a.kind === 'float' || a.kind === 'int' ? a.value : fallback;
  }

  ints(name: string, fallback: readonly number[]): readonly number[];
  ints(name: string): readonly number[] | undefined;
  ints(name: string, fallback?: readonly number[]): readonly number[] | undefined {
    const a = this.attrs.get(name);
    return a && a.kind === 'ints' ? a.value : fallback;
  }

  floats(name: string): readonly number[] | undefined {
    const a = this.attrs.get(name);
    return a && (a.kind === 'floats' || a.kind === 'ints') ? a.value : undefined;
  }

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    const a = this.attrs.get(name);
    return a && a.kind === 'string' ? a.value : fallback;
  }

  tensor(name: string): Tensor | undefined {
    const a = this.attrs.get(name);
    return a && a.kind === 'tensor' ? a.value : undefined;
  }

  set(name: string, v: AttrInput): this {
    this.attrs.set(name, toAttr(v));
    return this;
  }

  clone(): Node {
    return new Node({
      name: this.name,
      opType: this.opType,
      domain: this.domain,
      inputs: this.inputs,
      outputs: this.outputs,
      attrs: this.attrs,
      docString: this.docString,
    });
  }
}

/** A dimension: a number when static, a name when symbolic ("N", "batch"), null when unknown. */
export type Dim = number | string | null;

export interface ValueInfo {
  name: string;
  dtype: DType;
  /** undefined when the rank itself is unknown. */
  shape?: Dim[];
}

export interface OpsetImport {
  domain: string;
  version: number;
}
