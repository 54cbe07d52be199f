import type { Config, KTensor, LayerContext } from './context.js';

/** How one Keras layer class becomes ONNX nodes. */
export interface LayerConverter {
  /**
   * The layer's weights in the order Keras creates them (for manifests that name weights by index).
   * Omit for layers without weights.
   */
  weights?: (cfg: Config) => string[];
  /** Emits the layer's nodes; returns its output with its Keras shape. */
  convert: (ctx: LayerContext, inputs: readonly KTensor[]) => KTensor;
}

export type ConverterTable = Record<string, LayerConverter>;

/** The single input of a one-input layer. */
export function one(ctx: LayerContext, inputs: readonly KTensor[]): KTensor {
  if (inputs.length !== 1) ctx.unsupported(`it was called on ${inputs.length} tensors, expected 1`);
  return inputs[0];
}
