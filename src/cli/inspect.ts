/** `graft inspect`: what a model is and how graft would use it, as text or --json. */
import type { Command } from 'commander';
import type { Dim } from '../graph/ir.js';
import type { PreprocessConfig } from '../models/preprocess.js';
import { inspect, type InspectReport } from '../tasks/inspect.js';
import { addPreprocessOptions, modelOptions, preprocessFlags, write, type CliContext, type CommandModule, type GlobalOptions, type PreprocessOptionValues } from './common.js';
import { modelProgress } from './progress.js';

interface InspectCliOptions extends GlobalOptions, PreprocessOptionValues {
  json?: boolean;
  labels?: string;
  all?: boolean;
}

const LAYERS_SHOWN = 12;

const shape = (s: readonly Dim[] | null | undefined) => (s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]` : '[?]');
const int = (n: number) => n.toLocaleString('en-US');

function num(x: number): string {
  return Number.isInteger(x) ? String(x) : String(Number(x.toFixed(6)));
}

function rescale(r: number): string {
  const inv = 1 / r;
  return Math.abs(inv - Math.round(inv)) < 1e-6 && Math.round(inv) !== 1 ? `1/${Math.round(inv)}` : num(r);
}

export function describePreprocess(c: PreprocessConfig): string {
  const [h, w] = c.inputSize;
  const geometry = c.resize === 'crop' ? `shorter side to ${Math.floor(h / c.cropPct)}${h !== w ? `/${Math.floor(w / c.cropPct)}` : ''} then center-crop ${h}×${w} (crop_pct ${num(c.cropPct)})` : `squash to ${h}×${w}`;
  return `${geometry}, ${c.interpolation}; pixel × ${rescale(c.rescale)}, − mean [${c.mean.map(num).join(', ')}], ÷ std [${c.std.map(num).join(', ')}]; ${c.channelOrder}, ${c.layout}`;
}

function table(rows: string[][], indent = '  '): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => indent + r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd());
}

/** The report as text for a person. */
export function formatInspect(r: InspectReport, opts: { all?: boolean } = {}): string {
  const lines: string[] = [];
  const kv = (k: string, v: string) => lines.push(`${k.padEnd(13)}${v}`);
  kv('model', `${r.spec} (${r.source})`);
  kv('file', r.path);
  kv('id', r.id);
  const opsets = r.opsetImports.map((o) => `${o.domain} ${o.version}`).join(', ');
  kv('format', `ONNX IR ${r.irVersion}, opset ${opsets}${r.producer.name ? `; produced by ${r.producer.name}${r.producer.version ? ` ${r.producer.version}` : ''}` : ''}`);
  if (r.description) kv('description', r.description);
  lines.push('', 'inputs');
  lines.push(...table(r.inputs.map((v) => [v.name, v.dtype, shape(v.shape)])));
  lines.push('outputs');
  lines.push(...table(r.outputs.map((v) => [v.name, v.dtype, shape(v.shape)])));
  lines.push('');

  if (r.classifier) {
    const c = r.classifier;
    kv('classifier', `${c.numClasses ?? '?'} classes from output "${c.output}", ${c.outputKind}${c.outputKind === 'logits' || c.outputKind === 'log-probabilities' ? ' (graft applies softmax)' : ''} (${c.outputKindFrom === 'metadata' ? 'says the metadata' : 'read from the graph'})`);
    if (c.layer) {
      const stack = c.layer.stackDepth > 1 ? `; ${c.layer.stackDepth} stacked dense layers from "${c.layer.stackInput}"` : '';
      kv('', `last layer: ${c.layer.kind} on "${c.layer.featureValue}" ${shape(c.layer.featureShape)}${stack}${c.layer.spatialValue ? `; pooled from "${c.layer.spatialValue}"` : ''}`);
    } else if (c.layerProblem) kv('', `no classifier layer recognised: ${c.layerProblem}`);
  } else {
    kv('classifier', `not usable as an image classifier: ${r.problem ?? 'unknown reason'}`);
  }
  if (r.preprocess) {
    const p = r.preprocess;
    const from = [`from ${p.from}`];
    if (p.guessed.length && p.from !== 'input shape') from.push(`${p.guessed.join(', ')} guessed from the input shape`);
    if (p.overridden.length) from.push(`overridden: ${p.overridden.join(', ')}`);
    kv('preprocess', `${describePreprocess(p.config)}`);
    kv('', `(${from.join('; ')})`);
  }
  if (r.labels) {
    const more = r.labels.count > r.labels.first.length ? `, … (${r.labels.count - r.labels.first.length} more)` : '';
    kv('labels', `${r.labels.count} from ${r.labels.from}: ${r.labels.first.join(', ')}${more}`);
  }
  kv('parameters', `${int(r.params.total)} (${int(r.params.weights)} weights + ${int(r.params.bnStats)} BatchNorm statistics)`);
  kv('ops', `${r.nodes} nodes: ${r.ops.map((o) => `${o.op} ${o.count}`).join(', ')}`);

  lines.push('');
  const layers = opts.all ? r.featureLayers : r.featureLayers.slice(-LAYERS_SHOWN);
  const hidden = r.featureLayers.length - layers.length;
  lines.push(`feature layers (${r.featureLayers.length} candidates${hidden ? `, last ${layers.length} shown; --all lists every one` : ''}; * default, | block end)`);
  if (layers.length) {
    const rows = [['', 'value', 'op', 'shape', 'fine-tunable params', 'unfreeze from']];
    for (const l of layers) {
      const mark = `${l.default ? '*' : ' '}${l.blockEnd ? '|' : ' '}`;
      const ft = l.fineTune;
      const params = ft.unreachableParams ? `${int(ft.trainableParams)} (${int(ft.unreachableParams)} blocked)` : int(ft.trainableParams);
      rows.push([mark, l.value, l.op, shape(l.shape), params, ft.unfreezeFrom ?? 'nothing'].map(String));
    }
    lines.push(...table(rows));
  }
  if (r.defaultFeatureLayer) lines.push(`default feature layer: ${r.defaultFeatureLayer}`);
  const cuts = r.cutPoints;
  lines.push(`cut points (${cuts.length}): ${cuts.length > 8 ? `${cuts.slice(0, 3).map((c) => c.value).join(', ')}, …, ${cuts.slice(-4).map((c) => c.value).join(', ')}` : cuts.map((c) => c.value).join(', ')}`);

  lines.push('');
  const onPath = r.trainability.missingGradient.filter((m) => m.onDataPath);
  if (!onPath.length) kv('trainability', 'every op on the data path has a gradient rule: any part of the network can be fine-tuned.');
  else kv('trainability', `no gradient rule for ${onPath.map((m) => `${m.op} (${m.count}×)`).join(', ')}: fine-tuning stops there (see "unfreeze from"); training a new head works regardless.`);
  return `${lines.join('\n')}\n`;
}

async function run(spec: string, o: InspectCliOptions, ctx: CliContext): Promise<void> {
  const model = modelProgress({ quiet: o.quiet, stream: ctx.err, spec });
  let report: InspectReport;
  try {
    report = await inspect(spec, { ...modelOptions(o), labelsFile: o.labels, preprocess: preprocessFlags(o), signal: ctx.signal, onProgress: model.onProgress });
  } finally {
    model.stop();
  }
  await write(ctx.out, o.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspect(report, { all: o.all }));
  ctx.exitCode = 0;
}

export const inspectCommand: CommandModule = {
  register(program, ctx) {
    const cmd = program
      .command('inspect')
      .description('describe a model: inputs/outputs, preprocessing, labels, ops, parameters, feature layers, trainability')
      .argument('<spec>', 'builtin name, .onnx file, model directory, hf:owner/repo[@rev][#variant], or https URL')
      .option('--json', 'print the full report as JSON')
      .option('--all', 'list every candidate feature layer (the text report shows the last 12)')
      .option('--labels <file>', 'class names to check against the model\'s outputs');
    addPreprocessOptions(cmd).action(async (spec: string, _o: unknown, command: Command) => {
      await run(spec, command.optsWithGlobals<InspectCliOptions>(), ctx);
    });
  },
};
