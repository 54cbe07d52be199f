/**
 * Joins two graphs: the tail's input is fed by a value of the base graph (e.g. a cut backbone's
 * features feed a new head). Names of the tail that clash with the base's are renamed, so any two
 * models compose.
 */
import { GraftError } from '../errors.js';
import type { Model } from './graph.js';

export interface ComposeOptions {
  /** Value of the base graph that feeds the tail (default: the base's only output). */
  from?: string;
  /** Input of the tail that receives it (default: the tail's only input). */
  into?: string;
}

export function compose(base: Model, tail: Model, opts: ComposeOptions = {}): Model {
  const out = base.clone();
  const g = out.graph;
  const from = opts.from ?? (g.outputs.length === 1 ? g.outputs[0].name : undefined);
  if (!from) throw new GraftError('MODEL_UNSUPPORTED', 'the base model has several outputs; say which one feeds the tail.');
  const into = opts.into ?? (tail.graph.inputs.length === 1 ? tail.graph.inputs[0].name : undefined);
  if (!into) throw new GraftError('MODEL_UNSUPPORTED', 'the tail model has several inputs; say which one is fed.');

  const taken = g.allNames();
  const rename = new Map<string, string>([[into, from]]);
  const fresh = (name: string) => {
    if (rename.has(name)) return rename.get(name)!;
    let n = name;
    for (let k = 1; taken.has(n); k++) n = `${name}_${k}`;
    taken.add(n);
    rename.set(name, n);
    return n;
  };
  const t = tail.graph.clone();
  for (const [name, tensor] of t.initializers) g.initializers.set(fresh(name), tensor);
  for (const n of t.nodes) {
    n.name = fresh(n.name);
    n.inputs = n.inputs.map((v) => (v ? fresh(v) : v));
    n.outputs = n.outputs.map((v) => (v ? fresh(v) : v));
    g.nodes.push(n);
  }
  for (const [name, vi] of t.valueInfo) if (name !== into) g.valueInfo.set(fresh(name), { ...vi, name: fresh(name) });
  g.outputs = t.outputs.map((o) => ({ ...o, name: fresh(o.name) }));
  // opsets: from 13 on, the ops graft emits keep their semantics, so the newer version serves both
  // graphs; an older base keeps its version and the tail must use only ops unchanged since opset 1
  const baseOpset = base.opset;
  if (baseOpset >= 13) {
    const versions = new Map(out.opsetImports.map((o) => [o.domain, o.version]));
    for (const o of tail.opsetImports) versions.set(o.domain, Math.max(versions.get(o.domain) ?? 0, o.version));
    out.opsetImports = [...versions].map(([domain, version]) => ({ domain, version }));
  } else {
    const stable = new Set(['Gemm', 'Relu', 'Softmax', 'Flatten', 'Identity', 'Add', 'Mul', 'MatMul']);
    const odd = t.nodes.filter((n) => !stable.has(n.opType)).map((n) => n.opType);
    if (odd.length) throw new GraftError('MODEL_UNSUPPORTED', `the base model uses opset ${baseOpset}; graft cannot attach ${[...new Set(odd)].join(', ')} to it. Re-export the model with opset ≥ 13.`);
  }
  out.irVersion = Math.max(out.irVersion, tail.irVersion);
  g.prune();
  return out;
}
