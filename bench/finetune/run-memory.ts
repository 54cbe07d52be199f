/**
 * Peak memory and time of whole `graft train --mode finetune` runs (what a user's machine sees: the
 * training step, validation, checkpoints and export together), on the labelled emoji set of
 * bench/lib/data.ts. Each run is its own process; its peak RSS is the kernel's high-water mark (VmHWM),
 * read until the process exits. `--cli` runs another build (a worktree's dist/cli/main.js) for A/B runs,
 * alternated with this one's.
 *
 *   npx tsx bench/finetune/run-memory.ts [--models mobilenet_v2,inception_v3] [--per-class 100]
 *        [--batch 16] [--epochs 2] [--rounds 1] [--cli other/dist/cli/main.js]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emojiSet } from '../lib/data.js';
import { args, median, round } from './common.js';

const OWN_CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

interface RunResult {
  peakRssMb: number;
  wallS: number;
  /** Seconds of each fine-tuning epoch, as the CLI reports them. */
  epochS: number[];
}

function highWaterMb(pid: number): number | undefined {
  try {
    const kb = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  } catch {
    return undefined; // exited between polls
  }
}

function runOnce(cli: string, data: string, model: string, batch: number, epochs: number): Promise<RunResult> {
  const out = mkdtempSync(join(tmpdir(), 'graft-run-memory-'));
  const argv = [cli, 'train', data, '--mode', 'finetune', '-m', model, '--batch', String(batch), '--epochs', String(epochs), '--warmup-epochs', '1', '-o', out, '--overwrite'];
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    let peak = 0;
    // VmHWM only grows, so the last reading before the exit is the run's peak (to within one poll)
    const poll = setInterval(() => (peak = Math.max(peak, highWaterMb(child.pid!) ?? 0)), 50);
    child.on('error', fail);
    child.on('exit', (code) => {
      clearInterval(poll);
      rmSync(out, { recursive: true, force: true });
      if (code !== 0) return fail(new Error(`graft train exited with ${code}:\n${text}`));
      const epochS = [...text.matchAll(/finetune .* ([\d.]+) s$/gm)].map((m) => Number(m[1]));
      done({ peakRssMb: Math.round(peak), wallS: round((performance.now() - t0) / 1000), epochS });
    });
  });
}

const a = args({ models: 'mobilenet_v2,inception_v3', 'per-class': '100', batch: '16', epochs: '2', rounds: '1', cli: '' });
if (!existsSync(OWN_CLI)) throw new Error(`${OWN_CLI} is missing: npm run build first`);
const data = await emojiSet(Number(a['per-class']));
const clis: [string, string][] = [['this build', OWN_CLI], ...(a.cli ? ([['other', resolve(a.cli)]] as [string, string][]) : [])];
console.log(`# graft train --mode finetune on ${data}, batch ${a.batch}, ${a.epochs} epochs after 1 warm-up`);
console.log('model\tbuild\tpeak RSS MB (each round)\twall s (each round)\tfine-tune epoch s (median)');
for (const model of a.models.split(',')) {
  const results = new Map<string, RunResult[]>(clis.map(([name]) => [name, []]));
  for (let r = 0; r < Number(a.rounds); r++) {
    for (const [name, cli] of r % 2 ? [...clis].reverse() : clis) results.get(name)!.push(await runOnce(cli, data, model, Number(a.batch), Number(a.epochs)));
  }
  for (const [name, rs] of results) {
    console.log(`${model}\t${name}\t${rs.map((x) => x.peakRssMb).join(' / ')}\t${rs.map((x) => x.wallS).join(' / ')}\t${round(median(rs.flatMap((x) => x.epochS)))}`);
  }
}
