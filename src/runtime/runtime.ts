/**
 * The runtime: onnxruntime-node sessions living in worker threads, driven from the main thread with
 * graft Tensors. ORT's run() blocks the thread that calls it for the whole run, so it never runs here.
 *
 * Session cache: within one runtime, loading the same model (same bytes by SHA-256, or the same file with
 * the same size and mtime) with the same options returns a new handle onto the one existing ORT session;
 * the session is released when the last handle is. Loading a model again is common (predict, then
 * evaluate, then export checks) and an ORT session of a CNN costs its weights once more plus the
 * optimisation time. Handles are independent: releasing one never breaks another.
 *
 * Buffers: results arrive by transfer (no copy). Feeds are copied unless `run(..., { transfer: true })`,
 * which takes ownership: every ArrayBuffer behind the feeds' data is detached (the whole buffer, even when
 * the data is a view into a larger one). SharedArrayBuffer-backed feeds are shared, never copied.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TransferListItem } from 'node:worker_threads';
import { GraftError, throwIfAborted } from '../errors.js';
import type { Tensor } from '../onnx/tensor.js';
import { untilAborted } from './abort.js';
import type { LoadReply, LogLevel, Optimization, SessionConfig, ValueMeta, WireError } from './protocol.js';
import type { TaskContext, TaskMethods, TaskResult } from './task.js';
import { packFeeds } from './wire.js';
import { WorkerHost, wireToGraftError } from './worker-host.js';

export type { LogLevel, Optimization, ValueMeta } from './protocol.js';

export interface RuntimeOptions {
  /** Intra-op threads per session (default: os.availableParallelism()). Sessions on different workers run at the same time: keep workers × threads ≤ cores. */
  threads?: number;
  /** Worker threads; each session and task lives on one of them (default 1). */
  workers?: number;
  /** ORT log severity threshold (default 'error': warnings about e.g. unused initializers stay quiet). */
  logLevel?: LogLevel;
  /**
   * Let ORT's intra-op threads spin between parallel sections (default false). Spinning shaves latency
   * off many tiny ops but keeps cores busy after each run, taking them from image decoding on the main
   * thread and the libuv pool.
   */
  spin?: boolean;
}

export interface LoadOptions {
  /** Shown in error messages (default: the file name, or "model"). */
  name?: string;
  /** ORT graph optimisation level (default 'all'). */
  optimization?: Optimization;
  /** Fixes symbolic dims (e.g. { N: 32 }) so ORT can plan memory and specialise kernels. */
  freeDimensionOverrides?: Record<string, number>;
  /** Intra-op threads for this session (default: the runtime's). */
  threads?: number;
  /** Place the session on the same worker as this session or task (so a task can use it directly). */
  sameWorkerAs?: Session | TaskHandle<never>;
}

export interface RunOptions {
  /** Output names to compute (default: all outputs). */
  fetches?: readonly string[];
  /** Move the feeds' buffers to the worker instead of copying them; the caller's arrays become detached. */
  transfer?: boolean;
  /**
   * Rejects with ABORTED when it fires. A run already inside ORT cannot be interrupted: it finishes in the
   * worker and its result is dropped.
   */
  signal?: AbortSignal;
}

export interface LoadTaskOptions {
  sameWorkerAs?: Session | TaskHandle<never>;
  /** Buffers inside `init` to transfer rather than copy. */
  transfer?: readonly TransferListItem[];
}

/** Methods of a task whose module type is not given to loadTask. */
export type UntypedTaskMethods = { [method: string]: (args: unknown) => unknown };
type FactoryInit<F> = F extends (init: infer I, ctx: TaskContext) => unknown ? I : never;
type FactoryMethods<F> = F extends (init: never, ctx: TaskContext) => infer R ? (Awaited<R> extends TaskMethods ? Awaited<R> : never) : never;

interface SessionState {
  readonly key: string;
  readonly host: WorkerHost;
  readonly id: number;
  readonly inputs: readonly ValueMeta[];
  readonly outputs: readonly ValueMeta[];
  refs: number;
  released: boolean;
}

const OPTIMIZATIONS: readonly Optimization[] = ['all', 'basic', 'disabled'];

function positiveInt(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1) throw new GraftError('INVALID_ARGUMENT', `${name} must be a positive integer, got ${v}.`);
  return v;
}

