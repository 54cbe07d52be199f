/**
 * Labelled image data sets: an ImageFolder tree (DATA/<class>/**) or a CSV/JSON manifest (path,label)
 * becomes a list of (path, label) items with sorted class names and typed warnings about what will hurt
 * training (tiny or imbalanced classes, the same picture under two labels...).
 *
 * Only files are listed here; decoding happens later and images that fail to decode are the consumer's
 * to skip and count.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { GraftError } from '../errors.js';
import { hashFiles, mapOrdered } from './content-hash.js';

/** Lower-case extensions (without the dot) that count as images; matched case-insensitively. */
export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze(['jpg', 'jpeg', 'png', 'webp', 'gif', 'tif', 'tiff', 'bmp', 'avif', 'heic']);
const IMAGE_EXT = new Set(IMAGE_EXTENSIONS);

export interface DatasetItem {
  /** Absolute path. */
  path: string;
  /** Index into `classes`. */
  label: number;
  /** Hex SHA-256 of the file's bytes, when it was computed while listing (see ScanOptions.hashAll). */
  hash?: string;
}

export type DatasetWarningCode =
  | 'EMPTY_CLASS'
  | 'TINY_CLASS'
  | 'IMBALANCED'
  | 'DUPLICATES_ACROSS_CLASSES'
  | 'DUPLICATES_WITHIN_CLASS'
  | 'LOOSE_FILES'
  | 'IGNORED_FILES'
  | 'UNREADABLE_PATHS'
  | 'MISSING_FILES'
  | 'TRAIN_VAL_OVERLAP'
  | 'NOT_VALIDATED';

export interface DatasetWarning {
  code: DatasetWarningCode;
  /** 'warning': likely to hurt results; 'note': worth knowing, usually harmless. */
  level: 'warning' | 'note';
  message: string;
  /** The classes concerned. */
  classes?: string[];
  /** Image counts of the classes concerned. */
  counts?: Record<string, number>;
  /** The files concerned (absolute paths). */
  files?: string[];
  /** Sets of files with identical content (absolute paths). */
  groups?: string[][];
}

export interface Dataset {
  /** The folder scanned, or the manifest's folder. */
  root: string;
  /** Class names in code-point order (the label of classes[i] is i). */
  classes: string[];
  /** Sorted by label, then by path. */
  items: DatasetItem[];
  warnings: DatasetWarning[];
}

export interface ScanOptions {
  /** Look for files with identical content (default true). */
  duplicates?: boolean;
  /**
   * Hash every file and keep the hash on its item (the feature cache needs them anyway). By default only
   * files whose byte size equals another file's are hashed, which finds the same duplicates far faster.
   */
  hashAll?: boolean;
  /** Files stat'ed / hashed at once (default 8). */
  concurrency?: number;
  /** Classes with fewer images than this get a TINY_CLASS warning (default 5). */
  minClassSize?: number;
  /** Largest / smallest class above this gets an IMBALANCED warning (default 10). */
  maxImbalance?: number;
  signal?: AbortSignal;
}

/** Options for reading a validation set, which may hold a subset of the classes and is not judged on balance. */
interface InternalOptions {
  minClasses: number;
  balanceChecks: boolean;
}

const TRAINING: InternalOptions = { minClasses: 2, balanceChecks: true };

/*
 * Code-point order, the order of Python's sorted() (torchvision's ImageFolder, Keras): independent of the
 * locale, and class indices match what those tools would assign to the same folders. Plain `<` on JS
 * strings compares UTF-16 units, which puts astral characters (emoji...) before U+E000–U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return unitKey(x) - unitKey(y);
  }
  return a.length - b.length;
}

function unitKey(u: number): number {
  if (u >= 0xd800 && u <= 0xdfff) return u + 0x2000; // surrogates: code points above U+FFFF
  if (u >= 0xe000) return u - 0x800;
  return u;
}

// macOS stores names decomposed (NFD); a class "café" must be the same class whichever disk it came from
function className(name: string): string {
  return name.normalize('NFC');
}

function isHidden(name: string): boolean {
  // __MACOSX: resource-fork junk that macOS's zip tool adds next to the real folders
  return name.startsWith('.') || name === '__MACOSX';
}

export function isImagePath(p: string): boolean {
  return IMAGE_EXT.has(extname(p).slice(1).toLowerCase());
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** "a, b, c and 4 more" */
function listSome(xs: readonly string[], max = 5): string {
  const head = xs.slice(0, max).join(', ');
  return xs.length > max ? `${head} and ${xs.length - max} more` : head;
}

