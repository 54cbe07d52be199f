/** `graft eval`: metrics of a classifier (e.g. a graft OUT directory) on a labelled image folder. */
import type { Command } from 'commander';
import { evaluate } from '../tasks/evaluate.js';
import type { MetricsJson } from '../train/metrics-json.js';
import { addPreprocessOptions, modelOptions, positiveIntArg, preprocessFlags, write, type CommandModule, type GlobalOptions, type PreprocessOptionValues } from './common.js';
import { itemProgress } from './progress.js';

interface EvalCliOptions extends GlobalOptions, PreprocessOptionValues {
  json?: boolean;
  batch: number;
  labels?: string;
  out?: string;
}

const pct = (x: number | null) => (x === null ? '–' : `${(x * 100).toFixed(1)}%`);

/** Accuracy, loss, the per-class table and the confusion matrix, for a person. */
export function formatEval(m: MetricsJson): string[] {
  const lines = [`Accuracy ${pct(m.accuracy)}  loss ${m.loss?.toFixed(4) ?? '–'}  on ${m.n.val} images${m.skipped.length ? ` (${m.skipped.length} skipped)` : ''}`];
  if (m.topK) lines.push(`Top-${m.topK.k} accuracy ${pct(m.topK.accuracy)}`);
  const present = (m.perClass ?? []).map((c, i) => ({ c, i })).filter(({ c }) => c.support > 0);
  const w = Math.min(32, Math.max(5, ...present.map(({ c }) => c.label.length)));
  lines.push('', `${'CLASS'.padEnd(w)}  PRECISION  RECALL     F1  SUPPORT`);
  for (const { c } of present) {
    lines.push(`${c.label.slice(0, w).padEnd(w)}  ${pct(c.precision).padStart(9)}  ${pct(c.recall).padStart(6)}  ${pct(c.f1).padStart(5)}  ${String(c.support).padStart(7)}`);
  }
  if (m.confusion && present.length <= 20) {
    lines.push('', 'Confusion (rows = true class, columns = predicted), classes present in the data:');
    const idx = present.map(({ i }) => i);
    const cw = Math.max(4, ...idx.map((i) => String(Math.max(...idx.map((j) => m.confusion![i][j]))).length));
    lines.push(`${''.padEnd(w)}  ${idx.map((_, k) => String(k + 1).padStart(cw)).join(' ')}`);
    idx.forEach((i, k) => lines.push(`${`${k + 1} ${m.classes[i]}`.slice(0, w).padEnd(w)}  ${idx.map((j) => String(m.confusion![i][j]).padStart(cw)).join(' ')}`));
  }
  return lines;
}

export const evalCommand: CommandModule = {
  register(program, ctx) {
    const cmd = program
      .command('eval')
      .description('evaluate a classifier (a graft output directory, or any model spec) on a labelled image folder')
      .argument('<model>', 'graft output directory, builtin name, .onnx file, hf:owner/repo, or https URL')
      .argument('<data>', 'image folder laid out as DATA/<class>/*.jpg (class names must be labels of the model), or a manifest')
      .option('--json', 'print the metrics as JSON (the metrics.json schema)')
      .option('-b, --batch <n>', 'images per model run', positiveIntArg('--batch'), 16)
      .option('--labels <file>', "class names for the model's outputs (JSON array/object or one per line)")
      .option('-o, --out <dir>', 'also write metrics.json and report.html here');
    addPreprocessOptions(cmd).action(async (model: string, data: string, _o: unknown, command: Command) => {
      const o = command.optsWithGlobals<EvalCliOptions>();
      let progress: ReturnType<typeof itemProgress> | undefined;
      const m = await evaluate(model, data, {
        ...modelOptions(o),
        threads: o.threads,
        labelsFile: o.labels,
        preprocess: preprocessFlags(o),
        batchSize: o.batch,
        out: o.out,
        signal: ctx.signal,
        onProgress: (p) => {
          progress ??= itemProgress({ total: p.total, unit: 'images', quiet: o.quiet, stream: ctx.err });
          progress.update(p.done, p.failed);
        },
      }).finally(() => progress?.stop());
      if (!o.quiet) for (const s of m.skipped) ctx.err.write(`graft: skipped ${s.path}: ${s.message}\n`);
      const text = o.json ? [JSON.stringify(m, null, 2)] : formatEval(m);
      for (const line of text) await write(ctx.out, `${line}\n`);
      ctx.exitCode = 0;
    });
  },
};
