/**
 * `--model SPEC` → a local .onnx file, its loaded IR, and whatever labels and preprocessing travel with
 * it. Specs: a builtin name, an .onnx path, a graft output directory or local Hugging Face clone,
 * `hf:owner/repo[@revision][#variant]`, or an https URL (optionally `#sha256=<hex>`).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, normalize, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraftError, throwIfAborted } from '../errors.js';
import type { Model } from '../graph/graph.js';
import { modelFromProto } from '../graph/serialize.js';
import { decodeModelProto, externalDataFromDir, onnx, type ModelProto } from '../onnx/proto.js';
import { ensureBuiltin, isBuiltin, listBuiltins, type BuiltinProgress } from './builtins.js';
import { cacheDir, offlineFromEnv } from './cache.js';
import { downloadFile, isLoopback, stripFragment, type DownloadProgress } from './download.js';
import { fetchHfFile, HF_SPEC_PREFIX, parseHfSpec, type HfFetchOptions } from './hf.js';
import { readLabels, readPreprocess } from './metadata.js';
import { labelsFromHfConfig, readLabelsFile } from './labels.js';
import type { PreprocessConfig } from './preprocess.js';
import { preprocessFromHf } from './preprocess-sources.js';

export type ModelSpec =
  | { kind: 'builtin'; name: string }
  /** An .onnx file (absolute path); external data files sit next to it. */
  | { kind: 'file'; path: string }
  /** A graft output directory or a local clone of a Hugging Face repo (absolute path). */
  | { kind: 'dir'; path: string }
  | { kind: 'hf'; repo: string; revision: string; variant: string; file: string }
  | { kind: 'url'; url: string; sha256?: string };

export type ModelSourceKind = ModelSpec['kind'];

/** What src/models/builtins.ts provides; injectable so tests and tools can supply their own. */
export interface BuiltinResolver {
  isBuiltin(name: string): boolean;
  listBuiltins(): { name: string; description: string }[];
  ensureBuiltin(name: string, opts?: { cacheDir?: string; onProgress?: (e: BuiltinProgress) => void; signal?: AbortSignal }): Promise<{ path: string }>;
}

/** Downloads report bytes; a builtin's first use reports its conversion phases. */
export type ResolveProgress = DownloadProgress | BuiltinProgress;
export type { BuiltinProgress };

export interface ParseOptions {
  builtinResolver?: BuiltinResolver;
  /** Relative paths are resolved against this; default process.cwd(). */
  cwd?: string;
}

export interface ResolveOptions extends ParseOptions {
  /** Never touch the network; default GRAFT_OFFLINE. */
  offline?: boolean;
  /** Cache root; default cacheDir() ($GRAFT_CACHE, $XDG_CACHE_HOME/graft, ~/.cache/graft). */
  cacheDir?: string;
  onProgress?: (e: ResolveProgress) => void;
  signal?: AbortSignal;
  /** Hugging Face endpoint; default $HF_ENDPOINT, else https://huggingface.co. */
  hfEndpoint?: string;
  /** Hugging Face token; default $HF_TOKEN. Sent only to the endpoint's host. */
  hfToken?: string;
  /** Per-attempt socket idle timeout for downloads (ms). */
  timeoutMs?: number;
  /** Download attempts after the first on network errors / 5xx, each resuming. */
  retries?: number;
  retryDelayMs?: number;
}

export interface ResolvedModel {
  /** The spec as given. */
  spec: string;
  kind: ModelSourceKind;
  /** Local .onnx path (external data, if any, next to it). */
  modelPath: string;
  model: Model;
  /** From ONNX metadata, else config.json id2label, else labels.json; undefined when none says. */
  labels?: string[];
  /** Same precedence as labels; partial when only a Hugging Face preprocessor config speaks. */
  preprocess?: Partial<PreprocessConfig>;
  /**
   * Stable identity for downstream caches: sha256 of the .onnx bytes; when weights live in external
   * files, sha256 over that hash and each data file's hash, so new weights mean a new id.
   */
  id: string;
}

const defaultBuiltins: BuiltinResolver = { isBuiltin, listBuiltins, ensureBuiltin };

function acceptedForms(builtins: BuiltinResolver): string {
  const names = builtins.listBuiltins().map((b) => b.name);
  return (
    '--model accepts: a builtin name' +
    (names.length ? ` (${names.join(', ')})` : '') +
    '; a path to an .onnx file; a directory containing model.onnx (graft output) or onnx/model.onnx (a Hugging Face clone); ' +
    'hf:owner/repo[@revision][#variant] (e.g. hf:owner/repo@main#model_quantized); or an https://…/model.onnx URL, optionally ending in #sha256=<hex>.'
  );
}

/**
 * Classifies a --model spec. Local paths must exist; a bare name (no slash, no .onnx) is a builtin first,
 * so a directory that happens to share a builtin's name needs `./name`.
 */
