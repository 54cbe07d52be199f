/**
 * graft vs PyTorch, same machine, same session, interleaved:
 *
 *   npx tsx bench/run.ts infer|features|head|finetune|all [--rounds 3] [--threads 1,2] [--quick] [--only TEXT]
 *
 * Every measurement runs in its own process (peak RSS is that configuration's); each round runs every
 * job's graft and PyTorch sides back to back, alternating which goes first. Raw JSON lines and the
 * markdown summary go to bench/out/results/<suite>-<time>.{jsonl,md}; the summary is also printed.
 * See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { PYTHON, runJobs } from './lib/jobs.js';
import { environment } from './lib/summary.js';
import { OUT_DIR, ROOT } from './lib/models.js';
import { SUITES } from './lib/suites.js';

function usage(code: number): never {
  console.error(`usage: npx tsx bench/run.ts ${Object.keys(SUITES).join('|')}|all [...] [--rounds N] [--threads 1,2] [--quick] [--only TEXT]`);
  process.exit(code);
}

const argv = process.argv.slice(2);
const names: string[] = [];
let rounds: number | undefined;
let threads = [1, 2];
let quick = false;
// --only: just the jobs whose key contains TEXT (e.g. `--only mobilenet_v2` reruns those rows)
let only: string | undefined;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--rounds') rounds = Number(argv[++i]);
  else if (a === '--threads') threads = argv[++i].split(',').map(Number);
  else if (a === '--quick') quick = true;
  else if (a === '--only') only = argv[++i];
  else if (a === '--help' || a === '-h') usage(0);
  else if (a === 'all') names.push(...Object.keys(SUITES));
  else if (SUITES[a]) names.push(a);
  else usage(2);
}
if (!names.length) usage(2);
rounds ??= quick ? 1 : 3;
if (!(Number.isInteger(rounds) && rounds > 0) || !threads.every((t) => Number.isInteger(t) && t > 0)) usage(2);

// the models both sides run: bench/torch/export_models.py's random-weight torchvision exports
if (!['resnet18.onnx', 'mobilenet_v2.onnx', 'models.json'].every((f) => existsSync(join(OUT_DIR, f)))) {
  console.error('exporting the benchmark models (bench/torch/export_models.py)…');
  const r = spawnSync(PYTHON, [join(ROOT, 'bench', 'torch', 'export_models.py')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
}

const resultsDir = join(OUT_DIR, 'results');
mkdirSync(resultsDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
for (const name of names) {
  const suite = SUITES[name];
  const jsonl = join(resultsDir, `${name}-${stamp}.jsonl`);
  console.error(`# ${name}: ${rounds} round(s), threads ${threads.join(',')}${quick ? ', quick' : ''}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}; raw results → ${jsonl}`);
  const jobs = (await suite.jobs({ threads, quick })).filter((j) => !only || j.key.includes(only));
  const records = await runJobs(jobs, { rounds, jsonl });
  const md = [`## ${suite.title}`, '', environment(records), `- ${rounds} round(s), medians over rounds${quick ? ' (quick mode: fewer iterations)' : ''}`, '', suite.report(jobs, records), ''].join('\n');
  writeFileSync(join(resultsDir, `${name}-${stamp}.md`), md);
  process.stdout.write(md + '\n');
}