function layoutHelp(dir: string): string {
  const exts = IMAGE_EXTENSIONS.map((e) => `.${e}`).join(' ');
  return (
    `graft expects one folder per class with the images inside (nested folders are fine):\n` +
    `  ${join(dir, 'cats', '001.jpg')}\n  ${join(dir, 'dogs', '001.jpg')}\n` +
    `Images are files ending in ${exts} (any case). Or list the images in a CSV/JSON manifest with path,label columns.`
  );
}

async function statDir(dir: string): Promise<void> {
  let s;
  try {
    s = await stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new GraftError('FILE_NOT_FOUND', `Data folder ${dir} does not exist. Check the path (relative paths start at ${process.cwd()}).`, { subject: dir, cause: e });
    throw new GraftError('DATASET_INVALID', `Cannot read data folder ${dir}: ${(e as Error).message}.`, { subject: dir, cause: e });
  }
  if (!s.isDirectory()) {
    throw new GraftError('DATASET_INVALID', `${dir} is a file, not a folder. Pass a folder with one sub-folder per class, or a .csv/.json manifest (path,label).`, { subject: dir });
  }
}

interface Listing {
  images: string[];
  ignoredExt: Map<string, number>;
  unreadable: string[];
}

/** All images under `top`, following symlinks; each real directory is walked at most once (no loops). */
async function walk(top: string, listing: Listing): Promise<void> {
  const seen = new Set<string>();
  const stack = [top];
  while (stack.length) {
    const dir = stack.pop() as string;
    let entries;
    try {
      const real = await realpath(dir);
      if (seen.has(real)) continue;
      seen.add(real);
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      listing.unreadable.push(dir);
      continue;
    }
    for (const ent of entries) {
      if (isHidden(ent.name)) continue;
      const full = join(dir, ent.name);
      let isDir = ent.isDirectory();
      let isFile = ent.isFile();
      if (ent.isSymbolicLink()) {
        try {
          const s = await stat(full);
          isDir = s.isDirectory();
          isFile = s.isFile();
        } catch {
          listing.unreadable.push(full); // a dangling link
          continue;
        }
      }
      if (isDir) stack.push(full);
      else if (isFile) {
        if (isImagePath(ent.name)) listing.images.push(full);
        else {
          const ext = extname(ent.name).toLowerCase() || '(none)';
          listing.ignoredExt.set(ext, (listing.ignoredExt.get(ext) ?? 0) + 1);
        }
      }
    }
  }
}

/**
 * Lists an ImageFolder tree: every non-hidden sub-folder of `dir` is a class, every image below it (at any
 * depth) one of its items. Class folders without images are dropped with a warning.
 */
export function scanImageFolder(dir: string, opts: ScanOptions = {}): Promise<Dataset> {
  return scanFolder(dir, opts, TRAINING);
}

