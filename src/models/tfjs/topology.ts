/**
 * Keras / tfjs-layers model configs, normalised to one shape: a list of layers, each with the calls
 * (inbound nodes) that wire it, plus the model's input and output tensors. Reads Sequential and
 * functional configs in the Keras 2.x list format (nsfwjs is Keras 2.2.4), tfjs-layers' own output and
 * Keras 3's `{args, kwargs}` inbound nodes.
 */
import { GraftError } from '../../errors.js';

/** Keras' address of a tensor: the layer, which call of it, which of its outputs. */
export interface TensorRef {
  layer: string;
  node: number;
  tensor: number;
}

export interface KerasLayer {
  className: string;
  name: string;
  config: Record<string, unknown>;
  /** One entry per call of the layer, listing the tensors the call consumed. */
  calls: TensorRef[][];
}

export interface KerasGraph {
  name: string;
  layers: KerasLayer[];
  inputs: TensorRef[];
  outputs: TensorRef[];
}

/** Class names that hold a whole model; such a layer is inlined into the graph. */
export const MODEL_CLASSES = new Set(['Sequential', 'Model', 'Functional']);

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(what: string): never {
  throw new GraftError('MODEL_INVALID', `Not a Keras / tfjs layers model: ${what}. Pass the model.json of a tfjs *layers* model (graph models are not supported).`);
}

/** Unwraps model.json → modelTopology → model_config down to `{class_name, config}`. */
export function modelConfigOf(json: unknown): Json {
  let v = json;
  if (isObject(v) && 'modelTopology' in v) {
    if (isObject(v) && v.format === 'graph-model') invalid('this model.json is a tfjs graph model');
    v = v.modelTopology;
  }
  if (isObject(v) && 'model_config' in v) v = v.model_config;
  if (!isObject(v) || typeof v.class_name !== 'string') invalid('no class_name / config at the top of the topology');
  if (isObject(v) && 'node' in v) invalid('the topology is a TensorFlow GraphDef');
  return v as Json;
}

export function parseTopology(json: unknown): KerasGraph {
  const top = modelConfigOf(json);
  const className = top.class_name as string;
  if (className === 'Sequential') return parseSequential(top.config);
  if (className === 'Model' || className === 'Functional') return parseFunctional(top.config);
  return invalid(`the top-level class is ${className}, not Sequential / Model / Functional`);
}

function layerName(l: Json): string {
  const cfg = isObject(l.config) ? l.config : {};
  const name = typeof l.name === 'string' ? l.name : typeof cfg.name === 'string' ? cfg.name : undefined;
  if (!name) invalid(`a ${String(l.class_name)} layer has no name`);
  return name;
}

function parseLayer(l: unknown, calls: TensorRef[][]): KerasLayer {
  if (!isObject(l) || typeof l.class_name !== 'string') invalid('a layer entry has no class_name');
  return { className: l.class_name as string, name: layerName(l), config: isObject(l.config) ? l.config : {}, calls };
}

/** batch_input_shape (Keras 2, tfjs), batch_shape (Keras 3) or input_shape (no batch). */
export function batchInputShape(cfg: Json): (number | null)[] | undefined {
  const s = cfg.batch_input_shape ?? cfg.batch_shape;
  if (Array.isArray(s)) return s.map((d) => (typeof d === 'number' ? d : null));
  if (Array.isArray(cfg.input_shape)) return [null, ...cfg.input_shape.map((d) => (typeof d === 'number' ? d : null))];
  return undefined;
}

function parseSequential(config: unknown): KerasGraph {
  // Keras < 2.2.3 stored a Sequential's config as the bare list of layers
  const rawLayers = Array.isArray(config) ? config : isObject(config) && Array.isArray(config.layers) ? config.layers : invalid('a Sequential config has no layers');
  const name = isObject(config) && typeof config.name === 'string' ? config.name : 'sequential';
  const layers: KerasLayer[] = [];
  let prev: TensorRef | undefined;
  rawLayers.forEach((raw, i) => {
    const layer = parseLayer(raw, []);
    if (i === 0 && layer.className !== 'InputLayer') {
      const shape = batchInputShape(layer.config);
      if (!shape) invalid(`the first layer of Sequential "${name}" declares no input shape`);
      // the name Keras gives the implicit input
      const input: KerasLayer = { className: 'InputLayer', name: `${layer.name}_input`, config: { batch_input_shape: shape }, calls: [] };
      layers.push(input);
      prev = { layer: input.name, node: 0, tensor: 0 };
    }
    if (prev) layer.calls.push([prev]);
    layers.push(layer);
    prev = { layer: layer.name, node: 0, tensor: 0 };
  });
  if (!prev) invalid(`Sequential "${name}" has no layers`);
  return { name, layers, inputs: [{ layer: layers[0].name, node: 0, tensor: 0 }], outputs: [prev] };
}

function parseFunctional(config: unknown): KerasGraph {
  if (!isObject(config) || !Array.isArray(config.layers)) invalid('a functional model config has no layers');
  const cfg = config as Json;
  const layers = (cfg.layers as unknown[]).map((l) => parseLayer(l, isObject(l) && Array.isArray(l.inbound_nodes) ? l.inbound_nodes.map(parseInboundNode) : []));
  return {
    name: typeof cfg.name === 'string' ? cfg.name : 'model',
    layers,
    inputs: parseRefList(cfg.input_layers, 'input_layers'),
    outputs: parseRefList(cfg.output_layers, 'output_layers'),
  };
}

/** `[[name, node, tensor], ...]`, or Keras 3's bare `[name, node, tensor]` for a single tensor. */
function parseRefList(v: unknown, what: string): TensorRef[] {
  if (!Array.isArray(v) || v.length === 0) invalid(`${what} is missing or empty`);
  if (typeof v[0] === 'string') return [toRef(v)];
  return v.map(toRef);
}

function toRef(v: unknown): TensorRef {
  if (!Array.isArray(v) || typeof v[0] !== 'string') invalid(`a tensor reference is ${JSON.stringify(v)}`);
  return { layer: v[0] as string, node: typeof v[1] === 'number' ? v[1] : 0, tensor: typeof v[2] === 'number' ? v[2] : 0 };
}

/** Keras 2: `[[name, node, tensor, kwargs], ...]`; Keras 3: `{args: [...keras tensors...], kwargs}`. */
function parseInboundNode(node: unknown): TensorRef[] {
  if (Array.isArray(node)) {
    if (typeof node[0] === 'string') return [toRef(node)];
    return node.map(toRef);
  }
  if (isObject(node) && Array.isArray(node.args)) {
    const refs: TensorRef[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (isObject(v)) {
        if (v.class_name === '__keras_tensor__' && isObject(v.config) && Array.isArray(v.config.keras_history)) refs.push(toRef(v.config.keras_history));
        else Object.values(v).forEach(walk);
      }
    };
    walk(node.args);
    return refs;
  }
  return invalid(`an inbound node is ${JSON.stringify(node)}`);
}
