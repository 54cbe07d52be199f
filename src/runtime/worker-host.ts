/**
 * One runtime worker thread seen from the main thread: requests out, replies matched back to promises,
 * and a death (uncaught exception, process.exit, native abort of the thread) turned into RUNTIME_CRASHED
 * for every call still waiting on it. A dead host is never reused; the runtime replaces it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type TransferListItem } from 'node:worker_threads';
import { GraftError } from '../errors.js';
import type { Request, WireError, WorkerConfig, WorkerMessage } from './protocol.js';

/*
 * The worker script is this file's sibling with the same extension: dist/runtime/worker.js in the built
 * package, src/runtime/worker.ts when graft runs from its sources (vitest, `npx tsx`). Neither vitest's
 * transform nor tsx's hooks reach worker threads on Node 20 (not even `--import tsx` in the worker's
 * execArgv), so a .ts worker starts from a two-line bootstrap that registers tsx inside the thread and then
 * imports worker.ts; task modules the worker imports later go through the same hooks. tsx's ESM API entry
 * is looked up in its package.json from here (its CommonJS build can't register, and vitest has no
 * import.meta.resolve). tsx is a devDependency: only source checkouts run .ts.
 */
const FROM_SOURCE = import.meta.url.endsWith('.ts');

function spawnWorker(config: WorkerConfig): Worker {
  if (!FROM_SOURCE) return new Worker(new URL('./worker.js', import.meta.url), { workerData: config });
  return new Worker(tsWorkerBootstrap(new URL('./worker.ts', import.meta.url).href), { eval: true, workerData: config });
}

/** Source for `new Worker(…, { eval: true })` that registers tsx inside the thread, then imports the .ts module at `entry` (a URL). */
export function tsWorkerBootstrap(entry: string): string {
  const pkgPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const tsxApi = pathToFileURL(join(dirname(pkgPath), pkg.exports['./esm/api'].import.default)).href;
  return `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  what: string;
  explain?: (e: WireError) => GraftError;
}

let hostCounter = 0;

export class WorkerHost {
  /** Distinguishes hosts across replacements (a cache key must not outlive its worker). */
  readonly uid = ++hostCounter;
  /** Sessions and tasks placed on this worker, for choosing the least loaded one. */
  residents = 0;
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly exited: Promise<void>;
  private nextId = 1;
  private death: GraftError | undefined;
  private closing: Promise<void> | undefined;

  constructor(config: WorkerConfig) {
    this.worker = spawnWorker(config);
    let onReady!: () => void;
    let onFail!: (e: GraftError) => void;
    this.ready = new Promise<void>((res, rej) => {
      onReady = res;
      onFail = rej;
    });
    this.ready.catch(() => undefined);
    let started = false;
    this.worker.on('message', (msg: WorkerMessage) => {
      if (msg.kind === 'ready') {
        started = true;
        if (this.pending.size === 0) this.worker.unref();
        onReady();
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (this.pending.size === 0) this.worker.unref();
      if (msg.ok) p.resolve(msg.value);
      else p.reject(p.explain?.(msg.error) ?? wireToGraftError(msg.error));
    });
    this.worker.on('error', (e) => {
      this.die(`uncaught ${e.name}: ${e.message}`, e);
      if (!started) onFail(this.death!);
    });
    this.exited = new Promise<void>((res) => {
      this.worker.once('exit', (code) => {
        if (!this.closing || this.pending.size) this.die(`exited with code ${code}`);
        if (!started) onFail(this.death ?? new GraftError('RUNTIME_FAILED', 'The runtime worker exited before it started.'));
        res();
      });
    });
  }

  get dead(): boolean {
    return this.death !== undefined || this.closing !== undefined;
  }

  /**
   * Sends a request; resolves with the worker's value. `transfer` buffers move to the worker; if one of
   * them cannot be transferred (Node's pooled Buffers are marked untransferable) the message is copied.
   */
  request<T>(req: Request, opts: { transfer?: readonly TransferListItem[]; what: string; explain?: (e: WireError) => GraftError }): Promise<T> {
    if (this.death) return Promise.reject(this.crashError(opts.what, this.death));
    if (this.closing && req.op !== 'close') return Promise.reject(new GraftError('RUNTIME_FAILED', `The runtime was closed; cannot go on ${opts.what}. Create a new runtime.`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      try {
        this.post({ ...req, id }, opts.transfer ?? []);
      } catch (e) {
        reject(new GraftError('INVALID_ARGUMENT', `Cannot send the arguments for ${opts.what} to the runtime worker: ${(e as Error).message}. Pass plain data, typed arrays and tensors.`, { cause: e }));
        return;
      }
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, what: opts.what, explain: opts.explain });
    });
  }

  private post(msg: unknown, transfer: readonly TransferListItem[]): void {
    if (!transfer.length) return this.worker.postMessage(msg);
    try {
      this.worker.postMessage(msg, [...transfer]);
    } catch {
      this.worker.postMessage(msg);
    }
  }

  /**
   * Lets queued work finish (for at most `timeoutMs`), releases everything in the worker and waits for
   * the thread to end. Calls still pending when the time is up fail with RUNTIME_FAILED.
   */
  close(timeoutMs = Infinity): Promise<void> {
    this.closing ??= (async () => {
      if (!this.death) {
        await this.ready.catch(() => undefined);
        const done = this.request({ op: 'close' }, { what: 'closing' }).catch(() => undefined);
        if (timeoutMs === Infinity) await done;
        else {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([done, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
          clearTimeout(timer);
        }
      }
      // past the deadline, or a task left timers or handles behind that keep its thread alive: end it
      const timer = setTimeout(() => void this.worker.terminate(), this.pending.size ? 0 : 2000);
      await this.exited;
      clearTimeout(timer);
    })();
    return this.closing;
  }

  private die(reason: string, cause?: unknown): void {
    if (this.death) return;
    this.death = new GraftError('RUNTIME_CRASHED', `the runtime worker thread died (${reason})`, { cause });
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) {
      p.reject(
        this.closing
          ? new GraftError('RUNTIME_FAILED', `The runtime was closed before it finished ${p.what}.`)
          : this.crashError(p.what, this.death),
      );
    }
  }

  private crashError(what: string, death: GraftError): GraftError {
    return new GraftError(
      'RUNTIME_CRASHED',
      `${death.message[0].toUpperCase()}${death.message.slice(1)} while ${what}. Its sessions and tasks are gone: load them again (the runtime starts a fresh worker).`,
      { cause: death.cause },
    );
  }
}

export function wireToGraftError(e: WireError, message = e.message): GraftError {
  const cause = Object.assign(new Error(e.message), { stack: e.stack });
  return new GraftError(e.code, message, { subject: e.subject, cause });
}