export function parseModelSpec(spec: string, opts: ParseOptions = {}): ModelSpec {
  const builtins = opts.builtinResolver ?? defaultBuiltins;
  const s = spec.trim();
  const invalid = (why: string): never => {
    throw new GraftError('MODEL_SOURCE_INVALID', `--model "${spec}": ${why} ${acceptedForms(builtins)}`, { subject: spec });
  };
  if (!s) invalid('the model specification is empty.');
  if (s.startsWith(HF_SPEC_PREFIX)) {
    const hf = parseHfSpec(s);
    return { kind: 'hf', repo: hf.repo, revision: hf.revision, variant: hf.variant, file: hf.file };
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(s)?.[1]?.toLowerCase();
  if (scheme === 'https' || scheme === 'http') return parseUrlSpec(s, invalid);
  if (scheme === 'file') return parseModelSpec(fileURLToPath(s), opts);
  if (scheme) invalid(`"${scheme}://" addresses are not supported.`);

  const looksLikePath = /[/\\]/.test(s) || s.startsWith('.') || s.startsWith('~') || /\.onnx$/i.test(s);
  if (!looksLikePath && builtins.isBuiltin(s)) return { kind: 'builtin', name: s };
  const path = resolve(opts.cwd ?? process.cwd(), /^~[/\\]/.test(s) ? join(homedir(), s.slice(2)) : s);
  if (existsSync(path)) return statSync(path).isDirectory() ? { kind: 'dir', path } : { kind: 'file', path };
  if (!looksLikePath) {
    throw new GraftError('MODEL_UNKNOWN_BUILTIN', `--model "${spec}" is not a builtin model and no file or directory of that name exists. ${acceptedForms(builtins)}`, {
      subject: spec,
    });
  }
  const hint = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(s) && !s.endsWith('.onnx') ? ` If you meant the Hugging Face repo, write hf:${s}.` : '';
  throw new GraftError('FILE_NOT_FOUND', `--model "${spec}": ${path} does not exist.${hint} ${acceptedForms(builtins)}`, { subject: path });
}

function parseUrlSpec(s: string, invalid: (why: string) => never): ModelSpec {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return invalid('this is not a well-formed URL.');
  }
  if (u.protocol === 'http:' && !isLoopback(u.hostname)) invalid('plain http is only allowed to this machine; use https.');
  if (u.username || u.password) invalid('put no credentials in the URL.');
  let sha256: string | undefined;
  if (u.hash) {
    const m = /^#sha256=([0-9a-fA-F]{64})$/.exec(u.hash);
    if (!m) invalid('the only fragment a model URL may carry is #sha256=<64 hex digits>.');
    sha256 = m![1].toLowerCase();
  }
  return { kind: 'url', url: stripFragment(u.href), sha256 };
}

/** Finds, downloads (once) and loads the model a spec names, with the labels and preprocessing it carries. */
export async function resolveModel(spec: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const parsed = parseModelSpec(spec, opts);
  const root = opts.cacheDir ?? cacheDir();
  const offline = opts.offline ?? offlineFromEnv();
  throwIfAborted(opts.signal);
  let modelPath: string;
  let fetchExternal: ((location: string) => Promise<void>) | undefined;
  let configPath: string | undefined;
  let preprocessorPath: string | undefined;
  let labelsFile: string | undefined;

  switch (parsed.kind) {
    case 'builtin': {
      const builtins = opts.builtinResolver ?? defaultBuiltins;
      modelPath = (await builtins.ensureBuiltin(parsed.name, { cacheDir: root, onProgress: opts.onProgress, signal: opts.signal })).path;
      break;
    }
    case 'file':
      modelPath = parsed.path;
      break;
    case 'dir': {
      const found = [join(parsed.path, 'model.onnx'), join(parsed.path, 'onnx', 'model.onnx')].find((p) => existsSync(p));
      if (!found) {
        throw new GraftError(
          'FILE_NOT_FOUND',
          `--model "${spec}": the directory ${parsed.path} has neither model.onnx (graft output) nor onnx/model.onnx (a Hugging Face clone). Point --model at the .onnx file itself if it has another name.`,
          { subject: parsed.path },
        );
      }
      modelPath = found;
      configPath = join(parsed.path, 'config.json');
      preprocessorPath = join(parsed.path, 'preprocessor_config.json');
      if (existsSync(join(parsed.path, 'labels.json'))) labelsFile = join(parsed.path, 'labels.json');
      break;
    }
    case 'hf': {
      const ref = { repo: parsed.repo, revision: parsed.revision };
      const common: HfFetchOptions = {
        cacheRoot: root,
        endpoint: opts.hfEndpoint,
        token: opts.hfToken,
        offline,
        onProgress: opts.onProgress,
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
        retries: opts.retries,
        retryDelayMs: opts.retryDelayMs,
      };
      // the model first: a wrong repo or revision fails here rather than being recorded as "no config"
      modelPath = (await fetchHfFile(ref, parsed.file, common))!;
      configPath = await fetchHfFile(ref, 'config.json', { ...common, optional: true });
      preprocessorPath = await fetchHfFile(ref, 'preprocessor_config.json', { ...common, optional: true });
      const modelDirInRepo = posix.dirname(parsed.file);
      fetchExternal = async (location) => {
        await fetchHfFile(ref, posix.join(modelDirInRepo, location), common);
      };
      break;
    }
    case 'url': {
      const key = createHash('sha256').update(parsed.url).digest('hex').slice(0, 16);
      const name = decodeURIComponent(basename(new URL(parsed.url).pathname)) || 'model.onnx';
      const dir = join(root, 'downloads', 'url', key);
      const common = {
        offline,
        onProgress: opts.onProgress,
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
        retries: opts.retries,
        retryDelayMs: opts.retryDelayMs,
      };
      modelPath = (await downloadFile({ ...common, url: parsed.url, dest: join(dir, safeFileName(name)), sha256: parsed.sha256 }))!;
      fetchExternal = async (location) => {
        await downloadFile({ ...common, url: new URL(location, parsed.url).href, dest: join(dir, location) });
      };
      break;
    }
  }

  const { model, id } = await loadWithId(modelPath, fetchExternal, opts.signal);

  let labels: string[] | undefined;
  try {
    labels = readLabels(model);
  } catch (e) {
    throw new GraftError('MODEL_INVALID', `${modelPath}: metadata "graft.labels" is not valid JSON. Re-export the model.`, { subject: modelPath, cause: e });
  }
  const hfConfig = configPath && readJsonIfExists(configPath);
  // a config.json without id2label (not every architecture config names classes) just says nothing
  if (!labels && hasId2label(hfConfig)) labels = labelsFromHfConfig(hfConfig, configPath);
  if (!labels && labelsFile) labels = readLabelsFile(labelsFile);

  let preprocess: Partial<PreprocessConfig> | undefined;
  try {
    preprocess = readPreprocess(model);
  } catch (e) {
    if (e instanceof GraftError) throw e;
    throw new GraftError('MODEL_INVALID', `${modelPath}: metadata "graft.preprocess" is not valid JSON. Re-export the model.`, { subject: modelPath, cause: e });
  }
  const hfPreprocessor = preprocessorPath && readJsonIfExists(preprocessorPath);
  if (!preprocess && hfPreprocessor !== undefined) preprocess = preprocessFromHf(hfPreprocessor, preprocessorPath);

  return { spec, kind: parsed.kind, modelPath, model, labels, preprocess, id };
}

