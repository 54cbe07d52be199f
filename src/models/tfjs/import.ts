/**
 * tfjs-layers / Keras model → ONNX (opset 17, IR 8), NCHW. Walks the Keras graph call by call; each layer
 * class converts through one small entry of the registry. Every layer's output value, and the node that
 * produces it, is named after the layer, so feature layers can be addressed by their Keras names.
 */
import { GraftError } from '../../errors.js';
import { GraphBuilder } from '../../graph/builder.js';
import { Graph, Model } from '../../graph/graph.js';
import type { Dim, ValueInfo } from '../../graph/ir.js';
import type { Tensor } from '../../onnx/tensor.js';
import { LayerContext, type KTensor } from './context.js';
import type { ConverterTable, LayerConverter } from './converter.js';
import { LAYER_CONVERTERS } from './registry.js';
import { batchInputShape, MODEL_CLASSES, modelConfigOf, parseTopology, type KerasGraph, type KerasLayer, type TensorRef } from './topology.js';
import { decodeWeights, specsOfManifest, type WeightBytes, type WeightSpec, type WeightsManifest } from './weights.js';

/** Bumped whenever the importer's output changes, so cached conversions are redone. */
export const IMPORTER_VERSION = 'imp1';

export const IMPORT_OPSET = 17;
export const IMPORT_IR_VERSION = 8;

/** The weight bytes (all shards, in manifest order) and their specs, or already decoded tensors. */
export type LayersWeights =
  | Map<string, Tensor>
  | {
      data: WeightBytes;
      /** Flat specs (what tf.io save handlers receive); otherwise taken from `manifest`. */
      specs?: readonly WeightSpec[];
      /** Defaults to the model.json's own `weightsManifest`. */
      manifest?: WeightsManifest;
    };

export interface ImportOptions {
  /** Extra or replacement converters by Keras class name. */
  converters?: ConverterTable;
  /** Graph name; defaults to the Keras model's name. */
  name?: string;
}

const refKey = (r: TensorRef) => `${r.layer}\u0000${r.node}\u0000${r.tensor}`;

/** ONNX shape of a Keras shape under the importer's layout (rank 4 → NCHW), batch named "N". */
export function onnxShape(shape: readonly (number | null)[]): Dim[] {
  const s: Dim[] = shape.length === 4 ? [shape[0], shape[3], shape[1], shape[2]] : [...shape];
  s[0] = 'N';
  return s;
}

export function importLayersModel(modelJson: object, weights: LayersWeights, opts: ImportOptions = {}): Model {
  const kg = parseTopology(modelJson);
  const tensors = weights instanceof Map ? weights : decodeWeights(weights.data, weights.specs ?? specsOfManifest(weights.manifest ?? manifestOf(modelJson)));
  const graph = new Graph({ name: opts.name ?? kg.name });
  const top = modelConfigOf(modelJson);
  const keras = (modelJson as { modelTopology?: { keras_version?: string } }).modelTopology?.keras_version ?? (top.keras_version as string | undefined);
  const importer = new Importer(new GraphBuilder(graph), tensors, { ...LAYER_CONVERTERS, ...opts.converters }, /^3\./.test(keras ?? ''));
  const outputs = importer.convertGraph(kg, '', undefined);
  graph.outputs = outputs.map((t) => ({ name: t.name, dtype: 'float32', shape: onnxShape(t.shape) }));
  for (const v of [...graph.inputs, ...graph.outputs]) graph.valueInfo.delete(v.name);
  return new Model({
    graph,
    irVersion: IMPORT_IR_VERSION,
    opsetImports: [{ domain: '', version: IMPORT_OPSET }],
    producerName: 'graft',
    producerVersion: `tfjs-layers importer ${IMPORTER_VERSION}`,
    docString: `Converted from a Keras / tfjs layers model${keras ? ` (${keras})` : ''} by graft.`,
  });
}

function manifestOf(modelJson: object): WeightsManifest {
  const m = (modelJson as { weightsManifest?: WeightsManifest }).weightsManifest;
  if (!Array.isArray(m)) {
    throw new GraftError('MODEL_INVALID', 'The weights come without specs and the model.json has no weightsManifest. Pass the specs or the manifest with the weight bytes.');
  }
  return m;
}

class Importer {
  constructor(
    private readonly b: GraphBuilder,
    private readonly weights: Map<string, Tensor>,
    private readonly converters: ConverterTable,
    private readonly keras3: boolean,
  ) {}

  /**
   * A nested model owns a node of its own (input → output) before its first call, so configs number its
   * calls from 1 (tfjs and Keras 2 alike; Keras 3 does so only for functional models).
   */
  private firstCallIndex(layer: KerasLayer): number {
    if (!MODEL_CLASSES.has(layer.className)) return 0;
    return layer.className === 'Sequential' && this.keras3 ? 0 : 1;
  }

