/** `graft train`: a new head (scenario 2) or fine-tuning (scenario 3) on a labelled image folder. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_BUILTIN } from '../models/builtins.js';
import type { MetricsJson } from '../train/metrics-json.js';
import { train, type TrainEvent, type TrainOptions } from '../train/train.js';
import { addPreprocessOptions, modelOptions, nonNegativeNumberArg, positiveIntArg, preprocessFlags, write, type CliContext, type CommandModule, type GlobalOptions, type PreprocessOptionValues } from './common.js';
import { itemProgress, type ItemProgress } from './progress.js';

interface TrainCliOptions extends GlobalOptions, PreprocessOptionValues {
  mode: 'head' | 'finetune';
  model: string;
  layer?: string;
  epochs?: number;
  batch?: number;
  lr?: number | 'find';
  val?: number;
  valDir?: string;
  seed?: number;
  out?: string;
  overwrite?: boolean;
  json?: boolean;
  hidden?: number;
  dropout?: number;
  labelSmoothing?: number;
  classWeights?: 'auto' | 'none';
  optimizer?: 'adamw' | 'adam' | 'sgd';
  weightDecay?: number;
  momentum?: number;
  schedule?: 'one-cycle' | 'cosine' | 'step' | 'constant';
  patience?: number;
  cache: boolean;
  unfreeze?: string;
  warmupEpochs?: number;
  lrMult?: number;
  augment: boolean;
  clipGrad?: number;
  bn?: 'frozen' | 'train';
  resume?: string;
}

export const DEFAULT_OUT = 'graft-out';

function fractionArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !(n >= 0 && n < 1)) throw new InvalidArgumentError(`${name} must be a fraction in [0, 1), e.g. 0.2.`);
    return n;
  };
}

function lrArg(v: string): number | 'find' {
  if (v === 'find') return 'find';
  const n = Number(v);
  if (v.trim() === '' || !(n > 0)) throw new InvalidArgumentError('--lr takes a positive number (e.g. 1e-3) or "find".');
  return n;
}

function wholeArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim())) throw new InvalidArgumentError(`${name} must be a whole number ≥ 0.`);
    return n;
  };
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)}%`);
const fix = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(4));

/** The options train() takes, from the command line. */
export function trainOptions(data: string, o: TrainCliOptions, signal: AbortSignal): TrainOptions {
  const resume = o.resume !== undefined;
  return {
    data,
    out: o.resume ?? o.out ?? DEFAULT_OUT,
    mode: resume ? 'finetune' : o.mode,
    model: o.model,
    layer: o.layer,
    epochs: o.epochs,
    batchSize: o.batch,
    lr: typeof o.lr === 'number' ? o.lr : undefined,
    lrFind: o.lr === 'find',
    val: o.val,
    valDir: o.valDir,
    seed: o.seed,
    overwrite: o.overwrite,
    hidden: o.hidden,
    dropout: o.dropout,
    labelSmoothing: o.labelSmoothing,
    classWeights: o.classWeights,
    optimizer: o.optimizer,
    weightDecay: o.weightDecay,
    momentum: o.momentum,
    schedule: o.schedule,
    patience: o.patience,
    noCache: !o.cache,
    unfreeze: o.unfreeze,
    warmupEpochs: o.warmupEpochs,
    lrMult: o.lrMult,
    augment: o.augment ? undefined : false,
    clipGrad: o.clipGrad,
    batchNorm: o.bn,
    resume,
    preprocess: preprocessFlags(o),
    threads: o.threads,
    ...modelOptions(o),
    signal,
  };
}