async function scanFolder(dirIn: string, opts: ScanOptions, mode: InternalOptions): Promise<Dataset> {
  const root = resolve(dirIn);
  await statDir(root);
  const warnings: DatasetWarning[] = [];
  let top;
  try {
    top = await readdir(root, { withFileTypes: true });
  } catch (e) {
    throw new GraftError('DATASET_INVALID', `Cannot list data folder ${root}: ${(e as Error).message}.`, { subject: root, cause: e });
  }
  const classDirs: string[] = [];
  const loose: string[] = [];
  for (const ent of top) {
    if (isHidden(ent.name)) continue;
    const full = join(root, ent.name);
    let isDir = ent.isDirectory();
    if (ent.isSymbolicLink()) isDir = await stat(full).then((s) => s.isDirectory(), () => false);
    if (isDir) classDirs.push(ent.name);
    else if (isImagePath(ent.name)) loose.push(full);
  }

  const listing: Listing = { images: [], ignoredExt: new Map(), unreadable: [] };
  const entries: Entry[] = [];
  const empty: string[] = [];
  for (const name of classDirs) {
    const before = listing.images.length;
    await walk(join(root, name), listing);
    const found = listing.images.slice(before);
    if (!found.length) empty.push(className(name));
    for (const path of found) entries.push({ path, cls: className(name) });
  }
  empty.sort(compareCodePoints);
  loose.sort(compareCodePoints);

  if (!entries.length) {
    let hint = '';
    if (loose.length) hint += `\nFound ${plural(loose.length, 'image')} directly in ${root} (${listSome(loose.map((p) => relative(root, p)), 3)}); move them into a folder named after their class.`;
    if (empty.length) hint += `\nThe folder(s) ${listSome(empty.map((c) => JSON.stringify(c)))} contain no images.`;
    throw new GraftError('DATASET_EMPTY', `No images found in ${root}. ${layoutHelp(root)}${hint}`, { subject: root });
  }
  if (loose.length) {
    warnings.push({
      code: 'LOOSE_FILES',
      level: 'warning',
      message: `${plural(loose.length, 'image')} directly in ${root} belong to no class and were ignored (${listSome(loose.map((p) => relative(root, p)))}). Move them into a class folder.`,
      files: loose,
    });
  }
  if (empty.length) {
    warnings.push({
      code: 'EMPTY_CLASS',
      level: 'warning',
      message: `${plural(empty.length, 'class folder')} without images ${empty.length === 1 ? 'was' : 'were'} dropped: ${listSome(empty.map((c) => JSON.stringify(c)), 10)}. Add images, or remove the folder${empty.length === 1 ? '' : 's'}.`,
      classes: empty,
    });
  }
  if (listing.ignoredExt.size) {
    const kinds = [...listing.ignoredExt].sort((a, b) => b[1] - a[1]).map(([ext, n]) => `${n} × ${ext}`);
    const total = [...listing.ignoredExt.values()].reduce((a, b) => a + b, 0);
    warnings.push({
      code: 'IGNORED_FILES',
      level: 'note',
      message: `${plural(total, 'file')} without an image extension ${total === 1 ? 'was' : 'were'} ignored (${listSome(kinds)}). Images must end in ${IMAGE_EXTENSIONS.map((e) => `.${e}`).join(' ')}.`,
    });
  }
  if (listing.unreadable.length) {
    warnings.push({
      code: 'UNREADABLE_PATHS',
      level: 'warning',
      message: `${plural(listing.unreadable.length, 'folder or link')} could not be read and ${listing.unreadable.length === 1 ? 'was' : 'were'} skipped (${listSome(listing.unreadable.map((p) => relative(root, p)))}). Check permissions and broken symlinks.`,
      files: listing.unreadable,
    });
  }
  return finish(root, entries, warnings, opts, mode, (classes, n) =>
    `${root} has a single class (${JSON.stringify(classes[0])}, ${plural(n, 'image')}); a classifier needs at least 2. Add a folder per class: ${join(root, '<class>', '<image>.jpg')}.`,
  );
}

interface Entry {
  path: string;
  cls: string;
  size?: number;
}

/** Labels, order, class-size checks and duplicate detection shared by folders and manifests. */
async function finish(root: string, entries: Entry[], warnings: DatasetWarning[], opts: ScanOptions, mode: InternalOptions, oneClass: (classes: string[], n: number) => string): Promise<Dataset> {
  const counts = new Map<string, number>();
  for (const e of entries) counts.set(e.cls, (counts.get(e.cls) ?? 0) + 1);
  const classes = [...counts.keys()].sort(compareCodePoints);
  if (classes.length < mode.minClasses) throw new GraftError('DATASET_INVALID', oneClass(classes, entries.length), { subject: root });
  const label = new Map(classes.map((c, i) => [c, i]));
  entries.sort((a, b) => (label.get(a.cls) as number) - (label.get(b.cls) as number) || compareCodePoints(a.path, b.path));
  const items: DatasetItem[] = entries.map((e) => ({ path: e.path, label: label.get(e.cls) as number }));

  if (mode.balanceChecks) warnings.push(...balanceWarnings(classes, counts, opts));
  if (opts.duplicates ?? true) {
    const { groups, hashes } = await groupByContent(
      entries.map((e) => e.path),
      { ...opts, sizes: entries.map((e) => e.size) },
    );
    hashes.forEach((h, i) => {
      if (h !== undefined) items[i].hash = h;
    });
    warnings.push(...duplicateWarnings(root, classes, items, groups));
  }
  return { root, classes, items, warnings };
}