  /** Converts a (possibly nested) Keras graph; `given` feeds its inputs when it is nested. */
  convertGraph(kg: KerasGraph, scope: string, given: readonly KTensor[] | undefined): KTensor[] {
    if (given && given.length !== kg.inputs.length) {
      throw new GraftError('MODEL_INVALID', `Nested model "${kg.name}" has ${kg.inputs.length} inputs but is called on ${given.length}.`);
    }
    const values = new Map<string, KTensor>();
    const byName = new Map(kg.layers.map((l) => [l.name, l]));
    kg.inputs.forEach((ref, i) => {
      const layer = byName.get(ref.layer);
      if (!layer || layer.className !== 'InputLayer') throw new GraftError('MODEL_INVALID', `Model input "${ref.layer}" is not an InputLayer of the model.`);
      values.set(refKey(ref), given ? given[i] : this.graphInput(layer));
    });

    // calls in config order, each as soon as its inputs exist: one pass for the (usual) sorted config
    let pending = kg.layers.flatMap((layer) => layer.calls.map((refs, node) => ({ layer, node, refs })));
    while (pending.length) {
      const waiting: typeof pending = [];
      for (const c of pending) {
        if (!c.refs.every((r) => values.has(refKey(r)))) {
          waiting.push(c);
          continue;
        }
        const outs = this.convertCall(c.layer, c.refs.map((r) => values.get(refKey(r))!), scope);
        const node = c.node + this.firstCallIndex(c.layer);
        outs.forEach((t, i) => values.set(refKey({ layer: c.layer.name, node, tensor: i }), t));
      }
      if (waiting.length === pending.length) {
        const c = waiting[0];
        const missing = c.refs.find((r) => !values.has(refKey(r)))!;
        throw new GraftError('MODEL_INVALID', `Layer "${c.layer.name}" reads output ${missing.tensor} of call ${missing.node} of "${missing.layer}", which the model never produces.`);
      }
      pending = waiting;
    }
    return kg.outputs.map((r) => {
      const v = values.get(refKey(r));
      if (!v) throw new GraftError('MODEL_INVALID', `Model output "${r.layer}" is never computed.`);
      return v;
    });
  }

  private graphInput(layer: KerasLayer): KTensor {
    const shape = batchInputShape(layer.config);
    if (!shape) throw new GraftError('MODEL_INVALID', `InputLayer "${layer.name}" declares no batch_input_shape.`);
    const dtype = layer.config.dtype;
    if (typeof dtype === 'string' && dtype !== 'float32') {
      throw new GraftError('IMPORT_UNSUPPORTED_LAYER', `InputLayer "${layer.name}" takes ${dtype} values; graft imports float32 image models only.`, { subject: layer.name });
    }
    const name = this.b.fresh(layer.name);
    const info: ValueInfo = { name, dtype: 'float32', shape: onnxShape(shape) };
    this.b.graph.inputs.push(info);
    return { name, shape };
  }

  private convertCall(layer: KerasLayer, inputs: readonly KTensor[], scope: string): KTensor[] {
    if (MODEL_CLASSES.has(layer.className)) {
      const nested = parseTopology({ class_name: layer.className, config: layer.config });
      return this.convertGraph(nested, `${scope}${layer.name}/`, inputs);
    }
    if (layer.className === 'InputLayer') return inputs.slice(0, 1);
    const converter = this.converters[layer.className];
    if (!converter) {
      throw new GraftError(
        'IMPORT_UNSUPPORTED_LAYER',
        `Layer "${layer.name}" is a ${layer.className}, which graft cannot convert to ONNX yet. Supported layer classes: ${Object.keys(this.converters).sort().join(', ')}.`,
        { subject: layer.name },
      );
    }
    const graph = this.b.graph;
    const first = graph.nodes.length;
    const ctx: LayerContext = new LayerContext(this.b, layer, (local): Tensor => this.weightFor(layer, scope, converter, ctx, local));
    const out = converter.convert(ctx, inputs);
    return [this.nameAfterLayer(layer.name, out, first)];
  }

  /**
   * Gives the layer's output value, and the node producing it, the layer's name. A layer that emitted
   * nothing (dropout at inference) gets an Identity so that its name still exists in the graph.
   */
  private nameAfterLayer(layerName: string, out: KTensor, firstNode: number): KTensor {
    const graph = this.b.graph;
    const name = this.b.fresh(layerName);
    const emitted = graph.nodes.slice(firstNode);
    const producer = emitted.find((n) => n.outputs.includes(out.name));
    if (producer) {
      producer.outputs = producer.outputs.map((o) => (o === out.name ? name : o));
      for (const n of emitted) n.inputs = n.inputs.map((i) => (i === out.name ? name : i));
      producer.name = name;
    } else {
      this.b.op('Identity', [out.name], {}, { outputs: [name] });
      graph.nodes[graph.nodes.length - 1].name = name;
    }
    graph.valueInfo.set(name, { name, dtype: 'float32', shape: onnxShape(out.shape) });
    return { name, shape: out.shape };
  }

  private weightFor(layer: KerasLayer, scope: string, converter: LayerConverter, ctx: LayerContext, local: string): Tensor {
    const index = converter.weights?.(ctx.cfg).indexOf(local) ?? -1;
    const candidates = [`${scope}${layer.name}/${local}`, `${layer.name}/${local}`];
    candidates.push(...candidates.map((c) => `${c}:0`));
    if (index >= 0) candidates.push(`${scope}${layer.name}/${index}`, `${layer.name}/${index}`);
    for (const c of candidates) {
      const t = this.weights.get(c);
      if (t) return t;
    }
    const sample = [...this.weights.keys()].slice(0, 3).join(', ');
    throw new GraftError(
      'MODEL_INVALID',
      `Layer "${layer.name}" (${layer.className}) needs weight "${candidates[0]}", which the weights do not contain (they have e.g. ${sample || 'nothing'}). Check that the weight files belong to this model.json.`,
      { subject: layer.name },
    );
  }
}
