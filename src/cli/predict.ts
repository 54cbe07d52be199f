/** `graft predict`: classify images with a pretrained model; a table, or JSON with --json. */
import type { Command } from 'commander';
import { GraftError } from '../errors.js';
import { DEFAULT_BUILTIN } from '../models/builtins.js';
import { openClassifier } from '../tasks/classifier.js';
import { expandImages, predict, type PredictResult } from '../tasks/predict.js';
import { addPreprocessOptions, modelOptions, nonNegativeNumberArg, positiveIntArg, preprocessFlags, write, type CliContext, type CommandModule, type GlobalOptions, type OutStream, type PreprocessOptionValues } from './common.js';
import { itemProgress, modelProgress } from './progress.js';

interface PredictCliOptions extends GlobalOptions, PreprocessOptionValues {
  model: string;
  top: number;
  batch: number;
  json?: boolean;
  labels?: string;
  maxPixels?: number;
}

/** Probability as a percentage a person reads at a glance. */
export function percent(p: number): string {
  return `${(p * 100).toFixed(2)}%`;
}

/** The human table: one row per (image, rank); a skipped image gets one row saying why. */
export class PredictTable {
  private readonly imageWidth: number;
  constructor(
    images: readonly string[],
    private readonly labelWidth: number,
  ) {
    this.imageWidth = Math.min(60, Math.max(5, ...images.map((i) => i.length)));
  }

  header(): string {
    return `${'IMAGE'.padEnd(this.imageWidth)}  ${'#'.padStart(2)}  ${'LABEL'.padEnd(this.labelWidth)}  ${'PROBABILITY'.padStart(11)}`;
  }

  rows(r: PredictResult): string[] {
    const img = r.image.padEnd(this.imageWidth);
    if ('error' in r) return [`${img}  ${'-'.padStart(2)}  skipped: ${r.error.code}`];
    return r.predictions.map(
      (p, i) => `${i === 0 ? img : ''.padEnd(this.imageWidth)}  ${String(i + 1).padStart(2)}  ${p.label.padEnd(this.labelWidth)}  ${percent(p.probability).padStart(11)}`,
    );
  }
}

async function run(images: string[], o: PredictCliOptions, ctx: CliContext): Promise<void> {
  const files = await expandImages(images);
  const progress = itemProgress({ total: files.length, unit: 'images', quiet: o.quiet, stream: ctx.err });
  const model = modelProgress({ quiet: o.quiet, stream: ctx.err, spec: o.model });
  let ok = 0;
  let failed = 0;
  let firstError: { code: string; message: string } | undefined;
  let pending: string | undefined;
  let jsonOpen = false;
  // lines for a terminal go through the progress bar (drawn above it); pipes and files get plain writes
  const emit = async (line: string, stream: OutStream) => {
    if (stream.isTTY) progress.print(line, stream);
    else await write(stream, `${line}\n`);
  };
  const classifier = await openClassifier(o.model, {
    ...modelOptions(o),
    threads: o.threads,
    labelsFile: o.labels,
    preprocess: preprocessFlags(o),
    signal: ctx.signal,
    onProgress: model.onProgress,
  }).finally(() => model.stop());
  const table = new PredictTable(files, Math.min(40, Math.max(5, ...classifier.labels.map((l) => l.length))));
  try {
    const stream = predict(files, {
      classifier,
      topK: o.top,
      batchSize: o.batch,
      maxPixels: o.maxPixels,
      signal: ctx.signal,
      onProgress: (p) => progress.update(p.done, p.failed),
    });
    if (!o.json) await emit(table.header(), ctx.out);
    for await (const r of stream) {
      if ('error' in r) {
        failed++;
        firstError ??= r.error;
        // with one image, its failure is the command's error message (below)
        if (!o.quiet && files.length > 1) await emit(`graft: skipped ${r.image}: ${r.error.message}`, ctx.err);
      } else ok++;
      if (o.json) {
        // one element per line, streamed (10 000 results never sit in memory); each waits for the next to
        // know whether it takes a comma
        if (!jsonOpen) await emit('[', ctx.out);
        jsonOpen = true;
        if (pending !== undefined) await emit(`${pending},`, ctx.out);
        pending = JSON.stringify(r);
      } else {
        for (const line of table.rows(r)) await emit(line, ctx.out);
      }
    }
  } finally {
    progress.stop();
    await classifier.close();
    // a run cut short still leaves well-formed JSON of the images finished (the exit code says it is partial)
    if (jsonOpen) await write(ctx.out, `${pending === undefined ? '' : `${pending}\n`}]\n`);
  }
  if (ok === 0 && firstError) {
    const code = firstError.code as GraftError['code'];
    if (files.length === 1) throw new GraftError(code, firstError.message);
    throw new GraftError(code, `none of the ${files.length} images could be classified (first failure: ${firstError.message})`);
  }
  if (failed && !o.quiet) await write(ctx.err, `graft: classified ${ok} image${ok === 1 ? '' : 's'}, skipped ${failed}.\n`);
  ctx.exitCode = 0;
}

export const predictCommand: CommandModule = {
  register(program, ctx) {
    const cmd = program
      .command('predict')
      .description('classify images with a pretrained model (scenario 1)')
      .argument('<images...>', 'image files and/or directories (searched recursively)')
      .option('-m, --model <spec>', 'builtin name, .onnx file, model directory, hf:owner/repo[@rev][#variant], or https URL', DEFAULT_BUILTIN)
      .option('-k, --top <k>', 'classes to show per image', positiveIntArg('--top'), 5)
      .option('-b, --batch <n>', 'images per model run', positiveIntArg('--batch'), 8)
      .option('--json', 'print a JSON array of {image, predictions: [{label, index, probability}]} (or {image, error})')
      .option('--labels <file>', 'class names: JSON array/object or one per line (overrides the model\'s)')
      .option('--max-pixels <n>', 'skip images with more pixels than this (0 = no limit)', nonNegativeNumberArg('--max-pixels'));
    addPreprocessOptions(cmd).action(async (images: string[], _o: unknown, command: Command) => {
      await run(images, command.optsWithGlobals<PredictCliOptions>(), ctx);
    });
  },
};
