/**
 * The benchmark models, built the way graft builds them for a user:
 * - bench/out/<name>.onnx: bench/torch/export_models.py's torchvision export (random weights, BN nodes kept),
 *   the exact weights the PyTorch side runs;
 * - backbones cut at a feature value and average-pooled (src/graph/surgery cutAt, as feature extraction does);
 * - fine-tuning models: backbone + a new 10-class head composed (as src/train/finetune.ts does), trainable
 *   sets matching bench/torch/train.py's configurations via the graph's stages (src/train/stages.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compose } from '../../src/graph/compose.js';
import type { Model } from '../../src/graph/graph.js';
import { loadModel } from '../../src/graph/serialize.js';
import { cutAt, findClassifier } from '../../src/graph/surgery.js';
import { buildHead } from '../../src/train/head.js';
import { stagesOf, unfrozenStages } from '../../src/train/stages.js';

export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = join(BENCH_DIR, '..');
export const OUT_DIR = join(BENCH_DIR, 'out');

export type TorchModel = 'resnet18' | 'mobilenet_v2';

/** Keras MobileNetV2 block_13_expand_relu (the builtin's default feature layer) = torchvision features.14.conv.0's output. */
export const MOBILENET_BLOCK13_EXPAND = '/features/features.14/conv/conv.0/conv.0.2/Clip_output_0';

export interface ModelsJson {
  [name: string]: {
    input: string;
    output: string;
    size: number;
    check: { input: { seed: number; dims: number[]; lo: number; hi: number }; logits: number[] };
    bn: { file: string };
    bnfolded: { file: string };
  };
}

export function modelsJson(): ModelsJson {
  const path = join(OUT_DIR, 'models.json');
  if (!existsSync(path)) throw new Error(`${path} is missing: run /usr/bin/python3 bench/torch/export_models.py first (bench/run.ts does it when needed).`);
  return JSON.parse(readFileSync(path, 'utf8')) as ModelsJson;
}

export function onnxPath(name: TorchModel, folded = false): string {
  return join(OUT_DIR, `${name}${folded ? '_bnfolded' : ''}.onnx`);
}

/** The backbone up to `value` (default: the map before the classifier's pooling), pooled to [N, C]. */
export function cutBackbone(model: Model, value?: string): Model {
  const c = findClassifier(model);
  const backbone = cutAt(model, value ?? c.spatialValue ?? c.featureValue, { pool: 'avg' });
  const input = backbone.graph.inputs[0];
  input.shape = ['N', ...(input.shape ?? [null, 3, 224, 224]).slice(1)];
  return backbone;
}

/** last-stage-cached: the last stage trained on the frozen prefix's cached output (graft without augmentation). */
export type TrainConfig = 'full' | 'last-stage' | 'last-stage-cached' | 'head';

export interface FinetuneModel {
  model: Model;
  backbone: Model;
  headParams: string[];
  trainable: string[];
  /** The value where the first trainable stage starts (the frozen prefix's output); undefined for 'full'/'head'. */
  prefixAt?: string;
}

/** torchvision model cut before its classifier + a new `classes`-way linear head (no dropout: train.py has none either). */
export function finetuneModel(name: TorchModel, config: TrainConfig, classes = 10): FinetuneModel {
  const backbone = cutBackbone(loadModel(onnxPath(name)));
  const dim = backbone.graph.outputs[0].shape?.[1];
  if (typeof dim !== 'number') throw new Error(`${name}: unknown feature width`);
  const head = buildHead({ inputDim: dim, numClasses: classes, dropout: 0, seed: 0 });
  const model = compose(backbone, head.model);
  // full: every stage; last-stage: resnet18 layer4 / mobilenet_v2 its 7×7 stage (features.14–18), as train.py
  const stages = config === 'head' ? [] : unfrozenStages(stagesOf(backbone), config === 'full' ? 'all' : 1);
  const trainable = [...stages.flatMap((s) => s.params), ...head.params];
  return { model, backbone, headParams: head.params, trainable, prefixAt: config.startsWith('last-stage') ? stages[0].input : undefined };
}
