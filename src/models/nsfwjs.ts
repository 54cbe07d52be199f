/**
 * The models bundled in the nsfwjs npm package, read from its files: `model.min.js` (a UMD bundle whose
 * export is the tfjs model.json) and `group1-shardKofN.min.js` (each exports the shard's bytes as base64).
 * The bundles are evaluated in an empty node:vm context (no require, no process), and the package's
 * `exports` map is bypassed by locating its directory on disk.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { GraftError } from '../errors.js';
import { concatBytes, specsOfManifest, type WeightSpec, type WeightsManifest } from './tfjs/weights.js';

/** The layers models nsfwjs ships (its `mobilenet_v2_mid` is a graph model, which graft does not import). */
export type NsfwjsModel = 'mobilenet_v2' | 'inception_v3';

export const NSFWJS_MODELS: readonly NsfwjsModel[] = ['mobilenet_v2', 'inception_v3'];

export interface NsfwjsPackage {
  dir: string;
  version: string;
}

export interface LoadedLayersModel {
  /** The model.json object: `{ modelTopology, weightsManifest }`. */
  modelJson: { modelTopology: object; weightsManifest: WeightsManifest };
  /** All shards concatenated in manifest order (still quantised). */
  weightData: Uint8Array;
  specs: WeightSpec[];
}

function packageAt(dir: string): NsfwjsPackage | undefined {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return undefined;
  try {
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    return pkg.name === 'nsfwjs' && typeof pkg.version === 'string' ? { dir, version: pkg.version } : undefined;
  } catch {
    return undefined;
  }
}

/** Walks up from `start` to the directory holding nsfwjs' package.json. */
function walkUpToPackage(start: string): NsfwjsPackage | undefined {
  let dir = start;
  while (true) {
    const found = packageAt(dir);
    if (found) return found;
    const parent = dirname(dir);
    if (parent === dir || dir === parse(dir).root) return undefined;
    dir = parent;
  }
}

/** Looks for node_modules/nsfwjs in `start` and every directory above it. */
function searchNodeModules(start: string): NsfwjsPackage | undefined {
  let dir = start;
  while (true) {
    const found = packageAt(join(dir, 'node_modules', 'nsfwjs'));
    if (found) return found;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

let located: NsfwjsPackage | undefined;

/** The installed nsfwjs package: its directory and version. */
export function nsfwjsPackage(): NsfwjsPackage {
  if (located) return located;
  const here = dirname(fileURLToPath(import.meta.url));
  let found: NsfwjsPackage | undefined;
  try {
    // the package's main entry is exported; its directory leads back to the package root
    found = walkUpToPackage(dirname(createRequire(import.meta.url).resolve('nsfwjs')));
  } catch {
    found = undefined;
  }
  found ??= searchNodeModules(here) ?? searchNodeModules(process.cwd());
  if (!found) {
    throw new GraftError('FILE_NOT_FOUND', 'The nsfwjs package, which holds the builtin models, is not installed. Run `npm install nsfwjs@4.4.0` next to graft.', {
      subject: 'nsfwjs',
    });
  }
  located = found;
  return found;
}

/**
 * Runs a UMD bundle with nothing but `module` / `exports` in scope and returns its export, copied into
 * this realm as JSON (model configs) or as a string (weight shards).
 */
export function evaluateUmdBundle(code: string, filename: string, timeoutMs = 30_000): unknown {
  const module = { exports: {} as unknown };
  const context = vm.createContext({ module, exports: module.exports }, { codeGeneration: { strings: false, wasm: false } });
  try {
    new vm.Script(code, { filename }).runInContext(context, { timeout: timeoutMs });
    const exported: unknown = vm.runInContext('module.exports', context);
    if (typeof exported === 'string') return exported;
    const json: unknown = vm.runInContext('JSON.stringify(module.exports)', context);
    return typeof json === 'string' ? (JSON.parse(json) as unknown) : undefined;
  } catch (e) {
    throw new GraftError('MODEL_INVALID', `${filename} could not be evaluated as a model bundle (${(e as Error).message}). Reinstall nsfwjs.`, { subject: filename, cause: e });
  }
}

function readBundle(path: string): unknown {
  if (!existsSync(path)) {
    throw new GraftError('FILE_NOT_FOUND', `${path} is missing from the installed nsfwjs package. Reinstall nsfwjs@4.4.0.`, { subject: path });
  }
  return evaluateUmdBundle(readFileSync(path, 'utf8'), path);
}

/** Loads one of nsfwjs' layers models: model.json, weight specs and the (quantised) weight bytes. */
export function loadNsfwjsModel(model: NsfwjsModel): LoadedLayersModel {
  if (!NSFWJS_MODELS.includes(model)) {
    throw new GraftError('INVALID_ARGUMENT', `nsfwjs model "${String(model)}" is not a layers model graft can import (use ${NSFWJS_MODELS.join(' or ')}).`);
  }
  const dir = join(nsfwjsPackage().dir, 'dist', 'models', model);
  const json = readBundle(join(dir, 'model.min.js')) as LoadedLayersModel['modelJson'] | undefined;
  if (!json || typeof json.modelTopology !== 'object' || !Array.isArray(json.weightsManifest)) {
    throw new GraftError('MODEL_INVALID', `${join(dir, 'model.min.js')} does not export a tfjs model.json. Reinstall nsfwjs@4.4.0.`);
  }
  const shards = json.weightsManifest.flatMap((g) => g.paths).map((p) => {
    const file = join(dir, `${p}.min.js`);
    const b64 = readBundle(file);
    if (typeof b64 !== 'string') throw new GraftError('MODEL_INVALID', `${file} does not export a base64 string. Reinstall nsfwjs@4.4.0.`, { subject: file });
    const bytes = Buffer.from(b64, 'base64');
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  });
  return { modelJson: json, weightData: concatBytes(shards), specs: specsOfManifest(json.weightsManifest) };
}
