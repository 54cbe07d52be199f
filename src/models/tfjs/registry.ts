/**
 * Keras layer class → converter: one table, assembled from the per-family tables. Another Keras model
 * converts as soon as every class it uses is listed here.
 */
import type { ConverterTable } from './converter.js';
import { ACTIVATION_LAYERS } from './layers/activations.js';
import { CONV_LAYERS } from './layers/conv.js';
import { CORE_LAYERS } from './layers/core.js';
import { MERGE_LAYERS } from './layers/merge.js';
import { NORMALIZATION_LAYERS } from './layers/normalization.js';
import { POOLING_LAYERS } from './layers/pooling.js';
import { RESHAPING_LAYERS } from './layers/reshaping.js';

const TABLE: ConverterTable = {
  ...CORE_LAYERS,
  ...ACTIVATION_LAYERS,
  ...CONV_LAYERS,
  ...NORMALIZATION_LAYERS,
  ...POOLING_LAYERS,
  ...MERGE_LAYERS,
  ...RESHAPING_LAYERS,
};

/** Other names Keras registers for the same classes. */
const ALIASES: Record<string, string> = {
  Convolution2D: 'Conv2D',
  SeparableConvolution2D: 'SeparableConv2D',
  Convolution2DTranspose: 'Conv2DTranspose',
  Deconvolution2D: 'Conv2DTranspose',
  MaxPool2D: 'MaxPooling2D',
  AvgPool2D: 'AveragePooling2D',
  GlobalAvgPool2D: 'GlobalAveragePooling2D',
  GlobalMaxPool2D: 'GlobalMaxPooling2D',
};

export const LAYER_CONVERTERS: Readonly<ConverterTable> = Object.freeze({
  ...TABLE,
  ...Object.fromEntries(Object.entries(ALIASES).map(([alias, name]) => [alias, TABLE[name]])),
});

/** Layer classes the importer converts (besides InputLayer and nested models). */
export function supportedLayerClasses(): string[] {
  return Object.keys(LAYER_CONVERTERS).sort();
}
