/**
 * Emits nodes into a Graph with fresh names: what the importer, surgery and autodiff use to write ONNX
 * without string bookkeeping. Constants are deduplicated so repeated shape vectors cost one initializer.
 */
import { float32, int64, scalarFloat32, type Tensor } from '../onnx/tensor.js';
import type { Graph } from './graph.js';
import { Node, type AttrInput } from './ir.js';

export interface OpOptions {
  /** Node name; defaults to a fresh name from the op type. */
  name?: string;
  /** Output names, or how many fresh outputs to make (default 1). */
  outputs?: readonly string[] | number;
  domain?: string;
}

export class GraphBuilder {
  readonly graph: Graph;
  private readonly taken: Set<string>;
  private readonly prefix: string;
  private readonly constants = new Map<string, string>();
  private counter = 0;

  /** The default-domain opset the emitted nodes must be valid in (forms differ across versions). */
  readonly opset: number;

  constructor(graph: Graph, opts: { prefix?: string; opset?: number } = {}) {
    this.graph = graph;
    this.prefix = opts.prefix ?? '';
    this.opset = opts.opset ?? 17;
    this.taken = graph.allNames();
  }

  /** A name not used anywhere in the graph yet. */
  fresh(base: string): string {
    const stem = `${this.prefix}${base}`;
    let name = stem;
    while (this.taken.has(name)) name = `${stem}_${++this.counter}`;
    this.taken.add(name);
    return name;
  }

  /** Marks names as used (e.g. names chosen by the caller for graph inputs). */
  reserve(...names: string[]): void {
    for (const n of names) this.taken.add(n);
  }

  /** Appends a node and returns its outputs. */
  node(opType: string, inputs: readonly (string | undefined)[], attrs: Record<string, AttrInput | undefined> = {}, opts: OpOptions = {}): string[] {
    const outs = opts.outputs ?? 1;
    const outputs = typeof outs === 'number' ? Array.from({ length: outs }, () => this.fresh(`${opType.toLowerCase()}_out`)) : [...outs];
    if (typeof outs !== 'number') this.reserve(...outputs);
    const defined = Object.entries(attrs).filter((e): e is [string, AttrInput] => e[1] !== undefined);
    const node = new Node({
      name: opts.name ? this.claim(opts.name) : this.fresh(opType),
      opType,
      domain: opts.domain,
      inputs: inputs.map((i) => i ?? ''),
      outputs,
      attrs: Object.fromEntries(defined),
    });
    this.graph.nodes.push(node);
    return outputs;
  }

  /** Appends a single-output node and returns the output's name. */
  op(opType: string, inputs: readonly (string | undefined)[], attrs: Record<string, AttrInput | undefined> = {}, opts: OpOptions = {}): string {
    return this.node(opType, inputs, attrs, opts)[0];
  }

  /**
   * A Reduce* node over constant axes, in the form the opset wants: ReduceSum takes axes as an input
   * from opset 13, the other reductions from opset 18.
   */
  reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceMax' | 'ReduceMin' | 'ReduceProd', x: string, axes: readonly number[], keepdims: boolean): string {
    const asInput = op === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    return asInput ? this.op(op, [x, this.i64(axes)], { keepdims: keepdims ? 1 : 0 }) : this.op(op, [x], { axes: [...axes], keepdims: keepdims ? 1 : 0 });
  }

  /** Adds an initializer under a fresh name derived from `base`. */
  initializer(base: string, t: Tensor): string {
    const name = this.fresh(base);
    this.graph.initializers.set(name, t);
    return name;
  }

  /** An int64 vector constant (axes, shapes, pads), shared across uses. */
  i64(values: readonly number[]): string {
    return this.cached(`i64:${values.join(',')}`, () => int64([values.length], values));
  }

  /** An int64 scalar constant. */
  i64Scalar(value: number): string {
    return this.cached(`i64s:${value}`, () => int64([], [value]));
  }

  /** A float32 scalar constant, shared across uses. */
  f32(value: number): string {
    return this.cached(`f32:${Object.is(value, -0) ? '-0' : value}`, () => scalarFloat32(value));
  }

  /** A float32 vector constant, shared across uses. */
  f32s(values: readonly number[]): string {
    return this.cached(`f32v:${values.join(',')}`, () => float32([values.length], values));
  }

  /** A constant made once per `key` and shared across uses (for tensors the helpers above don't cover). */
  shared(key: string, make: () => Tensor): string {
    return this.cached(`shared:${key}`, make);
  }

  private cached(key: string, make: () => Tensor): string {
    let name = this.constants.get(key);
    if (!name) {
      name = this.initializer('const', make());
      this.constants.set(key, name);
    }
    return name;
  }

  private claim(name: string): string {
    if (!this.taken.has(name)) {
      this.taken.add(name);
      return name;
    }
    return this.fresh(name);
  }
}
