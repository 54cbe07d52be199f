/**
 * A pretrained model as an image classifier: resolve it, decide how images become its input tensor and
 * what its outputs are called, check that it really takes one RGB image batch, and run it in the
 * runtime. `planClassifier` is the decision part (pure, no runtime: `graft inspect` uses it too);
 * `openClassifier` adds the session.
 *
 * Precedence, highest first:
 * - preprocessing: CLI flags > graft metadata > Hugging Face preprocessor_config.json > a guess from the
 *   input shape (torchvision's ImageNet recipe at the model's input size). Fields a source leaves out
 *   come from the next one down.
 * - labels: --labels file > graft metadata > config.json id2label / labels.json next to the model >
 *   ImageNet-1k names for 1000 / 1001 outputs > class_0, class_1, …
 * - output kind: graft metadata `graft.output` > the graph (a Softmax / LogSoftmax / Sigmoid at the end).
 */
import { basename } from 'node:path';
import { GraftError, isGraftError } from '../errors.js';
import type { Model } from '../graph/graph.js';
import type { Dim, ValueInfo } from '../graph/ir.js';
import { findClassifier, type ClassifierInfo } from '../graph/surgery.js';
import { defaultLabels, readLabelsFile } from '../models/labels.js';
import { META_OUTPUT_KIND, readLabels, readPreprocess } from '../models/metadata.js';
import { IMAGENET_DEFAULT, type PreprocessConfig } from '../models/preprocess.js';
import { guessPreprocess, preprocessFromFlags, type PreprocessFlags } from '../models/preprocess-sources.js';
import { resolveModel, type ModelSourceKind, type ResolvedModel, type ResolveOptions } from '../models/sources.js';
import { floatToHalf, toFloat32, type Tensor } from '../onnx/tensor.js';
import { Runtime, type Session } from '../runtime/index.js';
import { concatFloat32 } from '../util/arrays.js';

/**
 * What the model's output holds. Logits and log-probabilities are turned into probabilities with a
 * softmax; 'sigmoid' outputs (multi-label models) are independent per-class scores and pass through.
 */
export type OutputKind = 'probabilities' | 'logits' | 'log-probabilities' | 'sigmoid';

export type PreprocessOrigin = 'metadata' | 'preprocessor_config.json' | 'input shape';
export type LabelsOrigin = 'labels file' | 'metadata' | 'model files' | 'imagenet' | 'generic';

export interface PreprocessResolution {
  config: PreprocessConfig;
  /** Where the base config came from. */
  from: PreprocessOrigin;
  /** Fields the base source did not give, filled from the input-shape guess. */
  guessed: (keyof PreprocessConfig)[];
  /** Flags the caller set (they override everything else). */
  overridden: (keyof PreprocessFlags)[];
}

export interface ClassifierPlan {
  spec: string;
  source: ModelSourceKind;
  modelPath: string;
  /** Stable model identity (sha256 of the ONNX bytes and external data). */
  id: string;
  input: { name: string; dtype: 'float32' | 'float16'; shape: Dim[] | undefined };
  output: { name: string; dtype: string; shape: Dim[] | undefined };
  /** Null when the output shape does not say; openClassifier finds out with one run. */
  numClasses: number | null;
  outputKind: OutputKind;
  outputKindFrom: 'metadata' | 'graph';
  preprocess: PreprocessResolution;
  /** Null while numClasses is unknown. */
  labels: string[] | null;
  labelsFrom: LabelsOrigin | null;
  /** The classifier layer surgery found, when it found one. */
  classifier: ClassifierInfo | null;
  /** Why surgery found no classifier layer (the model can still be run as a whole). */
  classifierProblem?: string;
}

export interface PlanOptions {
  /** Preprocessing overrides (the CLI's --size --crop-pct --mean --std --bgr --layout …). */
  preprocess?: PreprocessFlags;
  /** A labels file (JSON array / object, or one name per line); overrides the model's own labels. */
  labelsFile?: string;
}

