import { GraftError } from '../errors.js';
import { float32, type Tensor } from '../onnx/tensor.js';
import { isDefaultDomain, type Node, type OpsetImport, type ValueInfo } from './ir.js';

export interface GraphIndex {
  /** value name → the node that produces it (graph inputs and initializers have none). */
  producer: Map<string, Node>;
  /** value name → nodes that read it, in graph order, once per node. */
  consumers: Map<string, Node[]>;
}

export class Graph {
  name: string;
  nodes: Node[];
  /** Runtime inputs (initializers are not listed here even when the file listed them as inputs). */
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  /** Known types and shapes of intermediate values. */
  valueInfo: Map<string, ValueInfo>;
  docString?: string;

  constructor(init: Partial<Pick<Graph, 'name' | 'nodes' | 'inputs' | 'outputs' | 'initializers' | 'valueInfo' | 'docString'>> = {}) {
    this.name = init.name ?? 'graph';
    this.nodes = init.nodes ?? [];
    this.inputs = init.inputs ?? [];
    this.outputs = init.outputs ?? [];
    this.initializers = init.initializers ?? new Map();
    this.valueInfo = init.valueInfo ?? new Map();
    this.docString = init.docString;
  }

  index(): GraphIndex {
    const producer = new Map<string, Node>();
    const consumers = new Map<string, Node[]>();
    for (const n of this.nodes) {
      for (const o of n.outputs) if (o) producer.set(o, n);
      for (const i of new Set(n.inputs)) {
        if (!i) continue;
        let list = consumers.get(i);
        if (!list) consumers.set(i, (list = []));
        list.push(n);
      }
    }
    return { producer, consumers };
  }

  findNode(name: string): Node | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  nodesOfType(...opTypes: string[]): Node[] {
    const set = new Set(opTypes);
    return this.nodes.filter((n) => set.has(n.opType));
  }

  /** Type/shape of any named value: graph input, output, initializer or annotated intermediate. */
  valueType(name: string): ValueInfo | undefined {
    const init = this.initializers.get(name);
    if (init) return { name, dtype: init.dtype, shape: [...init.dims] };
    return this.inputs.find((v) => v.name === name) ?? this.valueInfo.get(name) ?? this.outputs.find((v) => v.name === name);
  }

  /** Every value name used anywhere in the graph (for generating fresh names). */
  allNames(): Set<string> {
    const names = new Set<string>();
    for (const v of this.inputs) names.add(v.name);
    for (const v of this.outputs) names.add(v.name);
    for (const k of this.initializers.keys()) names.add(k);
    for (const n of this.nodes) {
      names.add(n.name);
      for (const v of n.inputs) if (v) names.add(v);
      for (const v of n.outputs) if (v) names.add(v);
    }
    return names;
  }

  /** Sorts nodes so that every node comes after the producers of its inputs; stable for sorted graphs. */
  sortTopologically(): void {
    this.nodes = topologicalOrder(this);
  }

  /**
   * Puts trained values into the named initializers (default: every name in `weights`), each keeping its
   * dims: what a trainer hands back is flat Float32Arrays keyed by initializer name.
   */
  setWeights(weights: Readonly<Record<string, Float32Array>>, names: Iterable<string> = Object.keys(weights)): void {
    // every name checked before any is set: a refused call changes nothing
    const updates = [...names].map((name) => {
      const old = this.initializers.get(name);
      if (!old) throw new GraftError('LAYER_NOT_FOUND', `the graph has no weight "${name}" to set.`, { subject: name });
      const w = weights[name];
      const size = old.dims.reduce((p, d) => p * d, 1);
      if (w?.length !== size) {
        throw new GraftError('INVALID_ARGUMENT', `weight "${name}" holds ${size} values (dims ${old.dims.join(' × ')}); ${w ? `${w.length} were given` : 'none was given'}.`, { subject: name });
      }
      return [name, float32(old.dims, w)] as const;
    });
    for (const [name, t] of updates) this.initializers.set(name, t);
  }

  /**
   * Drops nodes and initializers that no graph output depends on. Runtime inputs are kept unless
   * `dropInputs` is set (a cut graph no longer needs inputs past the cut).
   */
  prune(opts: { dropInputs?: boolean } = {}): void {
    const { producer } = this.index();
    const live = new Set<string>();
    const liveNodes = new Set<Node>();
    const stack = this.outputs.map((o) => o.name);
    while (stack.length) {
      const v = stack.pop()!;
      if (live.has(v)) continue;
      live.add(v);
      const p = producer.get(v);
      if (p && !liveNodes.has(p)) {
        liveNodes.add(p);
        for (const i of p.inputs) if (i) stack.push(i);
        // subgraph attributes may capture outer values by name; keep those conservatively
        for (const a of p.attrs.values()) if (a.kind === 'proto') for (const name of outerNamesOf(a.value)) stack.push(name);
      }
    }
    this.nodes = this.nodes.filter((n) => liveNodes.has(n));
    for (const k of [...this.initializers.keys()]) if (!live.has(k)) this.initializers.delete(k);
    for (const k of [...this.valueInfo.keys()]) if (!live.has(k)) this.valueInfo.delete(k);
    if (opts.dropInputs) this.inputs = this.inputs.filter((i) => live.has(i.name));
  }

