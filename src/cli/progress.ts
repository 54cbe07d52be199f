/**
 * Progress on stderr, so stdout (tables, --json) stays clean: a cli-progress bar with ETA when stderr
 * is a terminal, a plain line every few seconds when it is not (logs, CI), nothing with --quiet or for
 * a handful of items.
 */
import cliProgress from 'cli-progress';
import type { ResolveProgress } from '../models/sources.js';

/** Where progress goes: process.stderr, or a stand-in in tests. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  total: number;
  /** What is counted ("images"). */
  unit: string;
  quiet?: boolean;
  stream?: ProgressStream;
  /** No progress at all for this many items or fewer (default 5). */
  minItems?: number;
  /** Seconds between plain lines when the stream is not a terminal (default 5). */
  intervalSeconds?: number;
}

export interface ItemProgress {
  update(done: number, failed: number): void;
  /**
   * Prints a line of results: through the bar (above it) when one is drawn and stdout is the same
   * terminal, so bar and table do not overwrite each other; else straight to `out`.
   */
  print(line: string, out: ProgressStream): void;
  stop(): void;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function itemProgress(opts: ProgressOptions): ItemProgress {
  const stream = opts.stream ?? process.stderr;
  const silent = opts.quiet || opts.total <= (opts.minItems ?? 5);
  if (silent) {
    return { update: () => undefined, print: (line, out) => void out.write(`${line}\n`), stop: () => undefined };
  }
  if (stream.isTTY) {
    const multi = new cliProgress.MultiBar(
      {
        stream: stream as NodeJS.WritableStream,
        format: ` {bar} {percentage}% | {value}/{total} ${opts.unit} | {failed} failed | {rate}/s | ETA {eta_formatted}`,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 100,
        fps: 10,
        gracefulExit: false,
      },
      cliProgress.Presets.shades_classic,
    );
    const bar = multi.create(opts.total, 0, { failed: 0, rate: '0.0' });
    const started = Date.now();
    let stopped = false;
    return {
      update(done, failed) {
        const secs = (Date.now() - started) / 1000;
        bar.update(done, { failed, rate: secs > 0 ? (done / secs).toFixed(1) : '0.0' });
      },
      print(line, out) {
        if (!stopped && out.isTTY) multi.log(`${line}\n`);
        else out.write(`${line}\n`);
      },
      stop() {
        if (stopped) return;
        stopped = true;
        // stop() alone drops lines still waiting in the log buffer: redraw once to flush them
        multi.update();
        multi.stop();
      },
    };
  }
  const every = (opts.intervalSeconds ?? 5) * 1000;
  const started = Date.now();
  let last = started;
  let printed = false;
  let latest = { done: 0, failed: 0 };
  const line = () => {
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? latest.done / secs : 0;
    const eta = rate > 0 ? formatDuration((opts.total - latest.done) / rate) : '?';
    stream.write(`graft: ${latest.done}/${opts.total} ${opts.unit}, ${latest.failed} failed, ${rate.toFixed(1)}/s, ETA ${eta}\n`);
    printed = true;
  };
  return {
    update(done, failed) {
      latest = { done, failed };
      const now = Date.now();
      if (now - last >= every && done < opts.total) {
        last = now;
        line();
      }
    },
    print: (l, out) => void out.write(`${l}\n`),
    stop() {
      // a final line only closes a series that was started
      if (printed) line();
      printed = false;
    },
  };
}

/**
 * Model preparation: a line when a builtin is converted on first use, and download progress (a byte
 * bar on a terminal, a line per file otherwise). Returns the onProgress callback and a stop().
 */
export function modelProgress(opts: { quiet?: boolean; stream?: ProgressStream; spec: string }): { onProgress: (e: ResolveProgress) => void; stop(): void } {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet) return { onProgress: () => undefined, stop: () => undefined };
  let bar: cliProgress.SingleBar | undefined;
  let barFile: string | undefined;
  const announced = new Set<string>();
  const stop = () => {
    bar?.stop();
    bar = undefined;
    barFile = undefined;
  };
  const onProgress = (e: ResolveProgress) => {
    if (e.phase === 'load' && !announced.has('convert')) {
      announced.add('convert');
      stream.write(`graft: converting builtin ${opts.spec} to ONNX (first use only; the result is cached)…\n`);
      return;
    }
    if (e.phase !== 'download') return;
    if (!stream.isTTY || e.total === undefined) {
      if (!announced.has(e.file)) {
        announced.add(e.file);
        stream.write(`graft: downloading ${e.file}${e.total !== undefined ? ` (${(e.total / 1e6).toFixed(1)} MB)` : ''}…\n`);
      }
      return;
    }
    if (barFile !== e.file) {
      stop();
      barFile = e.file;
      bar = new cliProgress.SingleBar(
        {
          stream: stream as NodeJS.WritableStream,
          format: ` {bar} {percentage}% | {mb}/{totalMb} MB | ETA {eta_formatted} | ${e.file}`,
          hideCursor: true,
          clearOnComplete: true,
          gracefulExit: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(e.total, e.received, { mb: (e.received / 1e6).toFixed(1), totalMb: (e.total / 1e6).toFixed(1) });
    }
    bar?.update(e.received, { mb: (e.received / 1e6).toFixed(1), totalMb: (e.total / 1e6).toFixed(1) });
    if (e.received >= e.total) stop();
  };
  return { onProgress, stop };
}