export interface ClassifierOptions extends PlanOptions, Pick<ResolveOptions, 'offline' | 'cacheDir' | 'hfEndpoint' | 'hfToken' | 'builtinResolver' | 'cwd' | 'signal'> {
  /** Run in this runtime (it stays open on close()); by default the classifier makes its own. */
  runtime?: Runtime;
  /** Intra-op threads when the classifier makes its own runtime. */
  threads?: number;
  /** Download and builtin-conversion progress. */
  onProgress?: ResolveOptions['onProgress'];
}

export interface ClassifyOptions {
  signal?: AbortSignal;
  /** Hand the batch's buffer to the worker instead of copying it (the caller's array becomes detached). */
  transfer?: boolean;
}

export interface Classifier {
  readonly spec: string;
  readonly source: ModelSourceKind;
  readonly modelPath: string;
  /** Stable model identity (sha256 of the ONNX bytes and external data). */
  readonly id: string;
  readonly preprocess: PreprocessConfig;
  readonly labels: readonly string[];
  readonly numClasses: number;
  readonly inputName: string;
  readonly outputName: string;
  readonly outputKind: OutputKind;
  readonly plan: ClassifierPlan;
  /** Elements of one image's tensor, and its dims without the batch ([3, H, W] or [H, W, 3]). */
  readonly imageDims: readonly number[];
  /**
   * Runs a float32 batch [N, …imageDims] and returns [N, numClasses] probabilities (softmax applied
   * unless the model already outputs probabilities; sigmoid scores pass through).
   */
  classify(batch: Tensor, opts?: ClassifyOptions): Promise<Tensor<Float32Array>>;
  /** Releases the session (and the runtime when the classifier made it). */
  close(): Promise<void>;
}

