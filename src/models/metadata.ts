/**
 * What graft stores in an ONNX model's metadata_props so that the file alone is enough to predict
 * correctly anywhere: labels and preprocessing, as JSON strings under stable keys.
 */
import type { Model } from '../graph/graph.js';
import { validatePreprocess, type PreprocessConfig } from './preprocess.js';

export const META_LABELS = 'graft.labels';
export const META_PREPROCESS = 'graft.preprocess';
/** The value the classifier emits: "probabilities" (softmax inside the graph) or "logits". */
export const META_OUTPUT_KIND = 'graft.output';

export function readLabels(m: Model): string[] | undefined {
  const raw = m.metadata.get(META_LABELS);
  if (!raw) return undefined;
  const v: unknown = JSON.parse(raw);
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
}

export function writeLabels(m: Model, labels: readonly string[]): void {
  m.metadata.set(META_LABELS, JSON.stringify(labels));
}

export function readPreprocess(m: Model): PreprocessConfig | undefined {
  const raw = m.metadata.get(META_PREPROCESS);
  if (!raw) return undefined;
  return validatePreprocess(JSON.parse(raw) as PreprocessConfig, `metadata "${META_PREPROCESS}"`);
}

export function writePreprocess(m: Model, c: PreprocessConfig): void {
  m.metadata.set(META_PREPROCESS, JSON.stringify(validatePreprocess(c)));
}
