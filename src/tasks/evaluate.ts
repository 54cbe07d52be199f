/**
 * `graft eval`: a classifier (any model spec, typically a graft OUT directory) on a labelled folder or
 * manifest → the same metrics a training run reports (accuracy, loss, confusion, per class, worst
 * errors). Folder classes are matched to the model's labels by name; a class the model does not know
 * is an error, not a silent zero.
 */
import { loadDataset } from '../data/dataset.js';
import { GraftError } from '../errors.js';
import { writeReport } from '../report/index.js';
import { classificationMetrics } from '../train/metrics.js';
import { buildMetricsJson, writeMetricsJson, type MetricsJson, type SkippedFile } from '../train/metrics-json.js';
import { GRAFT_VERSION } from '../version.js';
import { openClassifier, type ClassifierOptions } from './classifier.js';
import { predict, type PredictProgress } from './predict.js';

export interface EvaluateOptions extends Omit<ClassifierOptions, 'onProgress'> {
  batchSize?: number;
  onProgress?: (p: PredictProgress) => void;
  /** Also write metrics.json and report.html into this directory. */
  out?: string;
}

export async function evaluate(modelSpec: string, data: string, opts: EvaluateOptions = {}): Promise<MetricsJson> {
  const t0 = performance.now();
  const dataset = await loadDataset(data, { signal: opts.signal });
  const { onProgress, out, batchSize, ...classifierOpts } = opts;
  const classifier = await openClassifier(modelSpec, classifierOpts);
  try {
    const labels = classifier.labels;
    const index = new Map(labels.map((l, i) => [l, i]));
    const unknown = dataset.classes.filter((c) => !index.has(c));
    if (unknown.length) {
      throw new GraftError(
        'LABEL_MISMATCH',
        `the model does not know the class${unknown.length > 1 ? 'es' : ''} ${unknown.map((c) => JSON.stringify(c)).join(', ')} of ${data}. Its labels are ${labels
          .slice(0, 12)
          .map((c) => JSON.stringify(c))
          .join(', ')}${labels.length > 12 ? ', …' : ''}. Rename the folders to match, or evaluate a model trained on these classes.`,
      );
    }
    const K = classifier.numClasses;
    const probs: number[] = [];
    const truth: number[] = [];
    const paths: string[] = [];
    const skipped: SkippedFile[] = [];
    const items = dataset.items;
    let k = 0;
    for await (const r of predict(
      items.map((i) => i.path),
      { classifier, topK: K, batchSize, signal: opts.signal, onProgress },
    )) {
      const item = items[k++];
      if ('error' in r) {
        skipped.push({ path: r.image, code: r.error.code, message: r.error.message });
        continue;
      }
      const row = new Array<number>(K).fill(0);
      for (const p of r.predictions) row[p.index] = p.probability;
      probs.push(...row);
      truth.push(index.get(dataset.classes[item.label])!);
      paths.push(item.path);
    }
    if (!truth.length) throw new GraftError('DATASET_EMPTY', `none of the ${items.length} images in ${data} could be read; see the skipped files.`);
    const val = classificationMetrics(Float32Array.from(probs), truth, K);
    const metrics = buildMetricsJson({
      mode: 'eval',
      model: modelSpec,
      featureLayer: null,
      classes: labels,
      n: { train: 0, val: truth.length },
      val,
      valPaths: paths,
      seconds: (performance.now() - t0) / 1000,
      skipped,
      graftVersion: GRAFT_VERSION,
    });
    if (out) {
      writeMetricsJson(out, metrics);
      await writeReport(out, metrics);
    }
    return metrics;
  } finally {
    await classifier.close();
  }
}
