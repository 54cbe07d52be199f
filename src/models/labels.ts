/**
 * Class-name lists: the ImageNet-1k names graft ships, label files users bring, and Hugging Face
 * `id2label` maps. A label list is always an array indexed by the model's output position. Names need
 * not be unique: real id2label maps repeat some (ImageNet's two "crane" classes).
 */
import { readFileSync } from 'node:fs';
import { GraftError } from '../errors.js';

/*
 * src/models/labels.ts and dist/models/labels.js both sit two levels below the package root, so one
 * relative URL reaches assets/ from sources (vitest, tsx) and from the published build.
 */
const IMAGENET_URL = new URL('../../assets/imagenet-1k-labels.json', import.meta.url);

let imagenet: readonly string[] | undefined;

/**
 * ImageNet-1k class names in class-index order (torchvision's names). 1001 is the TF-Hub / Keras
 * "with background" layout: index 0 is 'background' and class i of the 1000 sits at i + 1.
 */
export function imagenetLabels(count: 1000 | 1001 = 1000): string[] {
  if (count !== 1000 && count !== 1001) throw new GraftError('INVALID_ARGUMENT', `ImageNet label sets have 1000 or 1001 entries, not ${String(count)}.`);
  imagenet ??= loadImagenet();
  return count === 1001 ? ['background', ...imagenet] : [...imagenet];
}

function loadImagenet(): readonly string[] {
  const list: unknown = JSON.parse(readFileSync(IMAGENET_URL, 'utf8'));
  if (!isStringArray(list) || list.length !== 1000) {
    throw new GraftError('LABELS_INVALID', `${IMAGENET_URL.pathname} should hold 1000 class names; reinstall graft.`);
  }
  return Object.freeze(list);
}

/** ImageNet names for 1000 / 1001 outputs, else class_0, class_1, … */
export function defaultLabels(numClasses: number): string[] {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new GraftError('INVALID_ARGUMENT', `A classifier needs at least one class, not ${numClasses}.`);
  if (numClasses === 1000 || numClasses === 1001) return imagenetLabels(numClasses);
  return Array.from({ length: numClasses }, (_, i) => `class_${i}`);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/**
 * An {index: name} map as an array ordered by index; every index 0..n−1 must be present exactly once.
 * Values may be names or Keras' [wordnet id, name] pairs.
 */
function fromIndexMap(map: Record<string, unknown>, where: string, fix: string): string[] {
  const entries: [number, string][] = [];
  for (const [k, v] of Object.entries(map)) {
    if (!/^\d+$/.test(k.trim())) throw new GraftError('LABELS_INVALID', `${where}: key ${JSON.stringify(k)} is not a class index. ${fix}`);
    const name = typeof v === 'string' ? v : Array.isArray(v) && v.length > 0 && typeof v[v.length - 1] === 'string' ? (v[v.length - 1] as string) : undefined;
    if (name === undefined) throw new GraftError('LABELS_INVALID', `${where}: the name of class ${k} is ${JSON.stringify(v)}, not a string. ${fix}`);
    entries.push([Number(k), name]);
  }
  if (entries.length === 0) throw new GraftError('LABELS_INVALID', `${where} has no classes. ${fix}`);
  entries.sort((a, b) => a[0] - b[0]);
  const out: string[] = [];
  for (const [i, name] of entries) {
    if (i < out.length) throw new GraftError('LABELS_INVALID', `${where}: class index ${i} appears twice. ${fix}`);
    if (i > out.length) {
      const missing = out.length === i - 1 ? `${out.length}` : `${out.length}–${i - 1}`;
      throw new GraftError('LABELS_INVALID', `${where}: class indices must run 0..${entries.length - 1} without gaps, but ${missing} ${out.length === i - 1 ? 'is' : 'are'} missing. ${fix}`);
    }
    out.push(name);
  }
  return out;
}

/**
 * Labels from a Hugging Face config.json (its `id2label`), ordered by id. Accepts the parsed object or
 * the JSON text.
 */
export function labelsFromHfConfig(configJson: unknown, where = 'config.json'): string[] {
  const cfg: unknown = typeof configJson === 'string' ? parseJson(configJson, where) : configJson;
  const id2label = (cfg as { id2label?: unknown } | null)?.id2label;
  if (!id2label || typeof id2label !== 'object' || Array.isArray(id2label)) {
    throw new GraftError('LABELS_INVALID', `${where} has no id2label map, so it does not name the classes. Pass a labels file instead.`);
  }
  return fromIndexMap(id2label as Record<string, unknown>, `${where} id2label`, 'Fix the config or pass a labels file.');
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new GraftError('LABELS_INVALID', `${where} is not valid JSON (${(e as Error).message}).`, { subject: where, cause: e });
  }
}

const FORMATS =
  'A labels file is a JSON array of names (["cat", "dog"]), a JSON object {"0": "cat", "1": "dog"} ' +
  '(or a config.json with id2label, or {"labels": [...]}), or plain text with one name per line.';

/** Reads class names from a file in any of the formats in FORMATS. */
export function readLabelsFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new GraftError('FILE_NOT_FOUND', `Labels file ${path} does not exist. Check the path.`, { subject: path, cause: e });
    throw new GraftError('LABELS_INVALID', `Cannot read labels file ${path}: ${(e as Error).message}.`, { subject: path, cause: e });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') throw new GraftError('FILE_EMPTY', `Labels file ${path} is empty. ${FORMATS}`, { subject: path });
  const withSubject = (f: () => string[]): string[] => {
    try {
      return f();
    } catch (e) {
      if (e instanceof GraftError && e.subject === undefined) throw new GraftError(e.code, e.message, { subject: path, cause: e.cause });
      throw e;
    }
  };
  const first = text.trimStart()[0];
  if (first === '[' || first === '{') return withSubject(() => fromJson(parseJson(text, path), path));
  return withSubject(() => fromLines(text, path));
}

function fromJson(v: unknown, path: string): string[] {
  if (Array.isArray(v)) {
    const bad = v.findIndex((x) => typeof x !== 'string');
    if (bad >= 0) throw new GraftError('LABELS_INVALID', `${path}: entry ${bad} is ${JSON.stringify(v[bad])}, not a string. ${FORMATS}`);
    if (v.length === 0) throw new GraftError('LABELS_INVALID', `${path} is an empty list. ${FORMATS}`);
    return v as string[];
  }
  const o = v as Record<string, unknown>;
  if (isStringArray(o.labels)) return fromJson(o.labels, path);
  if (o.id2label !== undefined) return labelsFromHfConfig(o, path);
  return fromIndexMap(o, path, FORMATS);
}

function fromLines(text: string, path: string): string[] {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  const blank = lines.indexOf('');
  if (blank >= 0) throw new GraftError('LABELS_INVALID', `${path}: line ${blank + 1} is blank; every line must name one class (class i on line i + 1).`);
  return lines;
}