const fmtShape = (s: readonly Dim[] | undefined): string => (s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]` : '(unknown shape)');
const describeValue = (v: ValueInfo): string => `"${v.name}" ${v.dtype} ${fmtShape(v.shape)}`;

const IMAGE_INPUT_HINT = 'graft feeds one image batch shaped [batch, 3, height, width] (NCHW) or [batch, height, width, 3] (NHWC).';

/** The model's single image input; MODEL_UNSUPPORTED saying what was found otherwise. */
function imageInput(model: Model, where: string): ClassifierPlan['input'] {
  const inputs = model.graph.inputs;
  if (inputs.length !== 1) {
    const found = inputs.length ? `${inputs.length} inputs (${inputs.map(describeValue).join('; ')})` : 'no inputs';
    throw new GraftError('MODEL_UNSUPPORTED', `${where} has ${found}; ${IMAGE_INPUT_HINT} It is not an image classifier graft can drive.`, { subject: where });
  }
  const inp = inputs[0];
  if (inp.shape && inp.shape.length !== 4) {
    throw new GraftError(
      'MODEL_UNSUPPORTED',
      `${where}: its input ${describeValue(inp)} has rank ${inp.shape.length}; ${IMAGE_INPUT_HINT} It is not an image classifier graft can drive.`,
      { subject: where },
    );
  }
  if (inp.dtype !== 'float32' && inp.dtype !== 'float16') {
    throw new GraftError(
      'MODEL_UNSUPPORTED',
      `${where}: its input ${describeValue(inp)} is ${inp.dtype}; graft feeds float32 (or float16) pixels. Use a float variant of the model.`,
      { subject: where },
    );
  }
  return { name: inp.name, dtype: inp.dtype, shape: inp.shape && [...inp.shape] };
}

/** Classes in an output shape: the one non-batch dim that is not 1 ([N, K], [N, K, 1, 1]). */
function classesFromShape(shape: Dim[] | undefined): number | null | 'bad' {
  if (!shape) return null;
  const rest = shape.slice(1);
  if (rest.length === 0) return 'bad';
  if (rest.some((d) => typeof d !== 'number')) return rest.filter((d) => d !== 1).length <= 1 ? null : 'bad';
  const big = (rest as number[]).filter((d) => d !== 1);
  if (big.length > 1) return 'bad';
  return big[0] ?? 1;
}

function outputKindFromGraph(model: Model, output: string, info: ClassifierInfo | null): OutputKind {
  const act = info?.outputActivation;
  if (act === 'softmax') return 'probabilities';
  if (act === 'log-softmax') return 'log-probabilities';
  if (act === 'sigmoid') return 'sigmoid';
  if (info) return 'logits';
  // no classifier layer recognised: look at what produces the output itself
  const p = model.graph.nodes.find((n) => n.outputs.includes(output));
  if (p?.opType === 'Softmax') return 'probabilities';
  if (p?.opType === 'LogSoftmax') return 'log-probabilities';
  if (p?.opType === 'Sigmoid') return 'sigmoid';
  return 'logits';
}

/**
 * guessPreprocess, except that a layout known from elsewhere decides where the channels are: exports
 * often name every dim ([batch_size, num_channels, height, width]), which leaves nothing to guess from.
 */
function guessFor(shape: Dim[], layout: 'NCHW' | 'NHWC' | undefined): PreprocessConfig {
  if (!layout) return guessPreprocess(shape);
  const [h, w] = layout === 'NCHW' ? [shape[2], shape[3]] : [shape[1], shape[2]];
  const fixed = (d: Dim | undefined) => (typeof d === 'number' && d > 0 ? d : undefined);
  const size: [number, number] = [fixed(h) ?? fixed(w) ?? IMAGENET_DEFAULT.inputSize[0], fixed(w) ?? fixed(h) ?? IMAGENET_DEFAULT.inputSize[1]];
  return { ...IMAGENET_DEFAULT, inputSize: size, mean: [...IMAGENET_DEFAULT.mean], std: [...IMAGENET_DEFAULT.std], layout };
}

function resolvePreprocess(resolved: ResolvedModel, input: ClassifierPlan['input'], flags: PreprocessFlags | undefined, where: string): PreprocessResolution {
  const fromMeta = readPreprocess(resolved.model);
  const base: Partial<PreprocessConfig> = fromMeta ?? resolved.preprocess ?? {};
  const from: PreprocessOrigin = fromMeta ? 'metadata' : resolved.preprocess ? 'preprocessor_config.json' : 'input shape';
  const overridden = (Object.keys(flags ?? {}) as (keyof PreprocessFlags)[]).filter((k) => flags![k] !== undefined);
  let guess: PreprocessConfig | undefined;
  const needGuess = (['inputSize', 'resize', 'cropPct', 'interpolation', 'rescale', 'mean', 'std', 'channelOrder', 'layout'] as const).some((k) => base[k] === undefined);
  if (needGuess) {
    if (!input.shape) {
      throw new GraftError(
        'MODEL_UNSUPPORTED',
        `${where}: its input "${input.name}" declares no shape and the model carries no preprocessing config, so graft cannot tell the image size or layout. Pass --size and --layout.`,
        { subject: where },
      );
    }
    guess = guessFor(input.shape, base.layout ?? flags?.layout);
  }
  const merged = { ...guess, ...base } as PreprocessConfig;
  const guessed = guess ? (Object.keys(guess) as (keyof PreprocessConfig)[]).filter((k) => base[k] === undefined) : [];
  const config = preprocessFromFlags(merged, flags ?? {});
  return { config, from, guessed, overridden };
}

/** The config must fit the input: 3 channels where its layout puts them, and its size where dims are fixed. */
function checkInputFits(input: ClassifierPlan['input'], pre: PreprocessResolution, where: string): void {
  const shape = input.shape;
  if (!shape) return;
  const cfg = pre.config;
  const nchw = cfg.layout === 'NCHW';
  const channels = shape[nchw ? 1 : 3];
  const byFlag = (k: keyof PreprocessFlags) => pre.overridden.includes(k);
  if (typeof channels === 'number' && channels !== 3) {
    const other = shape[nchw ? 3 : 1] === 3 ? ` The shape looks ${nchw ? 'NHWC' : 'NCHW'}${byFlag('layout') ? `: drop --layout ${cfg.layout}` : `: pass --layout ${nchw ? 'NHWC' : 'NCHW'}`}.` : '';
    throw new GraftError(
      byFlag('layout') ? 'INVALID_ARGUMENT' : 'MODEL_UNSUPPORTED',
      `${where}: its input ${fmtShape(shape)} has ${channels} at the channel position of layout ${cfg.layout}, not 3 colour channels.${other} ${other ? '' : IMAGE_INPUT_HINT}`.trim(),
      { subject: where },
    );
  }
  const [h, w] = nchw ? [shape[2], shape[3]] : [shape[1], shape[2]];
  const [ch, cw] = cfg.inputSize;
  if ((typeof h === 'number' && h !== ch) || (typeof w === 'number' && w !== cw)) {
    const flag = byFlag('size');
    throw new GraftError(
      flag ? 'INVALID_ARGUMENT' : 'MODEL_UNSUPPORTED',
      `${where}: the model's input is fixed at ${h}×${w} (height × width) but the preprocessing${flag ? ' (--size)' : ` (from ${pre.from})`} makes ${ch}×${cw} images. ` +
        (flag ? `Use --size ${h === w ? h : `${h},${w}`} or leave --size out.` : `Pass --size ${h === w ? h : `${h},${w}`}.`),
      { subject: where },
    );
  }
}