/** ORT's messages span lines; graft's messages are one line. */
function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function describeValue(name: string, dtype: string | null, dims: readonly (number | string)[] | null): string {
  return dims ? `${name}: ${dtype} [${dims.join(', ')}]` : `${name}: (not a tensor)`;
}

export class Runtime {
  readonly threads: number;
  readonly workers: number;
  private readonly config: { threads: number; logLevel: LogLevel; spin: boolean };
  private readonly hosts: WorkerHost[];
  private readonly cache = new Map<string, Promise<SessionState>>();
  private closed: Promise<void> | undefined;
  private block: Promise<number> | undefined;

  private constructor(opts: RuntimeOptions) {
    this.threads = positiveInt('threads', opts.threads, availableParallelism());
    this.workers = positiveInt('workers', opts.workers, 1);
    this.config = { threads: this.threads, logLevel: opts.logLevel ?? 'error', spin: opts.spin ?? false };
    this.hosts = Array.from({ length: this.workers }, () => new WorkerHost(this.config));
  }

  /** Starts the worker threads (each loads onnxruntime-node) and resolves when they are ready. */
  static async create(opts: RuntimeOptions = {}): Promise<Runtime> {
    const rt = new Runtime(opts);
    try {
      await Promise.all(rt.hosts.map((h) => h.ready));
    } catch (e) {
      await rt.close();
      throw new GraftError('RUNTIME_FAILED', `Could not start the runtime's worker thread: ${(e as Error).message}. Check that onnxruntime-node is installed for this platform.`, { cause: e });
    }
    return rt;
  }

