/**
 * Backbone features for a list of images: the backbone (cut at the feature layer, pooled to [N, D])
 * runs in the runtime; decoding of batch k+1 overlaps the backbone on batch k; rows are cached by
 * image content, so later runs and hyper-parameter changes skip the backbone entirely.
 */
import type { Model } from '../graph/graph.js';
import { modelToBytes } from '../graph/serialize.js';
import { inferShapes } from '../graph/shapes.js';
import { GraftError } from '../errors.js';
import { extractFeatures, FeatureCache, type ExtractedFeatures, type FeatureItem, type FeatureProgress, type StagedExtractor } from '../data/feature-cache.js';
import { batchToTensor, tensorSize } from '../data/preprocess.js';
import type { PreprocessConfig } from '../models/preprocess.js';
import type { Runtime } from '../runtime/index.js';

export function imageDims(pre: PreprocessConfig): number[] {
  const [h, w] = pre.inputSize;
  return pre.layout === 'NCHW' ? [3, h, w] : [h, w, 3];
}

/** The width of a cut backbone's [N, D] output. */
export function featureDim(backbone: Model): number {
  const out = backbone.graph.outputs[0].name;
  const shape = inferShapes(backbone).get(out)?.shape;
  const d = shape?.[1];
  if (shape?.length !== 2 || typeof d !== 'number') {
    throw new GraftError('MODEL_UNSUPPORTED', `the feature layer must give a [batch, features] output after pooling; got ${JSON.stringify(shape ?? 'unknown')}.`);
  }
  return d;
}

export interface ExtractOptions {
  runtime: Runtime;
  backbone: Model;
  modelId: string;
  layer: string;
  preprocess: PreprocessConfig;
  /** Cache directory; false disables the cache. */
  cache?: string | false;
  batchSize?: number;
  onProgress?: (p: FeatureProgress) => void;
  signal?: AbortSignal;
}

export async function backboneFeatures(items: readonly FeatureItem[], o: ExtractOptions): Promise<ExtractedFeatures> {
  const dim = featureDim(o.backbone);
  const session = await o.runtime.load(modelToBytes(o.backbone), { name: `backbone cut at ${o.layer}` });
  const input = o.backbone.graph.inputs[0].name;
  const output = o.backbone.graph.outputs[0].name;
  const per = tensorSize(o.preprocess);
  const dims = imageDims(o.preprocess);
  const extractor: StagedExtractor<Float32Array> = {
    async prepare(paths, ctx) {
      const failed = new Map<number, unknown>();
      const data = await batchToTensor(paths, o.preprocess, { onError: (i, e) => failed.set(i, e) });
      if (ctx.signal?.aborted) return { value: new Float32Array(0), failed };
      if (failed.size === 0) return { value: data };
      // run() sees only the images that decoded: pack them
      const packed = new Float32Array((paths.length - failed.size) * per);
      let k = 0;
      for (let i = 0; i < paths.length; i++) if (!failed.has(i)) packed.set(data.subarray(i * per, (i + 1) * per), per * k++);
      return { value: packed, failed };
    },
    async run(packed, paths) {
      const out = await session.run({ [input]: { dtype: 'float32', dims: [paths.length, ...dims], data: packed } }, { fetches: [output], transfer: true });
      const rows = out[output].data as Float32Array;
      return paths.map((_, i) => rows.subarray(i * dim, (i + 1) * dim));
    },
  };
  const cache =
    o.cache === false ? undefined : await FeatureCache.open({ modelId: o.modelId, layer: o.layer, preprocess: o.preprocess, dim, ...(o.cache ? { dir: o.cache } : {}) });
  try {
    return await extractFeatures(items, { cache, dim, extract: extractor, batchSize: o.batchSize ?? 32, onProgress: o.onProgress, signal: o.signal });
  } finally {
    await cache?.close();
    await session.release();
  }
}
