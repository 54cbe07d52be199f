/**
 * The builtin models, as a registry of data (after timm's `_registry.py` + `pretrained_cfg`): where each
 * comes from, its labels and preprocessing, and how to make it an ONNX file. Conversion happens once per
 * (model, source version, importer version) and is cached under `<cacheDir>/builtins/`.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GraftError, throwIfAborted } from '../errors.js';
import type { Model } from '../graph/graph.js';
import { saveModel } from '../graph/serialize.js';
import { cacheDir } from './cache.js';
import { META_OUTPUT_KIND, writeLabels, writePreprocess } from './metadata.js';
import { loadNsfwjsModel, nsfwjsPackage, type NsfwjsModel } from './nsfwjs.js';
import type { PreprocessConfig } from './preprocess.js';
import { importLayersModel, IMPORTER_VERSION } from './tfjs/import.js';

export interface BuiltinSource {
  /** npm package that ships the weights, and the version the registry entry was checked against. */
  package: 'nsfwjs';
  version: string;
  /** The model's directory inside the package (`dist/models/<model>`). */
  model: NsfwjsModel;
}

export interface BuiltinModel {
  name: string;
  description: string;
  architecture: string;
  source: BuiltinSource;
  license: string;
  /** [height, width] of the network input. */
  inputSize: [number, number];
  labels: readonly string[];
  preprocess: Readonly<PreprocessConfig>;
  /** Total parameters as Keras counts them (BatchNorm moving statistics included). */
  params: number;
  /** The graph's input and output value names. */
  input: string;
  output: string;
  /** The layer whose activations make the best fixed features for a new head, when measured. */
  defaultFeatureLayer?: string;
}

const NSFW_LABELS = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;

const NSFWJS_LICENSE = 'MIT (nsfwjs by Infinite Red); backbones ImageNet-initialised Keras applications, fine-tuned by nsfwjs';

/**
 * What nsfwjs does before predicting: straight bilinear resize, /255, nothing else. (nsfwjs calls
 * tf.image.resizeBilinear with alignCorners = true, a sampling grid PreprocessConfig does not name.)
 */
function nsfwjsPreprocess(size: number): PreprocessConfig {
  return {
    inputSize: [size, size],
    resize: 'squash',
    cropPct: 1,
    interpolation: 'bilinear',
    rescale: 1 / 255,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    channelOrder: 'RGB',
    layout: 'NCHW',
  };
}

/** An nsfwjs layers model: Keras input `input_1`, softmax head `dense_3`, the five NSFW classes. */
function nsfwjsBuiltin(model: NsfwjsModel, e: Pick<BuiltinModel, 'description' | 'architecture' | 'params' | 'defaultFeatureLayer'> & { size: number }): BuiltinModel {
  return {
    name: model,
    description: e.description,
    architecture: e.architecture,
    source: { package: 'nsfwjs', version: '4.4.0', model },
    license: NSFWJS_LICENSE,
    inputSize: [e.size, e.size],
    labels: NSFW_LABELS,
    preprocess: nsfwjsPreprocess(e.size),
    params: e.params,
    input: 'input_1',
    output: 'dense_3',
    ...(e.defaultFeatureLayer ? { defaultFeatureLayer: e.defaultFeatureLayer } : {}),
  };
}

export const BUILTIN_MODELS: Readonly<Record<string, Readonly<BuiltinModel>>> = Object.freeze({
  mobilenet_v2: nsfwjsBuiltin('mobilenet_v2', {
    description: 'MobileNetV2 (α 1.0, 224×224) NSFW classifier from nsfwjs: small and fast.',
    architecture: 'MobileNetV2',
    size: 224,
    params: 2_619_461,
    // nsfwjs fine-tuned the top of the network to its 5 classes; a linear probe on block 13's expansion
    // (576 channels, pooled) transfers best — 0.75 mean accuracy vs 0.61 at out_relu, the layer before
    // the classifier, on three emoji sets (scripts/measure-feature-layers.ts; table in README.md)
    defaultFeatureLayer: 'block_13_expand_relu',
  }),
  inception_v3: nsfwjsBuiltin('inception_v3', {
    description: 'InceptionV3 (299×299) NSFW classifier from nsfwjs: larger and slower, more accurate.',
    architecture: 'InceptionV3',
    size: 299,
    params: 22_360_869,
    // as for mobilenet_v2, the top was fine-tuned to nsfwjs' classes: mixed7 (768 channels at 17×17,
    // pooled) transfers best — 0.75 mean accuracy vs 0.63 at mixed10 and 0.43 at dense_2, the
    // classifier's input (scripts/measure-feature-layers.ts inception_v3; table in README.md)
    defaultFeatureLayer: 'mixed7',
  }),
});