  /**
   * Creates (or shares, see the cache note above) an ORT session for a model given as ONNX bytes or a
   * .onnx path. A path is read by the worker, so external data next to the file is found.
   */
  async load(model: Uint8Array | string, opts: LoadOptions = {}): Promise<Session> {
    this.assertOpen();
    const optimization = opts.optimization ?? 'all';
    if (!OPTIMIZATIONS.includes(optimization)) throw new GraftError('INVALID_ARGUMENT', `optimization must be one of ${OPTIMIZATIONS.join(', ')}, got "${optimization}".`);
    const config: SessionConfig = { optimization, threads: positiveInt('threads', opts.threads, this.threads) };
    if (opts.freeDimensionOverrides) config.freeDimensionOverrides = Object.fromEntries(Object.entries(opts.freeDimensionOverrides).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    let identity: string;
    let source: Uint8Array | string;
    let label: string;
    if (typeof model === 'string') {
      source = resolvePath(model);
      label = model;
      let st;
      try {
        st = statSync(source);
      } catch {
        throw new GraftError('FILE_NOT_FOUND', `Model file ${model} does not exist.`, { subject: model });
      }
      if (!st.isFile()) throw new GraftError('INVALID_ARGUMENT', `${model} is not a file; give the path of a .onnx file.`, { subject: model });
      if (st.size === 0) throw new GraftError('MODEL_INVALID', `Model file ${model} is empty (0 bytes). Re-download or re-export it.`, { subject: model });
      identity = `file:${source}:${st.size}:${st.mtimeMs}`;
    } else {
      source = model;
      label = `${model.byteLength}-byte model`;
      identity = `sha256:${createHash('sha256').update(model).digest('hex')}`;
    }
    const name = opts.name ?? (typeof model === 'string' ? (model.split(/[\\/]/).pop() ?? model) : 'model');
    const pinned = opts.sameWorkerAs ? hostOf(opts.sameWorkerAs) : undefined;
    const key = `${identity}|${JSON.stringify(config)}|${pinned ? pinned.uid : '*'}`;

    for (;;) {
      let entry = this.cache.get(key);
      if (!entry) {
        entry = this.createState(key, source, config, label, pinned);
        this.cache.set(key, entry);
        entry.catch(() => this.cache.get(key) === entry && this.cache.delete(key));
      }
      const state = await entry;
      // released by its last handle, or its worker died, while we waited: make a fresh one
      if (state.released || state.host.dead) {
        if (this.cache.get(key) === entry) this.cache.delete(key);
        this.assertOpen();
        continue;
      }
      state.refs++;
      return new Session(state, name, this);
    }
  }

  private async createState(key: string, model: Uint8Array | string, config: SessionConfig, label: string, pinned: WorkerHost | undefined): Promise<SessionState> {
    const host = pinned ?? (await this.pickHost());
    if (pinned?.dead) throw new GraftError('RUNTIME_CRASHED', `The worker chosen with sameWorkerAs is gone; load that session or task again first.`);
    // a view into a larger buffer would clone the whole buffer; send just the model's bytes
    const bytes = typeof model === 'string' || model.byteLength === model.buffer.byteLength ? model : model.slice();
    host.residents++;
    try {
      const r = await host.request<LoadReply>(
        { op: 'load', model: bytes, config },
        { what: `loading ${label}`, explain: (e) => loadError(e, label) },
      );
      return { key, host, id: r.session, inputs: r.inputs, outputs: r.outputs, refs: 0, released: false };
    } catch (e) {
      host.residents--;
      throw e;
    }
  }

  /**
   * Starts a worker task: the worker imports `module` (a file URL, or a path) and calls its default
   * export, a factory made with defineTask, with `init`. See task.ts.
   */
  async loadTask<F extends (init: never, ctx: TaskContext) => unknown = (init: unknown, ctx: TaskContext) => UntypedTaskMethods>(
    module: string | URL,
    init?: FactoryInit<F>,
    opts: LoadTaskOptions = {},
  ): Promise<TaskHandle<FactoryMethods<F>>> {
    this.assertOpen();
    const url = module instanceof URL ? module.href : module.startsWith('file:') ? module : pathToFileURL(resolvePath(module)).href;
    const host = opts.sameWorkerAs ? hostOf(opts.sameWorkerAs) : await this.pickHost();
    host.residents++;
    try {
      const id = await host.request<number>({ op: 'loadTask', url, init }, { transfer: opts.transfer, what: `loading worker task ${url}` });
      return new TaskHandle<FactoryMethods<F>>(host, id, url);
    } catch (e) {
      host.residents--;
      throw e;
    }
  }

  /**
   * The NCHWc block size of this machine's ONNX Runtime (16 with AVX-512, 8 with AVX2, 0 without blocked
   * kernels), checked once by running a conv lowered with graph/nchwc against a plain one; training
   * graphs pass it to buildTrainStep's `nchwcBlock`.
   */
  nchwcBlock(): Promise<number> {
    this.assertOpen();
    if (!this.block) {
      const asked = this.pickHost().then((host) => host.request<number>({ op: 'nchwcBlock' }, { what: 'checking ORT\'s blocked conv kernels' }));
      // a failed check (a worker that died meanwhile) is asked again next time, not remembered
      asked.catch(() => this.block === asked && (this.block = undefined));
      this.block = asked;
    }
    return this.block;
  }

  /**
   * Refuses new calls, lets calls already made finish, releases every session and task, and ends the
   * worker threads. With `timeoutMs`, calls still running after it fail (RUNTIME_FAILED) and the threads
   * are terminated. Idempotent: later calls return the first call's promise.
   */
  close(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.closed ??= (async () => {
      this.cache.clear();
      await Promise.all(this.hosts.map((h) => h.close(opts.timeoutMs)));
    })();
    return this.closed;
  }

  /** @internal called by Session.release */
  async releaseState(state: SessionState): Promise<void> {
    if (--state.refs > 0 || state.released) return;
    state.released = true;
    state.host.residents--;
    const entry = this.cache.get(state.key);
    entry?.then(
      (s) => s === state && this.cache.get(state.key) === entry && this.cache.delete(state.key),
      () => undefined,
    );
    if (!state.host.dead) await state.host.request({ op: 'release', session: state.id }, { what: 'releasing a session' }).catch(() => undefined);
  }

  private assertOpen(): void {
    if (this.closed) throw new GraftError('RUNTIME_FAILED', 'The runtime was closed. Create a new one with Runtime.create().');
  }

  /** The live worker with the fewest sessions and tasks; dead workers are replaced here, never reused. */
  private async pickHost(): Promise<WorkerHost> {
    this.assertOpen();
    for (let i = 0; i < this.hosts.length; i++) if (this.hosts[i].dead) this.hosts[i] = new WorkerHost(this.config);
    let best = this.hosts[0];
    for (const h of this.hosts) if (h.residents < best.residents) best = h;
    await best.ready;
    return best;
  }
}

function hostOf(x: Session | TaskHandle<never>): WorkerHost {
  return x.host;
}

function loadError(e: WireError, label: string): GraftError {
  if (e.origin !== 'ort') return wireToGraftError(e);
  const hint =
    e.code === 'MODEL_UNSUPPORTED'
      ? "onnxruntime-node's CPU provider does not implement something the model uses; re-export it with standard ONNX operators or another opset."
      : e.code === 'FILE_NOT_FOUND'
        ? 'Check the path.'
        : 'Check that it is a complete ONNX model (re-download or re-export it).';
  return wireToGraftError(e, `Could not load ${label} into onnxruntime: ${oneLine(e.message)} ${hint}`);
}

/** A handle on an ORT session in a worker. Handles from one cached load share the session. */
export class Session {
  readonly name: string;
  /** Inputs as ORT reports them; free dims are their symbolic names. */
  readonly inputs: readonly ValueMeta[];
  readonly outputs: readonly ValueMeta[];
  #state: SessionState;
  #runtime: Runtime;
  #released = false;