function chooseLabels(numClasses: number, resolved: ResolvedModel, labelsFile: string | undefined, where: string): { labels: string[]; from: LabelsOrigin } {
  const check = (labels: string[], what: string, fix: string) => {
    if (labels.length !== numClasses) {
      throw new GraftError('LABELS_INVALID', `${what} names ${labels.length} classes but ${where} has ${numClasses} outputs. ${fix}`, { subject: what });
    }
    return labels;
  };
  if (labelsFile) return { labels: check(readLabelsFile(labelsFile), `labels file ${labelsFile}`, 'Give one name per model output, in output order.'), from: 'labels file' };
  const meta = readLabels(resolved.model);
  if (meta) return { labels: check(meta, 'the model\'s metadata "graft.labels"', 'Pass --labels FILE with one name per output.'), from: 'metadata' };
  if (resolved.labels) return { labels: check(resolved.labels, 'the label list next to the model (config.json id2label or labels.json)', 'Pass --labels FILE with one name per output.'), from: 'model files' };
  const labels = defaultLabels(numClasses);
  return { labels, from: numClasses === 1000 || numClasses === 1001 ? 'imagenet' : 'generic' };
}

/**
 * Decides everything about driving `resolved` as an image classifier without running it: input,
 * output, output kind, preprocessing, labels. Throws MODEL_UNSUPPORTED (or INVALID_ARGUMENT /
 * LABELS_INVALID for the caller's overrides) when the model or the overrides do not fit.
 */
