/**
 * graft's side of the measurement conventions in bench/torch/common.py, so a graft line and a PyTorch line
 * mean the same thing: per-iteration wall time and **process** CPU time (every thread: main, runtime
 * workers, ORT's intra-op pool, libuv), how busy the rest of the machine was meanwhile (/proc/stat), the
 * 1-minute load average, and peak RSS of this process (one configuration per process).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { createInterface } from 'node:readline';

export interface LoopOptions {
  warmup: number;
  /** Timed iterations; fewer when maxSeconds runs out, never fewer than 3. */
  iters: number;
  maxSeconds: number;
}

export interface LoopStats {
  iters: number;
  median_ms: number;
  min_ms: number;
  /** batch / median wall time. */
  img_s: number;
  /** Median per-iteration process CPU time / batch. */
  cpu_s_per_img: number;
  img_per_cpu_s: number;
  /** Our CPU time / wall time over the timed loop (how many cores we kept busy). */
  own_cores: number;
  /** Cores the rest of the machine kept busy meanwhile. */
  other_busy_cores: number;
}

export const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** P(X ≤ k) for X ~ Binomial(n, 1/2). */
function binomialHalfCdf(k: number, n: number): number {
  let term = 0.5 ** n; // C(n, 0) / 2^n
  let sum = term;
  for (let i = 1; i <= k; i++) {
    term = (term * (n - i + 1)) / i;
    sum += term;
  }
  return sum;
}

/** One-sided sign test: the chance of `wins` or more of `n` coin flips coming up heads. */
export function signTestP(wins: number, n: number): number {
  return wins <= 0 ? 1 : 1 - binomialHalfCdf(wins - 1, n);
}

/**
 * A 95 % confidence interval for the median from order statistics: [x₍ₗ₎, x₍ₙ₊₁₋ₗ₎] with the largest l such
 * that P(Binomial(n, ½) ≤ l − 1) ≤ 2.5 %. Needs n ≥ 6.
 */
export function medianInterval(xs: readonly number[]): [number, number] | undefined {
  const s = [...xs].sort((a, b) => a - b);
  let l = 0;
  while (binomialHalfCdf(l, s.length) <= 0.025) l++;
  return l === 0 ? undefined : [s[l - 1], s[s.length - l]];
}

/** (total, idle) jiffies of the whole machine. */
export function procStat(): [number, number] {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return [v.reduce((a, b) => a + b, 0), v[3] + v[4]];
}

/** Process CPU time (user + system, all threads) in seconds. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Wall and CPU time of a stretch of work, plus the machine's other load meanwhile. */
export class Span {
  private readonly w0 = performance.now();
  private readonly c0 = cpuSeconds();
  private readonly s0 = procStat();

  end(): { wall_s: number; cpu_s: number; own_cores: number; other_busy_cores: number } {
    const wall = (performance.now() - this.w0) / 1000;
    const cpu = cpuSeconds() - this.c0;
    const s1 = procStat();
    const dt = s1[0] - this.s0[0];
    const di = s1[1] - this.s0[1];
    const busy = dt > 0 ? availableParallelism() * (1 - di / dt) : NaN;
    const own = wall > 0 ? cpu / wall : NaN;
    return { wall_s: round(wall, 3), cpu_s: round(cpu, 3), own_cores: round(own), other_busy_cores: round(Math.max(0, busy - own)) };
  }
}

/** Per-iteration wall and process CPU seconds. */
class IterationTimes {
  readonly wall: number[] = [];
  readonly cpu: number[] = [];

  async time(fn: () => Promise<unknown>): Promise<{ wall_ms: number; cpu_ms: number }> {
    const w = performance.now();
    const c = cpuSeconds();
    await fn();
    this.cpu.push(cpuSeconds() - c);
    this.wall.push((performance.now() - w) / 1000);
    return { wall_ms: round(this.wall.at(-1)! * 1e3), cpu_ms: round(this.cpu.at(-1)! * 1e3) };
  }
}

/** common.timed_loop: warm up, then time iterations one by one (wall and process CPU). */
export async function timedLoop(fn: () => Promise<unknown>, batch: number, o: LoopOptions): Promise<LoopStats> {
  for (let i = 0; i < o.warmup; i++) await fn();
  const t = new IterationTimes();
  const span = new Span();
  const end = performance.now() + o.maxSeconds * 1000;
  while (t.wall.length < o.iters && (t.wall.length < 3 || performance.now() < end)) await t.time(fn);
  return loopStats(t, span.end(), batch);
}

/**
 * common.lockstep_loop: warm up, print `{"ready":true}`, then time one iteration per `step` line on stdin,
 * answering each with `{"step":i,"wall_ms":…,"cpu_ms":…}`, until `end` or the end of stdin.
 * bench/finetune/paired.ts drives a graft and a PyTorch process this way, step for step, so both see the
 * machine as it is in the same second rather than in different minutes.
 */
export async function lockstepLoop(fn: () => Promise<unknown>, batch: number, o: Pick<LoopOptions, 'warmup'>): Promise<LoopStats> {
  for (let i = 0; i < o.warmup; i++) await fn();
  const t = new IterationTimes();
  const span = new Span();
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() !== 'step') break;
    const times = await t.time(fn);
    process.stdout.write(JSON.stringify({ step: t.wall.length, ...times }) + '\n');
  }
  if (t.wall.length === 0) throw new Error('lockstep: no step was asked for');
  return loopStats(t, span.end(), batch);
}

function loopStats(t: IterationTimes, s: ReturnType<Span['end']>, batch: number): LoopStats {
  const { wall, cpu } = t;
  const med = median(wall);
  const cmed = median(cpu);
  return {
    iters: wall.length,
    median_ms: round(med * 1e3),
    min_ms: round(Math.min(...wall) * 1e3),
    img_s: round(batch / med),
    cpu_s_per_img: round(cmed / batch, 5),
    img_per_cpu_s: round(batch / cmed),
    own_cores: s.own_cores,
    other_busy_cores: s.other_busy_cores,
  };
}

export function peakRssMb(): number {
  // maxRSS is in kilobytes, as getrusage reports it
  return round(process.resourceUsage().maxRSS / 1024, 1);
}

/** Prints one measurement as a JSON line (the orchestrator collects them), with RSS and load. */
export function emit(record: Record<string, unknown>): void {
  const out = { ...record, framework: 'graft', node: process.version, peak_rss_mb: peakRssMb(), loadavg_1m: round(loadavg()[0]) };
  process.stdout.write(JSON.stringify(out) + '\n');
}
