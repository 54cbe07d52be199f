/**
 * Running measurements: every measurement in its own process (graft: node + tsx running
 * bench/graft/child.ts; PyTorch: Debian's python3 on a bench/torch or bench/py script with OMP/MKL threads
 * set), collecting the JSON lines they print. Jobs pair a graft side and a PyTorch side; rounds run every
 * job, the two sides back to back, the order alternating (A B, B A, …) so both see the same machine.
 */
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { BENCH_DIR, ROOT } from './models.js';

export const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const CHILD = join(BENCH_DIR, 'graft', 'child.ts');

export interface Side {
  cmd: string;
  args: string[];
  env?: Record<string, string>;
}

export type Framework = 'graft' | 'torch';

export interface Job {
  /** Row identity: records of both sides carry it. */
  key: string;
  /** Columns that describe the row in tables. */
  label: Record<string, string | number>;
  graft?: Side;
  torch?: Side;
  /** Runs before the job's sides in each round (e.g. empty a cache). */
  before?: () => Promise<void> | void;
  /** Only in the first round (checks, one-off runs). */
  once?: boolean;
}

export type BenchRecord = Record<string, unknown> & { key: string; round: number; framework: Framework };

export function graftSide(args: Record<string, unknown>): Side {
  return { cmd: process.execPath, args: ['--import', 'tsx', CHILD, JSON.stringify(args)] };
}

/** A PyTorch script (path relative to bench/) with `threads` OpenMP/MKL threads. */
export function torchSide(script: string, args: (string | number)[], threads: number): Side {
  const t = String(threads);
  return { cmd: PYTHON, args: [join(BENCH_DIR, script), ...args.map(String)], env: { OMP_NUM_THREADS: t, MKL_NUM_THREADS: t } };
}

interface ChildResult {
  lines: Record<string, unknown>[];
  code: number | null;
  stderr: string;
}

function runChild(side: Side, timeoutMs: number): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(side.cmd, side.args, { cwd: ROOT, env: { ...process.env, ...side.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ lines, code, stderr: err });
    });
  });
}

export interface RunOptions {
  rounds: number;
  /** Raw results, appended line by line as they arrive. */
  jsonl: string;
  timeoutMs?: number;
  log?: (s: string) => void;
}

export async function runJobs(jobs: readonly Job[], o: RunOptions): Promise<BenchRecord[]> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const records: BenchRecord[] = [];
  let n = 0;
  for (let round = 0; round < o.rounds; round++) {
    for (const job of jobs) {
      if (job.once && round > 0) continue;
      await job.before?.();
      const sides: [Framework, Side | undefined][] = [
        ['graft', job.graft],
        ['torch', job.torch],
      ];
      // A B in even rounds, B A in odd ones (and alternating between jobs) so neither side always goes first
      if ((round + n++) % 2 === 1) sides.reverse();
      for (const [framework, side] of sides) {
        if (!side) continue;
        const t0 = performance.now();
        const r = await runChild(side, o.timeoutMs ?? 20 * 60_000);
        const secs = ((performance.now() - t0) / 1000).toFixed(0);
        if (r.code !== 0 || r.lines.length === 0) {
          const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
          log(`  ! ${job.key} [${framework}] round ${round + 1}: exit ${r.code}: ${tail}`);
          const rec: BenchRecord = { key: job.key, round, framework, error: tail || `exit ${r.code}` };
          appendFileSync(o.jsonl, JSON.stringify(rec) + '\n');
          continue;
        }
        for (const line of r.lines) {
          const rec: BenchRecord = { ...line, key: job.key, round, framework };
          records.push(rec);
          appendFileSync(o.jsonl, JSON.stringify(rec) + '\n');
        }
        const l = r.lines[0];
        const show = ['img_s', 'img_per_cpu_s', 'seconds', 'val_accuracy', 'peak_rss_mb', 'max_abs_diff'].filter((k) => l[k] !== undefined);
        log(`  ${job.key} [${framework}] round ${round + 1}/${o.rounds} (${secs} s, load ${loadavg()[0].toFixed(1)}): ${show.map((k) => `${k}=${l[k]}`).join(' ')}`);
      }
    }
  }
  return records;
}
