/**
 * What a training run leaves behind: OUT/model.onnx — backbone (cut at the feature layer, BatchNorm
 * folded) + trained head + Softmax, with labels and preprocessing in metadata_props so plain
 * onnxruntime in any language predicts correctly — plus labels.json. The whole directory appears
 * atomically: it is assembled next to OUT and renamed into place.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { GraftError } from '../errors.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Model } from '../graph/graph.js';
import { foldBatchNorm, removeIdentities } from '../graph/surgery.js';
import { META_OUTPUT_KIND, writeLabels, writePreprocess } from '../models/metadata.js';
import type { PreprocessConfig } from '../models/preprocess.js';
import { atomicWriteFile, removeQuietly, tempPathFor } from '../util/fs.js';
import { saveModel } from '../graph/serialize.js';
import { foldStandardization } from './head.js';

export const PROBABILITIES = 'probabilities';

export interface ExportOptions {
  labels: readonly string[];
  preprocess: PreprocessConfig;
  /** Extra metadata (graft.* keys): training mode, source model, feature layer... */
  info?: Record<string, string>;
}

/**
 * A classifier ending in logits (backbone + head, composed) → one inference model ending in Softmax.
 * Dropout and Identity nodes go, BatchNormalization is folded into the convolutions before it.
 */
export function exportClassifier(logitsModel: Model, opts: ExportOptions): Model {
  const joined = logitsModel.clone();
  const g = joined.graph;
  const logits = g.outputs[0].name;
  const b = new GraphBuilder(g, { opset: joined.opset });
  b.op('Softmax', [logits], { axis: -1 }, { outputs: [b.fresh(PROBABILITIES)] });
  const probs = g.nodes[g.nodes.length - 1].outputs[0];
  const K = opts.labels.length;
  g.outputs = [{ name: probs, dtype: 'float32', shape: ['N', K] }];
  removeIdentities(g);
  foldStandardization(joined);
  const folded = foldBatchNorm(joined);
  folded.graph.valueInfo.clear();
  folded.graph.name = 'graft_classifier';
  folded.producerName = 'graft';
  writeLabels(folded, opts.labels);
  writePreprocess(folded, opts.preprocess);
  folded.metadata.set(META_OUTPUT_KIND, 'probabilities');
  for (const [k, v] of Object.entries(opts.info ?? {})) folded.metadata.set(k, v);
  return folded;
}

/** Refuses to touch an existing, non-empty OUT unless `overwrite`; says what to do. */
export function checkOutputDir(out: string, overwrite: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new GraftError('OUTPUT_EXISTS', `${out} exists and is not a directory. Choose another --out.`, { subject: out });
  if (readdirSync(out).length > 0 && !overwrite) {
    throw new GraftError('OUTPUT_EXISTS', `${out} already exists. Pass --overwrite to replace it, or choose another --out.`, { subject: out });
  }
}

/**
 * Assembles OUT in a sibling temp directory via `write(dir)`, then swaps it into place, so OUT is
 * either the previous complete result or the new complete one — never half of each.
 */
export async function writeOutputDir(out: string, overwrite: boolean, write: (dir: string) => Promise<void>): Promise<string> {
  const target = resolve(out);
  checkOutputDir(target, overwrite);
  mkdirSync(dirname(target), { recursive: true });
  const staging = tempPathFor(join(dirname(target), `.${basename(target)}`));
  mkdirSync(staging);
  try {
    await write(staging);
    const old = existsSync(target) ? tempPathFor(join(dirname(target), `.${basename(target)}.old`)) : undefined;
    if (old) renameSync(target, old);
    renameSync(staging, target);
    if (old) removeQuietly(old);
  } catch (e) {
    removeQuietly(staging);
    throw e;
  }
  return target;
}

export function saveClassifier(dir: string, model: Model, labels: readonly string[]): void {
  saveModel(model, join(dir, 'model.onnx'));
  atomicWriteFile(join(dir, 'labels.json'), JSON.stringify(labels, null, 2) + '\n');
}
