/**
 * The driver's side of the lockstep protocol (measure.ts lockstepLoop, bench/torch/common.py lockstep_loop):
 * a measuring process that, once warmed up, prints `{"ready":true}` and then runs one timed iteration per
 * `step` line it is sent. bench/finetune/paired.ts runs a graft and a PyTorch process this way, turn by turn.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Side } from './jobs.js';
import { ROOT } from './models.js';

export type Line = Record<string, unknown>;

/** A measuring process driven over stdin/stdout (measure.ts lockstepLoop, bench/torch/common.py lockstep_loop). */
export class Lockstepped {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  constructor(
    readonly name: string,
    side: Side,
  ) {
    this.child = spawn(side.cmd, side.args, { cwd: ROOT, env: { ...process.env, ...side.env } });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    // a command that cannot start (no python3, say) ends stdout at once; keep why for next()'s error
    this.child.on('error', (e) => (this.stderr += `\n${e.message}`));
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async next(): Promise<Line> {
    for (;;) {
      const r = await this.lines.next();
      if (r.done) throw new Error(`${this.name} exited early: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      if (r.value.startsWith('{')) return JSON.parse(r.value) as Line;
    }
  }

  async ready(): Promise<void> {
    const l = await this.next();
    if (l.ready !== true) throw new Error(`${this.name}: expected {"ready":true}, got ${JSON.stringify(l)}`);
  }

  async step(): Promise<{ wall: number; cpu: number }> {
    this.child.stdin.write('step\n');
    const l = await this.next();
    return { wall: Number(l.wall_ms), cpu: Number(l.cpu_ms) };
  }

  /** Ends the loop; the process's usual result line (peak RSS, medians) comes back. */
  async end(): Promise<Line> {
    this.child.stdin.end('end\n');
    const l = await this.next();
    await new Promise((done) => (this.child.exitCode === null ? this.child.once('close', done) : done(null)));
    return l;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