function balanceWarnings(classes: string[], counts: Map<string, number>, opts: ScanOptions): DatasetWarning[] {
  const out: DatasetWarning[] = [];
  const minSize = opts.minClassSize ?? 5;
  const maxRatio = opts.maxImbalance ?? 10;
  const tiny = classes.filter((c) => (counts.get(c) as number) < minSize);
  if (tiny.length) {
    const what = tiny.map((c) => `${JSON.stringify(c)} (${counts.get(c)})`);
    out.push({
      code: 'TINY_CLASS',
      level: 'warning',
      message: `${plural(tiny.length, 'class has', 'classes have')} fewer than ${minSize} images: ${listSome(what, 10)}. The head will barely learn them and their validation numbers mean little; 20+ images per class is a good start.`,
      classes: tiny,
      counts: Object.fromEntries(tiny.map((c) => [c, counts.get(c) as number])),
    });
  }
  let big = classes[0];
  let small = classes[0];
  for (const c of classes) {
    if ((counts.get(c) as number) > (counts.get(big) as number)) big = c;
    if ((counts.get(c) as number) < (counts.get(small) as number)) small = c;
  }
  const ratio = (counts.get(big) as number) / (counts.get(small) as number);
  if (ratio > maxRatio) {
    out.push({
      code: 'IMBALANCED',
      level: 'warning',
      message:
        `Classes are imbalanced: the largest, ${JSON.stringify(big)}, has ${counts.get(big)} images, the smallest, ${JSON.stringify(small)}, ${counts.get(small)} (${ratio.toFixed(1)}×). ` +
        'The head will favour the large classes; use class weights (--class-weights auto) or add images to the small ones.',
      classes: [big, small],
      counts: Object.fromEntries(classes.map((c) => [c, counts.get(c) as number])),
    });
  }
  return out;
}

export interface ContentGroups {
  /** Sets (≥ 2) of indices into `paths` whose files have identical bytes. */
  groups: number[][];
  /** The hash of each path, where one was computed. */
  hashes: (string | undefined)[];
}

/**
 * Finds files with identical content. Unless `hashAll`, only files whose size matches another's are
 * hashed (a file with a unique size has no copy). Files that cannot be read are left out.
 */
export async function groupByContent(
  paths: readonly string[],
  opts: { hashAll?: boolean; concurrency?: number; signal?: AbortSignal; sizes?: readonly (number | undefined)[]; hashes?: readonly (string | undefined)[] } = {},
): Promise<ContentGroups> {
  const concurrency = opts.concurrency ?? 8;
  const hashes: (string | undefined)[] = paths.map((_, i) => opts.hashes?.[i]);
  let todo: number[];
  if (opts.hashAll) todo = paths.map((_, i) => i).filter((i) => hashes[i] === undefined);
  else {
    const sizes = [...(opts.sizes ?? [])];
    const unknown = paths.map((_, i) => i).filter((i) => sizes[i] === undefined);
    for await (const r of mapOrdered(unknown, concurrency, (i) => stat(paths[i]).then((s) => s.size), opts.signal)) {
      if (r.ok) sizes[unknown[r.index]] = r.value;
    }
    const bySize = new Map<number, number[]>();
    paths.forEach((_, i) => {
      const s = sizes[i];
      if (s === undefined) return;
      const g = bySize.get(s);
      if (g) g.push(i);
      else bySize.set(s, [i]);
    });
    todo = [...bySize.values()].filter((g) => g.length > 1).flat().filter((i) => hashes[i] === undefined);
  }
  for await (const r of hashFiles(todo.map((i) => paths[i]), { concurrency, signal: opts.signal })) {
    if (r.ok) hashes[todo[r.index]] = r.value;
  }
  const byHash = new Map<string, number[]>();
  hashes.forEach((h, i) => {
    if (h === undefined) return;
    const g = byHash.get(h);
    if (g) g.push(i);
    else byHash.set(h, [i]);
  });
  return { groups: [...byHash.values()].filter((g) => g.length > 1), hashes };
}