export function planClassifier(resolved: ResolvedModel, opts: PlanOptions = {}): ClassifierPlan {
  const where = resolved.kind === 'builtin' ? `builtin model ${resolved.spec}` : `model ${resolved.spec}`;
  const model = resolved.model;
  const input = imageInput(model, where);
  const outputs = model.graph.outputs;
  if (!outputs.length) throw new GraftError('MODEL_INVALID', `${where} has no outputs. Re-export it.`, { subject: where });

  let classifier: ClassifierInfo | null = null;
  let classifierProblem: string | undefined;
  try {
    classifier = findClassifier(model);
  } catch (e) {
    if (!isGraftError(e)) throw e;
    classifierProblem = e.message;
  }
  const outName = classifier?.output ?? outputs[0].name;
  const out = outputs.find((o) => o.name === outName)!;
  let numClasses = classesFromShape(out.shape);
  if (numClasses === 'bad') {
    throw new GraftError(
      'MODEL_UNSUPPORTED',
      `${where}: its output ${describeValue(out)} is not one score per class ([batch, classes]); graft's classifier reads a [batch, classes] output.`,
      { subject: where },
    );
  }
  if (numClasses === null && classifier?.numClasses) numClasses = classifier.numClasses;

  const kindMeta = model.metadata.get(META_OUTPUT_KIND);
  const outputKind: OutputKind = kindMeta === 'probabilities' || kindMeta === 'logits' ? kindMeta : outputKindFromGraph(model, outName, classifier);

  const preprocess = resolvePreprocess(resolved, input, opts.preprocess, where);
  checkInputFits(input, preprocess, where);

  const chosen = numClasses === null ? null : chooseLabels(numClasses, resolved, opts.labelsFile, where);
  return {
    spec: resolved.spec,
    source: resolved.kind,
    modelPath: resolved.modelPath,
    id: resolved.id,
    input,
    output: { name: out.name, dtype: out.dtype, shape: out.shape && [...out.shape] },
    numClasses,
    outputKind,
    outputKindFrom: kindMeta === 'probabilities' || kindMeta === 'logits' ? 'metadata' : 'graph',
    preprocess,
    labels: chosen?.labels ?? null,
    labelsFrom: chosen?.from ?? null,
    classifier,
    ...(classifierProblem ? { classifierProblem } : {}),
  };
}

/** Row-wise softmax of [n, k] values, in place; exact in float64 before rounding to float32. */
export function softmaxRows(data: Float32Array, n: number, k: number): Float32Array {
  for (let r = 0; r < n; r++) {
    const o = r * k;
    let max = -Infinity;
    for (let j = 0; j < k; j++) if (data[o + j] > max) max = data[o + j];
    let sum = 0;
    const e = new Float64Array(k);
    for (let j = 0; j < k; j++) sum += e[j] = Math.exp(data[o + j] - max);
    for (let j = 0; j < k; j++) data[o + j] = e[j] / sum;
  }
  return data;
}

class OnnxClassifier implements Classifier {
  readonly spec: string;
  readonly source: ModelSourceKind;
  readonly modelPath: string;
  readonly id: string;
  readonly preprocess: PreprocessConfig;
  readonly inputName: string;
  readonly outputName: string;
  readonly outputKind: OutputKind;
  readonly imageDims: readonly number[];
  labels: readonly string[] = [];
  numClasses = 0;
  plan: ClassifierPlan;
  /** The model's fixed batch size, when its first input dim is a number (many exports say 1). */
  private readonly fixedBatch: number | undefined;
  private closed = false;

  constructor(
    plan: ClassifierPlan,
    private readonly session: Session,
    private readonly ownRuntime: Runtime | undefined,
  ) {
    this.plan = plan;
    this.spec = plan.spec;
    this.source = plan.source;
    this.modelPath = plan.modelPath;
    this.id = plan.id;
    this.preprocess = plan.preprocess.config;
    this.inputName = plan.input.name;
    this.outputName = plan.output.name;
    this.outputKind = plan.outputKind;
    const [h, w] = this.preprocess.inputSize;
    this.imageDims = this.preprocess.layout === 'NCHW' ? [3, h, w] : [h, w, 3];
    const b = plan.input.shape?.[0];
    this.fixedBatch = typeof b === 'number' && b > 0 ? b : undefined;
    if (plan.numClasses !== null && plan.labels) this.setClasses(plan.numClasses, plan.labels);
  }

  setClasses(k: number, labels: string[]): void {
    this.numClasses = k;
    this.labels = Object.freeze([...labels]);
  }