/** Progress and per-epoch lines on stderr while training. */
function reporter(o: TrainCliOptions, ctx: CliContext) {
  let features: ItemProgress | undefined;
  const say = (s: string) => {
    if (!o.quiet) ctx.err.write(`${s}\n`);
  };
  return (e: TrainEvent) => {
    switch (e.type) {
      case 'dataset': {
        say(`graft: ${e.classes.length} classes (${e.classes.slice(0, 8).join(', ')}${e.classes.length > 8 ? ', …' : ''}); ${e.train} training images, ${e.val} validation images`);
        for (const w of e.warnings) say(`graft: ${w.level === 'note' ? 'note' : 'warning'}: ${w.message}`);
        break;
      }
      case 'features': {
        const p = e.progress;
        features ??= itemProgress({ total: p.total, unit: 'images', quiet: o.quiet, stream: ctx.err });
        features.update(p.done, p.failed);
        if (p.done === p.total) {
          features.stop();
          say(`graft: features of ${p.total} images (${p.hits} from the cache, ${p.extracted} extracted, ${p.failed} skipped)`);
        }
        break;
      }
      case 'model':
        say(`graft: ${e.spec} cut at ${e.layer} → ${e.featureDim} features per image`);
        break;
      case 'epoch': {
        const r = e.record;
        say(
          `graft: epoch ${String(r.epoch).padStart(String(e.epochs).length)}/${e.epochs}${r.phase ? ` ${r.phase.padEnd(8)}` : ''}  train loss ${fix(r.trainLoss)} acc ${pct(r.trainAccuracy)}  val loss ${fix(r.valLoss)} acc ${pct(r.valAccuracy)}  lr ${r.lr.toExponential(1)}  ${r.seconds.toFixed(1)} s`,
        );
        break;
      }
      case 'exported':
        break;
    }
  };
}

/**
 * The head warm-up epoch of a fine-tuning run whose validation loss beats the exported weights', if any:
 * the export is the best fine-tuning epoch, so the user should hear when fine-tuning only made things worse.
 */
function bestWarmupEpoch(m: MetricsJson): { epoch: number; valLoss: number } | undefined {
  if (m.mode !== 'finetune' || m.loss === null) return undefined;
  let best: { epoch: number; valLoss: number } | undefined;
  for (const r of m.history) if (r.phase === 'head' && r.valLoss !== null && (!best || r.valLoss < best.valLoss)) best = { epoch: r.epoch, valLoss: r.valLoss };
  return best && best.valLoss < m.loss ? best : undefined;
}

export function summary(m: MetricsJson, out: string): string[] {
  const lines = [
    `Validation accuracy ${pct(m.accuracy)} (loss ${fix(m.loss)}) on ${m.n.val} images${m.bestEpoch ? `, weights of epoch ${m.bestEpoch}` : ''}; trained on ${m.n.train} images in ${m.seconds.toFixed(1)} s.`,
  ];
  if (m.accuracy === null) lines[0] = `Trained on ${m.n.train} images in ${m.seconds.toFixed(1)} s (no validation set).`;
  if (m.skipped.length) lines.push(`Skipped ${m.skipped.length} unreadable file${m.skipped.length === 1 ? '' : 's'} (listed in metrics.json and the report).`);
  const warmup = bestWarmupEpoch(m);
  if (warmup) {
    lines.push(
      `Note: fine-tuning did not get below the head warm-up's validation loss (${fix(warmup.valLoss)} at epoch ${warmup.epoch}); a lower --lr, fewer unfrozen stages (--unfreeze 1) or --mode head may fit this data better.`,
    );
  }
  lines.push(`Model:   ${out}/model.onnx (labels and preprocessing inside; also labels.json)`, `Metrics: ${out}/metrics.json`, `Report:  ${out}/report.html`);
  lines.push(`Try:     graft predict --model ${out} IMAGE`);
  return lines;
}

