/** The tfjs-layers (Keras) → ONNX importer. */
export { importLayersModel, onnxShape, IMPORTER_VERSION, IMPORT_OPSET, IMPORT_IR_VERSION, type ImportOptions, type LayersWeights } from './import.js';
export { decodeWeights, concatBytes, specsOfManifest, type WeightBytes, type WeightQuantization, type WeightSpec, type WeightsGroup, type WeightsManifest } from './weights.js';
export { parseTopology, modelConfigOf, type KerasGraph, type KerasLayer, type TensorRef } from './topology.js';
export { LAYER_CONVERTERS, supportedLayerClasses } from './registry.js';
export { ACTIVATIONS } from './layers/activations.js';
export type { LayerConverter, ConverterTable } from './converter.js';
export type { KTensor, LayerContext } from './context.js';
