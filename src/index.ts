/**
 * graft's library API. Everything the CLI does is a call into what is exported here.
 *
 *   import { predictAll } from 'graft';
 *   const results = await predictAll(['photo.jpg', 'photos/'], { model: 'mobilenet_v2', topK: 3 });
 *
 * Errors are GraftError with a stable `code` (see ERROR_CODES) and a message that says what to do.
 * Long calls take an AbortSignal (`signal`) and report progress through callbacks.
 */

// ---- errors
export { ERROR_CODES, GraftError, isGraftError } from './errors.js';
export type { GraftErrorCode } from './errors.js';

// ---- scenario 1: classify images with a pretrained model
export { expandImages, predict, predictAll, topK } from './tasks/predict.js';
export { IMAGE_EXTENSIONS } from './data/dataset.js';
export type { Prediction, PredictOptions, PredictProgress, PredictResult } from './tasks/predict.js';
export { openClassifier, planClassifier, softmaxRows } from './tasks/classifier.js';
export type {
  Classifier,
  ClassifierOptions,
  ClassifierPlan,
  ClassifyOptions,
  LabelsOrigin,
  OutputKind,
  PlanOptions,
  PreprocessOrigin,
  PreprocessResolution,
} from './tasks/classifier.js';

// ---- looking inside a model
export { inspect } from './tasks/inspect.js';
export type { FeatureLayerReport, InspectOptions, InspectReport, ValueReport } from './tasks/inspect.js';

// ---- training and evaluation (scenarios 2 and 3)
export { train, HEAD_DEFAULTS } from './train/train.js';
export type { TrainEvent, TrainOptions, TrainResult } from './train/train.js';
export { FINETUNE_DEFAULTS } from './train/finetune.js';
export type { FinetuneOptions } from './train/finetune.js';
export { evaluate } from './tasks/evaluate.js';
export type { EvaluateOptions } from './tasks/evaluate.js';
export { readMetricsJson, METRICS_SCHEMA_VERSION } from './train/metrics-json.js';
export type { EpochRecord, MetricsJson, SkippedFile } from './train/metrics-json.js';
export { renderReport, writeReport } from './report/index.js';
export { stagesOf } from './train/stages.js';
export type { Stage } from './train/stages.js';

// ---- compiling training steps (the engine under scenario 3)
export { buildEvalStep, buildTrainStep } from './autodiff/train-step.js';
export type { EvalStep, TrainStep, TrainStepOptions } from './autodiff/train-step.js';
export { Optimizer } from './train/optim.js';
export type { OptimizerConfig, ParamGroup } from './train/optim.js';
export { scheduleAt } from './train/schedule.js';
export type { ScheduleConfig } from './train/schedule.js';

// ---- models: sources, builtins, cache
export { parseModelSpec, resolveModel } from './models/sources.js';
export type { BuiltinResolver, ModelSourceKind, ModelSpec, ResolvedModel, ResolveOptions, ResolveProgress } from './models/sources.js';
export { BUILTIN_MODELS, DEFAULT_BUILTIN, ensureBuiltin, getBuiltin, isBuiltin, listBuiltins } from './models/builtins.js';
export type { BuiltinModel, BuiltinProgress } from './models/builtins.js';
export type { DownloadProgress } from './models/download.js';
export { cacheDir, offlineFromEnv } from './models/cache.js';

// ---- preprocessing and labels (they travel with the model in ONNX metadata_props)
export { IMAGENET_DEFAULT, validatePreprocess } from './models/preprocess.js';
export type { Interpolation, PreprocessConfig, ResizeMode } from './models/preprocess.js';
export { guessPreprocess, preprocessFromFlags, preprocessFromHf } from './models/preprocess-sources.js';
export type { PreprocessFlags } from './models/preprocess-sources.js';
export { defaultLabels, imagenetLabels, labelsFromHfConfig, readLabelsFile } from './models/labels.js';
export { META_LABELS, META_OUTPUT_KIND, META_PREPROCESS, readLabels, readPreprocess, writeLabels, writePreprocess } from './models/metadata.js';

// ---- images → tensors
export { DEFAULT_MAX_PIXELS, decodeImage } from './data/image.js';
export type { DecodedImage, DecodeOptions, ImageSource } from './data/image.js';
export { batchToTensor, imageToTensor, tensorSize } from './data/preprocess.js';
export type { BatchOptions, TensorOptions } from './data/preprocess.js';

// ---- runtime: onnxruntime-node sessions in worker threads, batched streaming
export { mapBatched, prepareEach, Runtime, Session } from './runtime/index.js';
export type { ItemResult, LoadOptions, MapBatchedOptions, RunOptions, RuntimeOptions } from './runtime/index.js';

// ---- ONNX graphs: load, edit, save
export { Graph, Model } from './graph/graph.js';
export type { Dim, ValueInfo } from './graph/ir.js';
export { loadModel, modelFromBytes, modelToBytes, saveModel } from './graph/serialize.js';
export type { SaveOptions } from './graph/serialize.js';
export { inferShapes } from './graph/shapes.js';
export { countParams, cutAt, cutPoints, featureCandidates, findClassifier, foldBatchNorm, opHistogram } from './graph/surgery.js';
export type { ClassifierInfo, CutOptions, FeatureCandidate, ParamCount } from './graph/surgery.js';
export type { DType, Tensor } from './onnx/tensor.js';
export { differentiableOps } from './autodiff/registry.js';