/** Reads, decodes and hashes the model; fetches missing external data files through `fetchExternal`. */
async function loadWithId(path: string, fetchExternal: ((location: string) => Promise<void>) | undefined, signal?: AbortSignal): Promise<{ model: Model; id: string }> {
  if (!existsSync(path)) throw new GraftError('FILE_NOT_FOUND', `Model file ${path} does not exist.`, { subject: path });
  const bytes = readFileSync(path);
  if (bytes.byteLength === 0) throw new GraftError('MODEL_INVALID', `Model file ${path} is empty (0 bytes). Re-download or re-export it.`, { subject: path });
  const proto = decodeModelProto(bytes, path);
  const dir = dirname(path);
  const locations = externalLocations(proto);
  for (const loc of locations) {
    throwIfAborted(signal);
    if (!existsSync(join(dir, loc)) && fetchExternal) await fetchExternal(loc);
  }
  const model = modelFromProto(proto, externalDataFromDir(dir));
  const onnxSha = createHash('sha256').update(bytes).digest('hex');
  if (!locations.length) return { model, id: onnxSha };
  const h = createHash('sha256').update(`graft-model-id-v1\n${onnxSha}\n`);
  for (const loc of locations) h.update(`${loc}\0${await sha256File(join(dir, loc))}\n`);
  return { model, id: h.digest('hex') };
}

/** External data files a model references, sorted, each checked to stay inside the model's directory. */
function externalLocations(proto: ModelProto): string[] {
  const out = new Set<string>();
  const visit = (t: { dataLocation?: number | null; externalData?: { key?: string | null; value?: string | null }[] | null; name?: string | null }) => {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return;
    const loc = t.externalData?.find((e) => e.key === 'location')?.value;
    if (!loc) return;
    const rel = normalize(loc).replace(/\\/g, '/');
    if (isAbsolute(rel) || rel.startsWith('..')) {
      throw new GraftError('MODEL_INVALID', `external data location "${loc}" of tensor "${t.name ?? ''}" points outside the model's directory.`, { subject: loc });
    }
    out.add(rel);
  };
  for (const t of proto.graph?.initializer ?? []) visit(t);
  for (const n of proto.graph?.node ?? []) for (const a of n.attribute ?? []) if (a.t) visit(a.t);
  return [...out].sort();
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolveHash, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => resolveHash(h.digest('hex')))
      .on('error', reject);
  });
}

function safeFileName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return cleaned === '.' || cleaned === '..' || !cleaned ? 'model.onnx' : cleaned;
}

function readJsonIfExists(path: string): unknown {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new GraftError('MODEL_INVALID', `${path} is not valid JSON (${(e as Error).message}). Fix or delete it.`, { subject: path, cause: e });
  }
}

function hasId2label(config: unknown): boolean {
  const m = (config as { id2label?: unknown } | null | undefined)?.id2label;
  return !!m && typeof m === 'object' && Object.keys(m).length > 0;
}