export const DEFAULT_BUILTIN = 'mobilenet_v2';

export function isBuiltin(name: string): boolean {
  return Object.hasOwn(BUILTIN_MODELS, name);
}

export function listBuiltins(): BuiltinModel[] {
  return Object.values(BUILTIN_MODELS);
}

export function getBuiltin(name: string): Readonly<BuiltinModel> {
  if (!isBuiltin(name)) {
    throw new GraftError('MODEL_UNKNOWN_BUILTIN', `"${name}" is not a builtin model. Builtin models: ${Object.keys(BUILTIN_MODELS).join(', ')} (default ${DEFAULT_BUILTIN}).`, {
      subject: name,
    });
  }
  return BUILTIN_MODELS[name];
}

export interface BuiltinProgress {
  phase: 'load' | 'convert' | 'write' | 'done';
  fraction?: number;
}

export interface EnsureBuiltinOptions {
  /** Cache root (default: cacheDir(), i.e. $GRAFT_CACHE or ~/.cache/graft). */
  cacheDir?: string;
  onProgress?: (e: BuiltinProgress) => void;
  signal?: AbortSignal;
}

/** `<cacheRoot>/builtins/<name>-nsfwjs<version>-<importer>.onnx`, for the installed nsfwjs version. */
export function builtinCachePath(name: string, cacheRoot: string = cacheDir()): string {
  const entry = getBuiltin(name);
  const version = nsfwjsPackage().version;
  return join(cacheRoot, 'builtins', `${entry.name}-${entry.source.package}${version}-${IMPORTER_VERSION}.onnx`);
}

/** Converts a builtin to an in-memory ONNX model with its labels and preprocessing in the metadata. */
export function convertBuiltin(name: string, onProgress?: (e: BuiltinProgress) => void): Model {
  const entry = getBuiltin(name);
  onProgress?.({ phase: 'load', fraction: 0 });
  const loaded = loadNsfwjsModel(entry.source.model);
  onProgress?.({ phase: 'convert', fraction: 0.4 });
  const model = importLayersModel(loaded.modelJson, { data: loaded.weightData, specs: loaded.specs }, { name: entry.name });
  const version = nsfwjsPackage().version;
  model.docString = `${entry.description} Converted by graft from nsfwjs@${version} (dist/models/${entry.source.model}). License: ${entry.license}.`;
  writeLabels(model, entry.labels);
  writePreprocess(model, { ...entry.preprocess });
  // the Keras head ends in softmax
  model.metadata.set(META_OUTPUT_KIND, 'probabilities');
  return model;
}

// one conversion per file at a time within this process; across processes the atomic rename keeps the cache whole
const inFlight = new Map<string, Promise<{ path: string }>>();

/**
 * The builtin as an ONNX file in the cache, converted on first use. Concurrent callers share one
 * conversion; a file is only ever visible complete.
 */
export function ensureBuiltin(name: string, opts: EnsureBuiltinOptions = {}): Promise<{ path: string }> {
  let path: string;
  try {
    path = builtinCachePath(name, opts.cacheDir ?? cacheDir());
  } catch (e) {
    return Promise.reject(e);
  }
  if (isCached(path)) {
    opts.onProgress?.({ phase: 'done', fraction: 1 });
    return Promise.resolve({ path });
  }
  let job = inFlight.get(path);
  if (!job) {
    job = convertToCache(name, path, opts).finally(() => inFlight.delete(path));
    inFlight.set(path, job);
  }
  return job;
}

function isCached(path: string): boolean {
  return existsSync(path) && statSync(path).size > 0;
}

async function convertToCache(name: string, path: string, opts: EnsureBuiltinOptions): Promise<{ path: string }> {
  // let callers attach handlers (and an abort) before the synchronous conversion blocks the loop
  await new Promise((r) => setImmediate(r));
  throwIfAborted(opts.signal);
  const model = convertBuiltin(name, opts.onProgress);
  throwIfAborted(opts.signal);
  opts.onProgress?.({ phase: 'write', fraction: 0.8 });
  if (!isCached(path)) saveModel(model, path, { externalData: false });
  opts.onProgress?.({ phase: 'done', fraction: 1 });
  return { path };
}
