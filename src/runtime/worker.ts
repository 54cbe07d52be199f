/**
 * Runtime worker thread: owns ORT sessions and worker tasks, and answers runtime.ts's requests. ORT's
 * run() blocks whatever thread calls it, so it happens here, never on the main thread.
 */
import { parentPort, workerData, type TransferListItem } from 'node:worker_threads';
import type { InferenceSession } from 'onnxruntime-node';
import { GraftError } from '../errors.js';
import type { Tensor } from '../onnx/tensor.js';
import { nchwcBlockSize } from './nchwc-probe.js';
import { createSession, fromOrt, initOrt, toOrt, toWireError, valueMetas } from './ort.js';
import type { LoadReply, Request, RequestEnvelope, WorkerConfig, WorkerMessage } from './protocol.js';
import { unwrapTransfer, type TaskContext, type TaskFactory, type TaskMethods } from './task.js';
import { buffersOf } from './wire.js';

const port = parentPort!;
const config = workerData as WorkerConfig;
initOrt(config.logLevel);

/**
 * Work on one session or task runs one call at a time: a release must not free a session under a run
 * that is still waiting for its turn, and a task's step must not interleave with the next one.
 */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  then<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.tail.then(fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
  idle(): Promise<unknown> {
    return this.tail;
  }
}

interface SessionEntry {
  session: InferenceSession;
  serial: Serial;
}

interface TaskEntry {
  methods: TaskMethods;
  serial: Serial;
  owned: InferenceSession[];
}

const sessions = new Map<number, SessionEntry>();
const tasks = new Map<number, TaskEntry>();
let nextId = 1;

function sessionEntry(id: number): SessionEntry {
  const s = sessions.get(id);
  if (!s) throw new GraftError('RUNTIME_FAILED', `Session ${id} was released; load the model again.`);
  return s;
}

function taskEntry(id: number): TaskEntry {
  const t = tasks.get(id);
  if (!t) throw new GraftError('RUNTIME_FAILED', `Worker task ${id} was disposed; load it again.`);
  return t;
}

function contextFor(owned: InferenceSession[]): TaskContext {
  return {
    threads: config.threads,
    session: (id) => sessionEntry(id).session,
    async createSession(model, opts = {}) {
      const s = await createSession(model, { optimization: opts.optimization ?? 'all', freeDimensionOverrides: opts.freeDimensionOverrides, threads: opts.threads }, config);
      owned.push(s);
      return s;
    },
    toOrt,
    fromOrt,
  };
}

async function load(model: Uint8Array | string, cfg: Extract<Request, { op: 'load' }>['config']): Promise<LoadReply> {
  const session = await createSession(model, cfg, config);
  const id = nextId++;
  sessions.set(id, { session, serial: new Serial() });
  return { session: id, inputs: valueMetas(session.inputMetadata), outputs: valueMetas(session.outputMetadata) };
}

async function run(req: Extract<Request, { op: 'run' }>): Promise<{ value: Record<string, Tensor>; transfer: TransferListItem[] }> {
  const entry = sessionEntry(req.session);
  return entry.serial.then(async () => {
    const feeds = Object.fromEntries(Object.entries(req.feeds).map(([k, t]) => [k, toOrt(t)]));
    const out = req.fetches ? await entry.session.run(feeds, [...req.fetches]) : await entry.session.run(feeds);
    const value: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(out)) value[k] = fromOrt(t as Parameters<typeof fromOrt>[0], `output "${k}"`);
    // the worker has no further use for the outputs: move them instead of copying
    return { value, transfer: buffersOf(Object.values(value)) };
  });
}

async function release(id: number): Promise<void> {
  const entry = sessions.get(id);
  if (!entry) return;
  sessions.delete(id);
  await entry.serial.then(() => entry.session.release());
}

async function loadTask(url: string, init: unknown): Promise<number> {
  const mod = (await import(url)) as { default?: unknown };
  if (typeof mod.default !== 'function') {
    throw new GraftError('INVALID_ARGUMENT', `Worker task module ${url} has no default export; export default defineTask((init, ctx) => ({ ...methods })).`, { subject: url });
  }
  const owned: InferenceSession[] = [];
  const methods = await (mod.default as TaskFactory<unknown>)(init, contextFor(owned));
  const id = nextId++;
  tasks.set(id, { methods, serial: new Serial(), owned });
  return id;
}

async function call(id: number, method: string, args: unknown): Promise<{ value: unknown; transfer: readonly TransferListItem[] }> {
  const entry = taskEntry(id);
  const fn = method in Object.prototype ? undefined : entry.methods[method];
  if (typeof fn !== 'function') {
    throw new GraftError('INVALID_ARGUMENT', `Worker task ${id} has no method "${method}" (it has ${Object.keys(entry.methods).join(', ') || 'none'}).`, { subject: method });
  }
  return entry.serial.then(async () => unwrapTransfer(await (fn as (a: unknown) => unknown).call(entry.methods, args)));
}

async function disposeTask(id: number): Promise<void> {
  const entry = tasks.get(id);
  if (!entry) return;
  tasks.delete(id);
  await entry.serial.then(async () => {
    try {
      if (typeof entry.methods.dispose === 'function') await (entry.methods.dispose as () => unknown)();
    } finally {
      for (const s of entry.owned) await s.release();
    }
  });
}

async function close(): Promise<void> {
  for (const id of [...tasks.keys()]) await disposeTask(id);
  for (const id of [...sessions.keys()]) await release(id);
}

function reply(msg: WorkerMessage, transfer: readonly TransferListItem[] = []): void {
  port.postMessage(msg, [...transfer]);
}

async function handle(req: RequestEnvelope): Promise<void> {
  const during = req.op === 'load' ? 'load' : req.op === 'run' ? 'run' : 'task';
  try {
    switch (req.op) {
      case 'load':
        return reply({ kind: 'reply', id: req.id, ok: true, value: await load(req.model, req.config) });
      case 'run': {
        const { value, transfer } = await run(req);
        return reply({ kind: 'reply', id: req.id, ok: true, value }, transfer);
      }
      case 'release':
        await release(req.session);
        return reply({ kind: 'reply', id: req.id, ok: true, value: undefined });
      case 'loadTask':
        return reply({ kind: 'reply', id: req.id, ok: true, value: await loadTask(req.url, req.init) });
      case 'call': {
        const { value, transfer } = await call(req.task, req.method, req.args);
        return reply({ kind: 'reply', id: req.id, ok: true, value }, transfer);
      }
      case 'disposeTask':
        await disposeTask(req.task);
        return reply({ kind: 'reply', id: req.id, ok: true, value: undefined });
      case 'nchwcBlock':
        return reply({ kind: 'reply', id: req.id, ok: true, value: await nchwcBlockSize() });
      case 'close':
        await close();
        reply({ kind: 'reply', id: req.id, ok: true, value: undefined });
        // with the port closed and nothing else pending, the thread's event loop ends and it exits
        port.close();
        return;
    }
  } catch (e) {
    reply({ kind: 'reply', id: req.id, ok: false, error: toWireError(e, during) });
  }
}

port.on('message', (req: RequestEnvelope) => void handle(req));
reply({ kind: 'ready' });