export const trainCommand: CommandModule = {
  register(program, ctx) {
    const cmd = program
      .command('train')
      .description('train a classifier for your classes: a new head on a frozen pretrained network (--mode head, scenario 2) or fine-tuning (--mode finetune, scenario 3)')
      .argument('<data>', 'image folder laid out as DATA/<class>/*.jpg, or a CSV/JSON manifest of path,label')
      .addOption(new Option('--mode <mode>', 'head: train a new head on frozen features; finetune: also train the backbone (all of it, or its last stages with --unfreeze)').choices(['head', 'finetune']).default('head'))
      .option('-m, --model <spec>', 'pretrained model: builtin name, .onnx file, model directory, hf:owner/repo, or https URL', DEFAULT_BUILTIN)
      .option('--layer <name>', 'feature layer to cut at (a value or node name; see graft inspect); default: measured per builtin, else the classifier input')
      .option('-o, --out <dir>', `output directory (default ${DEFAULT_OUT})`)
      .option('--overwrite', 'replace an existing output directory')
      .option('--json', 'print metrics.json on stdout when done')
      .option('--epochs <n>', 'epochs (head default 30; fine-tune default 10, after the warm-up)', positiveIntArg('--epochs'))
      .option('-b, --batch <n>', 'batch size (head default 32, fine-tune default 16)', positiveIntArg('--batch'))
      .option('--lr <x|find>', 'learning rate (head default 3e-3, fine-tune 1e-3), or "find" for the LR range test (fine-tune)', lrArg)
      .option('--val <fraction>', 'stratified validation split, seeded (default 0.2; 0 = train on everything)', fractionArg('--val'))
      .option('--val-dir <dir>', 'a separate validation folder (classes must be a subset of the training classes)')
      .option('--seed <n>', 'random seed for splits, initialisation, shuffling, augmentation and dropout (default 0)', wholeArg('--seed'))
      .option('--hidden <n>', 'add a hidden layer of n units (ReLU) to the head', positiveIntArg('--hidden'))
      .option('--dropout <p>', 'dropout before each head layer (default 0.2)', fractionArg('--dropout'))
      .option('--label-smoothing <e>', 'label smoothing (default 0)', fractionArg('--label-smoothing'))
      .addOption(new Option('--class-weights <mode>', 'weight the loss by inverse class frequency').choices(['auto', 'none']))
      .addOption(new Option('--optimizer <name>', 'optimizer (default adamw)').choices(['adamw', 'adam', 'sgd']))
      .option('--weight-decay <x>', 'weight decay (head default 1e-4, fine-tune 1e-2; not applied to biases)', nonNegativeNumberArg('--weight-decay'))
      .option('--momentum <x>', 'SGD momentum (default 0.9)', nonNegativeNumberArg('--momentum'))
      .addOption(new Option('--schedule <name>', 'learning-rate schedule (default one-cycle)').choices(['one-cycle', 'cosine', 'step', 'constant']))
      .option('--patience <n>', 'early stopping: epochs without validation-loss improvement (head default 10; 0 = off)', wholeArg('--patience'))
      .option('--no-cache', 'do not read or write the feature cache')
      .option('--unfreeze <all|n>', 'fine-tune: train the last n stages of the backbone, or all (default all)')
      .option('--warmup-epochs <n>', 'fine-tune: head epochs on frozen features first (default 3)', wholeArg('--warmup-epochs'))
      .option('--lr-mult <x>', 'fine-tune: the earliest unfrozen stage learns x times slower than the head, the last √x times (default 100, as fastai)', nonNegativeNumberArg('--lr-mult'))
      .option('--no-augment', 'fine-tune: no random crops, flips or colour jitter')
      .option('--clip-grad <norm>', 'fine-tune: clip the global gradient norm', nonNegativeNumberArg('--clip-grad'))
      .addOption(new Option('--bn <mode>', 'fine-tune: frozen BatchNorm statistics (default) or batch statistics').choices(['frozen', 'train']))
      .option('--resume <out>', 'fine-tune: continue the run whose checkpoint is in <out> (same command line otherwise)');
    addPreprocessOptions(cmd).action(async (data: string, _o: unknown, command: Command) => {
      const o = command.optsWithGlobals<TrainCliOptions>();
      const result = await train({ ...trainOptions(data, o, ctx.signal), onEvent: reporter(o, ctx) });
      if (o.json) await write(ctx.out, `${JSON.stringify(result.metrics, null, 2)}\n`);
      else for (const line of summary(result.metrics, result.out)) await write(ctx.out, `${line}\n`);
      ctx.exitCode = 0;
    });
  },
};
