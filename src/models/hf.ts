/**
 * Hugging Face Hub repos in the Transformers.js layout: `hf:owner/repo[@revision][#variant]` specs, the
 * resolve URLs files are served from, where each file lives in the cache, and fetching one file.
 */
import { join } from 'node:path';
import { GraftError } from '../errors.js';
import { downloadFile, type DownloadProgress } from './download.js';

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';
export const HF_SPEC_PREFIX = 'hf:';

export interface HfRef {
  /** owner/name */
  repo: string;
  /** Branch, tag or commit; `main` unless the spec says otherwise. */
  revision: string;
}

export interface HfSpec extends HfRef {
  /** Model file stem under onnx/: `model`, `model_quantized`, `model_fp16`, … */
  variant: string;
  /** Path of the model inside the repo, e.g. `onnx/model_quantized.onnx`. */
  file: string;
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$/;
const REVISION = /^[A-Za-z0-9._/-]+$/;
const VARIANT = /^[A-Za-z0-9_.-]+$/;
const EXAMPLE = 'Use hf:owner/repo, hf:owner/repo@revision or hf:owner/repo@revision#model_quantized.';

/** Parses what follows `hf:`. `variant` may be `model_fp16`, `fp16` (short for model_fp16) or `model_fp16.onnx`. */
export function parseHfSpec(spec: string): HfSpec {
  const bad = (why: string): never => {
    throw new GraftError('MODEL_SOURCE_INVALID', `"${spec}" is not a valid Hugging Face model: ${why} ${EXAMPLE}`, { subject: spec });
  };
  let body = spec.startsWith(HF_SPEC_PREFIX) ? spec.slice(HF_SPEC_PREFIX.length) : spec;
  let variant = 'model';
  const hash = body.indexOf('#');
  if (hash >= 0) {
    variant = body.slice(hash + 1).replace(/\.onnx$/, '');
    body = body.slice(0, hash);
    if (!variant || !VARIANT.test(variant)) bad('the part after # must name a model file under onnx/, such as model_quantized.');
    if (!variant.startsWith('model')) variant = `model_${variant}`;
  }
  let revision = 'main';
  const at = body.indexOf('@');
  if (at >= 0) {
    revision = body.slice(at + 1);
    body = body.slice(0, at);
    if (!revision || !REVISION.test(revision) || revision.split('/').some((s) => s === '' || s === '.' || s === '..')) {
      bad('the revision after @ must be a branch, tag or commit.');
    }
  }
  const parts = body.split('/');
  if (parts.length !== 2) bad('the repo must be written owner/name.');
  if (!parts.every((p) => NAME.test(p) && !p.includes('..'))) bad(`"${body}" contains characters a repo name cannot have.`);
  return { repo: body, revision, variant, file: `onnx/${variant}.onnx` };
}

/** `opts.endpoint`, else $HF_ENDPOINT, else https://huggingface.co — without a trailing slash. */
export function hfEndpoint(override?: string, env: NodeJS.ProcessEnv = process.env): string {
  const raw = (override ?? env.HF_ENDPOINT ?? DEFAULT_HF_ENDPOINT).trim().replace(/\/+$/, '');
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new GraftError('INVALID_ARGUMENT', `HF_ENDPOINT "${raw}" is not a URL. Set it to something like ${DEFAULT_HF_ENDPOINT}, or unset it.`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new GraftError('INVALID_ARGUMENT', `HF_ENDPOINT "${raw}" must be an http(s) URL.`);
  }
  return raw;
}

/** `opts.token`, else $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN (the older name). */
export function hfToken(override?: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = (override ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN)?.trim();
  return t ? t : undefined;
}

export function hfFileUrl(endpoint: string, ref: HfRef, path: string): string {
  const file = checkRepoPath(path).split('/').map(encodeURIComponent).join('/');
  return `${endpoint}/${ref.repo}/resolve/${encodeURIComponent(ref.revision)}/${file}`;
}

/**
 * `<cacheRoot>/downloads/hf/<owner>/<repo>/<revision>/<path>`; a non-default endpoint (a mirror) gets its
 * own tree, `downloads/hf@<host>/…`, since nothing guarantees it serves the same bytes.
 */
export function hfCachePath(cacheRoot: string, endpoint: string, ref: HfRef, path: string): string {
  const host = new URL(endpoint).host;
  const tree = endpoint === DEFAULT_HF_ENDPOINT ? 'hf' : `hf@${host.replace(/[^A-Za-z0-9.-]/g, '_')}`;
  const [owner, name] = ref.repo.split('/');
  return join(cacheRoot, 'downloads', tree, owner, name, encodeURIComponent(ref.revision), ...checkRepoPath(path).split('/'));
}

function checkRepoPath(path: string): string {
  const segs = path.split('/');
  if (path.startsWith('/') || segs.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\'))) {
    throw new GraftError('MODEL_INVALID', `"${path}" is not a file path inside a repo (it must be relative and stay inside the repo).`, { subject: path });
  }
  return path;
}

export interface HfFetchOptions {
  /** Cache root (the result of cacheDir()); files go under `downloads/`. */
  cacheRoot: string;
  endpoint?: string;
  token?: string;
  offline?: boolean;
  optional?: boolean;
  onProgress?: (e: DownloadProgress) => void;
  signal?: AbortSignal;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

/** Local path of `path` in the repo at the revision, downloading it once; undefined when optional and absent. */
export async function fetchHfFile(ref: HfRef, path: string, o: HfFetchOptions): Promise<string | undefined> {
  const endpoint = hfEndpoint(o.endpoint);
  const host = new URL(endpoint).host;
  const token = hfToken(o.token);
  const url = hfFileUrl(endpoint, ref, path);
  const label = `${ref.repo}@${ref.revision}/${path}`;
  return downloadFile({
    url,
    dest: hfCachePath(o.cacheRoot, endpoint, ref, path),
    label,
    etagChecksumHost: host,
    auth: token ? { host, token } : undefined,
    optional: o.optional,
    offline: o.offline,
    onProgress: o.onProgress,
    signal: o.signal,
    timeoutMs: o.timeoutMs,
    retries: o.retries,
    retryDelayMs: o.retryDelayMs,
    offlineHint: `(It comes from hf:${ref.repo}@${ref.revision}.)`,
    hint: (status, headers) => hfHint(status, headers, ref, path, !!token),
  });
}

function hfHint(status: number, headers: Record<string, string | string[] | undefined>, ref: HfRef, path: string, sentToken: boolean): string | undefined {
  const code = [headers['x-error-code']].flat()[0];
  if (status === 401 || status === 403) {
    if (code === 'GatedRepo' || status === 403) {
      return sentToken
        ? `${ref.repo} is gated or private and HF_TOKEN was refused: accept the model's terms on its page with the account the token belongs to, and check the token has read access.`
        : `${ref.repo} is gated or private: accept its terms on the model page, then set HF_TOKEN to a read token (${DEFAULT_HF_ENDPOINT}/settings/tokens).`;
    }
    return sentToken
      ? `HF_TOKEN was sent and refused for ${ref.repo}: check the token is valid and has access; also check the repo name (the Hub answers 401 for repos it will not show).`
      : `${ref.repo} is private, gated or does not exist (the Hub answers 401 for repos it will not show): check the name, or set HF_TOKEN to a read token (${DEFAULT_HF_ENDPOINT}/settings/tokens).`;
  }
  if (status === 404) {
    if (code === 'RevisionNotFound') return `Revision "${ref.revision}" does not exist in ${ref.repo}: check the branch, tag or commit after @.`;
    if (code === 'EntryNotFound') {
      return `${ref.repo}@${ref.revision} has no file ${path}: check the variant after # (the files under onnx/ on the repo page), or whether the repo is in the Transformers.js layout.`;
    }
    return `Check the repo name (${ref.repo}) and the revision (${ref.revision}); the model must be at ${path}.`;
  }
  return undefined;
}