  async classify(batch: Tensor, opts: ClassifyOptions = {}): Promise<Tensor<Float32Array>> {
    if (this.closed) throw new GraftError('RUNTIME_FAILED', `The classifier for ${this.spec} was closed; open it again.`);
    const per = this.imageDims.reduce((a, d) => a * d, 1);
    const n = batch.dims[0];
    if (batch.dtype !== 'float32' || batch.dims.length !== 4 || batch.dims.slice(1).some((d, i) => d !== this.imageDims[i])) {
      throw new GraftError(
        'INVALID_ARGUMENT',
        `classify() takes a float32 batch [N, ${this.imageDims.join(', ')}] (preprocessed with the classifier's config), not ${batch.dtype} [${batch.dims.join(', ')}].`,
      );
    }
    const data = batch.data as Float32Array;
    const chunk = this.fixedBatch ?? n;
    if (n === 0) return { dtype: 'float32', dims: [0, this.numClasses], data: new Float32Array(0) };
    const parts: Float32Array[] = [];
    for (let start = 0; start < n; start += chunk) {
      const count = Math.min(chunk, n - start);
      let x = chunk === n ? data : data.subarray(start * per, (start + count) * per);
      // a fixed batch dim takes exactly that many images: pad the last chunk with zeros
      if (count < chunk) {
        const padded = new Float32Array(chunk * per);
        padded.set(x);
        x = padded;
      }
      const feed: Tensor =
        this.plan.input.dtype === 'float16'
          ? { dtype: 'float16', dims: [chunk, ...this.imageDims], data: Uint16Array.from(x, floatToHalf) }
          : { dtype: 'float32', dims: [chunk, ...this.imageDims], data: x };
      // our own copies always move; the caller's buffer only when asked and sent whole (one chunk)
      const ours = (feed.data as Float32Array | Uint16Array).buffer !== data.buffer;
      const res = await this.session.run({ [this.inputName]: feed }, { fetches: [this.outputName], signal: opts.signal, transfer: ours || (opts.transfer === true && chunk >= n) });
      const out = res[this.outputName];
      const values = out.dtype === 'float32' ? (out.data as Float32Array) : toFloat32(out).data;
      parts.push(values.subarray(0, count * (values.length / chunk)));
    }
    const total = parts.reduce((a, p) => a + p.length, 0);
    const k = total / n;
    if (this.numClasses && k !== this.numClasses) {
      throw new GraftError('MODEL_UNSUPPORTED', `${this.spec}: output "${this.outputName}" gave ${k} values per image, but the model declares ${this.numClasses} classes.`);
    }
    const probs = parts.length === 1 ? parts[0] : concatFloat32(parts);
    if (this.outputKind === 'logits' || this.outputKind === 'log-probabilities') softmaxRows(probs, n, k);
    return { dtype: 'float32', dims: [n, k], data: probs };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
    await this.ownRuntime?.close();
  }
}

/**
 * Resolves `spec` (builtin name, .onnx path, directory, hf:owner/repo, https URL), plans it as an image
 * classifier and loads it into the runtime. Close it when done.
 */
export async function openClassifier(spec: string, opts: ClassifierOptions = {}): Promise<Classifier> {
  const resolved = await resolveModel(spec, opts);
  const plan = planClassifier(resolved, opts);
  const runtime = opts.runtime ?? (await Runtime.create({ threads: opts.threads }));
  const own = opts.runtime ? undefined : runtime;
  let session: Session | undefined;
  try {
    session = await runtime.load(resolved.modelPath, { name: resolved.kind === 'builtin' ? spec : basename(resolved.modelPath) });
    const c = new OnnxClassifier(plan, session, own);
    if (plan.numClasses === null) {
      // the graph does not say how many classes: one run of a blank image does
      const probe = await c.classify({ dtype: 'float32', dims: [1, ...c.imageDims], data: new Float32Array(c.imageDims.reduce((a, d) => a * d, 1)) }, { signal: opts.signal });
      const k = probe.dims[1];
      const where = resolved.kind === 'builtin' ? `builtin model ${spec}` : `model ${spec}`;
      const chosen = chooseLabels(k, resolved, opts.labelsFile, where);
      c.setClasses(k, chosen.labels);
      c.plan = { ...plan, numClasses: k, labels: chosen.labels, labelsFrom: chosen.from };
    }
    return c;
  } catch (e) {
    await session?.release().catch(() => undefined);
    await own?.close().catch(() => undefined);
    throw e;
  }
}