function duplicateWarnings(root: string, classes: string[], items: DatasetItem[], groups: number[][]): DatasetWarning[] {
  const rel = (i: number) => relative(root, items[i].path) || items[i].path;
  const show = (g: number[]) => g.map(rel).join(' = ');
  const across = groups.filter((g) => new Set(g.map((i) => items[i].label)).size > 1);
  const within = groups.filter((g) => !across.includes(g));
  const out: DatasetWarning[] = [];
  if (across.length) {
    const cls = [...new Set(across.flat().map((i) => items[i].label))].sort((a, b) => a - b).map((l) => classes[l]);
    out.push({
      code: 'DUPLICATES_ACROSS_CLASSES',
      level: 'warning',
      message:
        `${plural(across.length, 'image appears', 'images appear')} under more than one class (identical files): ${listSome(across.map(show), 5)}. ` +
        'One picture cannot have two right answers, and a copy on the validation side flatters accuracy; keep each image in one class.',
      classes: cls,
      groups: across.map((g) => g.map((i) => items[i].path)),
    });
  }
  if (within.length) {
    const copies = within.reduce((a, g) => a + g.length - 1, 0);
    out.push({
      code: 'DUPLICATES_WITHIN_CLASS',
      level: 'note',
      message: `${plural(copies, 'file is an exact copy', 'files are exact copies')} of another in the same class (${listSome(within.map(show), 3)}); copies count twice in training and can land on both sides of a split.`,
      groups: within.map((g) => g.map((i) => items[i].path)),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- manifests

const PATH_COLUMNS = ['path', 'file', 'filename', 'filepath', 'image'];
const LABEL_COLUMNS = ['label', 'class', 'category'];

interface ManifestRow {
  path: string;
  label: string;
  /** 1-based line (CSV) or item index (JSON) for error messages. */
  where: string;
}

/**
 * Parses CSV text (RFC 4180: quoted fields may hold the delimiter, newlines and "" for a quote) into rows
 * with the line each starts on. Blank lines are skipped.
 */
export function parseCsv(text: string, delimiter = ','): { fields: string[]; line: number }[] {
  const rows: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let rowLine = 1;
  let i = 0;
  let quotedField = false;
  const endField = () => {
    fields.push(quotedField ? field : field.trim());
    field = '';
    quotedField = false;
  };
  const endRow = () => {
    endField();
    if (!(fields.length === 1 && fields[0] === '')) rows.push({ fields, line: rowLine });
    fields = [];
  };
  while (i < text.length) {
    const ch = text[i];
    if (ch === '"' && field.trim() === '' && !quotedField) {
      // a quoted field: read to the closing quote
      const start = line;
      field = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new GraftError('DATASET_INVALID', `line ${start}: a quoted field is never closed (missing ").`);
        const c = text[i];
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (c === '\n') line++;
        field += c;
        i++;
      }
      quotedField = true;
      while (text[i] === ' ' || text[i] === '\t') i++;
      if (i < text.length && text[i] !== delimiter && text[i] !== '\n' && text[i] !== '\r') {
        throw new GraftError('DATASET_INVALID', `line ${line}: unexpected text after a closing quote; inside quotes write "" for a quote character.`);
      }
      continue;
    }
    if (ch === delimiter) {
      endField();
      i++;
    } else if (ch === '\n' || ch === '\r') {
      endRow();
      i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      rowLine = line;
    } else {
      field += ch;
      i++;
    }
  }
  if (field !== '' || quotedField || fields.length) endRow();
  return rows;
}

function manifestError(file: string, what: string, cause?: unknown): GraftError {
  return new GraftError('DATASET_INVALID', `Manifest ${file}: ${what}`, { subject: file, cause });
}

function parseCsvManifest(file: string, text: string): ManifestRow[] {
  const firstLine = text.slice(0, text.search(/\r|\n|$/));
  // Excel in many locales writes ';'; tab-separated files are common too
  const delimiter = firstLine.includes(',') ? ',' : firstLine.includes('\t') ? '\t' : firstLine.includes(';') ? ';' : ',';
  let rows;
  try {
    rows = parseCsv(text, delimiter);
  } catch (e) {
    throw manifestError(file, (e as Error).message, e);
  }
  if (!rows.length) return [];
  const header = rows[0].fields.map((h) => h.trim().toLowerCase());
  const pi = header.findIndex((h) => PATH_COLUMNS.includes(h));
  const li = header.findIndex((h) => LABEL_COLUMNS.includes(h));
  if (pi < 0 || li < 0) {
    throw manifestError(file, `the first line must be a header naming a path column (${PATH_COLUMNS.join('/')}) and a label column (${LABEL_COLUMNS.join('/')}), e.g. "path,label"; found "${firstLine.slice(0, 80)}".`);
  }
  return rows.slice(1).map(({ fields, line }) => {
    if (fields.length <= Math.max(pi, li)) throw manifestError(file, `line ${line} has ${fields.length} field(s); expected at least ${Math.max(pi, li) + 1} (${header.join(delimiter)}).`);
    return { path: fields[pi], label: fields[li], where: `line ${line}` };
  });
}

function parseJsonManifest(file: string, text: string): ManifestRow[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw manifestError(file, `not valid JSON (${(e as Error).message}). Expected [{"path": "cats/1.jpg", "label": "cat"}, ...].`, e);
  }
  if (!Array.isArray(data)) throw manifestError(file, 'expected a JSON array of {"path", "label"} objects.');
  return data.map((x: unknown, i) => {
    const o = x as { path?: unknown; label?: unknown } | null;
    const label = typeof o?.label === 'number' && Number.isFinite(o.label) ? String(o.label) : o?.label;
    if (typeof o?.path !== 'string' || typeof label !== 'string') {
      throw manifestError(file, `item ${i} must be an object with a string "path" and a string (or number) "label"; got ${JSON.stringify(x)?.slice(0, 100)}.`);
    }
    return { path: o.path.trim(), label: label.trim(), where: `item ${i}` };
  });
}

/**
 * Reads a manifest listing images and their labels: CSV with a header (path,label; quoted fields; "," ";"
 * or tab) or JSON ([{ "path": ..., "label": ... }]). Relative paths start at the manifest's folder.
 * Listed files that do not exist are dropped with a MISSING_FILES warning.
 */
export async function readManifest(fileIn: string, opts: ScanOptions = {}): Promise<Dataset> {
  const file = resolve(fileIn);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new GraftError('FILE_NOT_FOUND', `Manifest ${file} does not exist. Check the path (relative paths start at ${process.cwd()}).`, { subject: file, cause: e });
    if (code === 'EISDIR') throw new GraftError('DATASET_INVALID', `${file} is a folder; use scanImageFolder for a folder per class, or pass the manifest file itself.`, { subject: file, cause: e });
    throw new GraftError('DATASET_INVALID', `Cannot read manifest ${file}: ${(e as Error).message}.`, { subject: file, cause: e });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const ext = extname(file).toLowerCase();
  const json = ext === '.json' || (ext !== '.csv' && ext !== '.tsv' && /^\s*\[/.test(text));
  const rows = json ? parseJsonManifest(file, text) : parseCsvManifest(file, text);
  const root = dirname(file);
  for (const r of rows) {
    if (!r.path) throw manifestError(file, `${r.where} has an empty path.`);
    if (!r.label) throw manifestError(file, `${r.where} (${r.path}) has an empty label.`);
  }
  if (!rows.length) throw new GraftError('DATASET_EMPTY', `Manifest ${file} lists no images. Add one line per image: path,label (paths relative to ${root}).`, { subject: file });

  const paths = rows.map((r) => (isAbsolute(r.path) ? r.path : resolve(root, r.path.split(/[\\/]/).join(sep))));
  const entries: Entry[] = [];
  const missing: string[] = [];
  for await (const r of mapOrdered(paths, opts.concurrency ?? 8, (p) => stat(p), opts.signal)) {
    if (r.ok && r.value.isFile()) entries.push({ path: paths[r.index], cls: className(rows[r.index].label), size: r.value.size });
    else missing.push(paths[r.index]);
  }
  const warnings: DatasetWarning[] = [];
  if (!entries.length) {
    throw new GraftError('DATASET_EMPTY', `None of the ${plural(rows.length, 'file')} listed in ${file} exist (e.g. ${missing[0]}). Paths are relative to the manifest's folder, ${root}.`, { subject: file });
  }
  if (missing.length) {
    warnings.push({
      code: 'MISSING_FILES',
      level: 'warning',
      message: `${plural(missing.length, 'file')} listed in ${file} ${missing.length === 1 ? 'does' : 'do'} not exist and ${missing.length === 1 ? 'was' : 'were'} skipped: ${listSome(missing.map((p) => relative(root, p)))}.`,
      files: missing,
    });
  }
  return finish(root, entries, warnings, opts, TRAINING, (classes, n) => `${file} has a single label (${JSON.stringify(classes[0])}, ${plural(n, 'image')}); a classifier needs at least 2.`);
}

/** A folder (ImageFolder layout) or a .csv / .json manifest. */
export async function loadDataset(source: string, opts: ScanOptions = {}): Promise<Dataset> {
  const s = await stat(source).catch(() => undefined);
  if (s?.isFile()) return readManifest(source, opts);
  return scanImageFolder(source, opts);
}

/** @internal a validation folder: one class is enough and balance is not judged. */
export function scanValidationFolder(dir: string, opts: ScanOptions = {}): Promise<Dataset> {
  return scanFolder(dir, opts, { minClasses: 1, balanceChecks: false });
}