  /** @internal */
  constructor(state: SessionState, name: string, runtime: Runtime) {
    this.#state = state;
    this.#runtime = runtime;
    this.name = name;
    this.inputs = state.inputs;
    this.outputs = state.outputs;
  }

  /** The session's id inside its worker (what a task passes to ctx.session()). */
  get id(): number {
    return this.#state.id;
  }

  /** @internal */
  get host(): WorkerHost {
    return this.#state.host;
  }

  /**
   * Runs the session. `opts` may be the list of outputs to fetch, or RunOptions. Feeds are copied to the
   * worker unless `transfer: true`; results come back without a copy.
   */
  async run(feeds: Record<string, Tensor>, opts: readonly string[] | RunOptions = {}): Promise<Record<string, Tensor>> {
    const o: RunOptions = Array.isArray(opts) ? { fetches: opts as readonly string[] } : (opts as RunOptions);
    throwIfAborted(o.signal);
    if (this.#released) throw new GraftError('RUNTIME_FAILED', `Session "${this.name}" was released; load the model again.`);
    const { feeds: packed, transfer } = packFeeds(feeds, o.transfer ?? false);
    const p = this.#state.host.request<Record<string, Tensor>>(
      { op: 'run', session: this.#state.id, feeds: packed, fetches: o.fetches },
      // dtype and dims survive a transfer (only data is detached), so the feeds can be described later
      { transfer, what: `running session "${this.name}"`, explain: (e) => this.runError(e, feeds) },
    );
    return untilAborted(p, o.signal);
  }

  private runError(e: WireError, feeds: Record<string, Tensor>): GraftError {
    if (e.origin !== 'ort') return wireToGraftError(e);
    const given = Object.entries(feeds).map(([k, t]) => describeValue(k, t.dtype, t.dims));
    const expected = this.inputs.map((v) => describeValue(v.name, v.dtype, v.dims)).join('; ');
    return wireToGraftError(
      e,
      `Session "${this.name}" could not run: ${oneLine(e.message)} The model expects ${expected}; it was given ${given.join('; ') || 'no feeds'}. ` +
        'Feed every input with the dtype and dims shown (a named dim such as "N" takes any size).',
    );
  }

  /** Drops this handle; the ORT session is released with its last handle. Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    await this.#runtime.releaseState(this.#state);
  }
}

/** A worker task started with runtime.loadTask(). */
export class TaskHandle<M extends TaskMethods = UntypedTaskMethods> {
  readonly id: number;
  readonly url: string;
  /** @internal */
  readonly host: WorkerHost;
  #disposed = false;

  /** @internal */
  constructor(host: WorkerHost, id: number, url: string) {
    this.host = host;
    this.id = id;
    this.url = url;
  }

  /** Calls a method of the task in its worker; `transfer` lists buffers in `args` to move, not copy. */
  call<K extends keyof M & string>(method: K, args?: Parameters<M[K]>[0], transfer?: readonly TransferListItem[]): Promise<TaskResult<ReturnType<M[K]>>> {
    if (this.#disposed) return Promise.reject(new GraftError('RUNTIME_FAILED', `Worker task ${this.url} was disposed; load it again.`));
    return this.host.request({ op: 'call', task: this.id, method, args }, { transfer, what: `calling ${method}() of worker task ${this.url}` });
  }

  /** Runs the task's dispose() after its queued calls and releases the sessions it created. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.host.residents--;
    if (!this.host.dead) await this.host.request({ op: 'disposeTask', task: this.id }, { what: `disposing worker task ${this.url}` });
  }
}