  clone(): Graph {
    return new Graph({
      name: this.name,
      nodes: this.nodes.map((n) => n.clone()),
      inputs: this.inputs.map((v) => ({ ...v, shape: v.shape && [...v.shape] })),
      outputs: this.outputs.map((v) => ({ ...v, shape: v.shape && [...v.shape] })),
      initializers: new Map(this.initializers),
      valueInfo: new Map([...this.valueInfo].map(([k, v]) => [k, { ...v, shape: v.shape && [...v.shape] }])),
      docString: this.docString,
    });
  }
}

function outerNamesOf(a: { g?: { node?: { input?: string[] | null }[] | null } | null }): string[] {
  const out: string[] = [];
  for (const n of a.g?.node ?? []) for (const i of n.input ?? []) if (i) out.push(i);
  return out;
}

export function topologicalOrder(g: Graph): Node[] {
  const available = new Set<string>([...g.inputs.map((i) => i.name), ...g.initializers.keys(), '']);
  const { producer } = g.index();
  // values nobody in the graph produces (e.g. outer-scope names) count as available
  for (const n of g.nodes) for (const i of n.inputs) if (!producer.has(i)) available.add(i);
  const waiting = new Map<Node, number>();
  const readers = new Map<string, Node[]>();
  const ready: Node[] = [];
  for (const n of g.nodes) {
    const missing = new Set(n.inputs.filter((i) => !available.has(i)));
    waiting.set(n, missing.size);
    for (const m of missing) {
      let list = readers.get(m);
      if (!list) readers.set(m, (list = []));
      list.push(n);
    }
    if (missing.size === 0) ready.push(n);
  }
  const order: Node[] = [];
  // process in original order where possible, so an already-sorted graph stays as it is
  const position = new Map(g.nodes.map((n, i) => [n, i]));
  const queue = ready.sort((a, b) => position.get(a)! - position.get(b)!);
  while (queue.length) {
    const n = queue.shift()!;
    order.push(n);
    for (const o of n.outputs) {
      if (!o || available.has(o)) continue;
      available.add(o);
      for (const r of readers.get(o) ?? []) {
        const left = waiting.get(r)! - 1;
        waiting.set(r, left);
        if (left === 0) insertByPosition(queue, r, position);
      }
    }
  }
  if (order.length !== g.nodes.length) {
    const stuck = g.nodes.filter((n) => !order.includes(n)).slice(0, 3).map((n) => n.name || n.opType);
    throw new GraftError('MODEL_INVALID', `the graph has a cycle or reads values nothing produces (at ${stuck.join(', ')}).`);
  }
  return order;
}

function insertByPosition(queue: Node[], n: Node, position: Map<Node, number>): void {
  const p = position.get(n)!;
  let i = queue.length;
  while (i > 0 && position.get(queue[i - 1])! > p) i--;
  queue.splice(i, 0, n);
}

export class Model {
  irVersion: number;
  opsetImports: OpsetImport[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  /** ONNX metadata_props: graft keeps preprocessing and labels here (see models/metadata). */
  metadata: Map<string, string>;
  graph: Graph;
  /** Model-local functions, kept verbatim. */
  functions: unknown[];

  constructor(init: Partial<Omit<Model, 'opset' | 'clone'>> & { graph: Graph }) {
    this.irVersion = init.irVersion ?? 8;
    this.opsetImports = init.opsetImports ?? [{ domain: '', version: 17 }];
    this.producerName = init.producerName ?? 'graft';
    this.producerVersion = init.producerVersion ?? '';
    this.domain = init.domain ?? '';
    this.modelVersion = init.modelVersion ?? 0;
    this.docString = init.docString ?? '';
    this.metadata = init.metadata ?? new Map();
    this.graph = init.graph;
    this.functions = init.functions ?? [];
  }

  /** The default-domain (ai.onnx) opset version. */
  get opset(): number {
    return this.opsetImports.find((o) => isDefaultDomain(o.domain))?.version ?? 1;
  }

  clone(): Model {
    return new Model({ ...this, opsetImports: this.opsetImports.map((o) => ({ ...o })), metadata: new Map(this.metadata), graph: this.graph.clone() });
  }
}
