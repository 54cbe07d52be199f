/**
 * One fine-tuning row of bench/run.ts, measured step for step: a graft process and a PyTorch process, both
 * warmed up and alive side by side, take turns one training step at a time (graft first in even pairs,
 * PyTorch first in odd ones), so each pair of steps sees the machine in the same second. The separate
 * processes of `bench/run.ts` see it minutes apart, and on this shared machine that spread (±15 % per
 * round) is wider than the margins the fine-tuning targets ask about. Fresh process pairs, one after the
 * other (`--processes`), because one process's steps vary less than processes do (bench/RESULTS.md).
 *
 * Reports the ratio of median step times over all pairs (= graft img/s ÷ PyTorch img/s) and per process
 * pair with a sign test over the process pairs (how likely that many graft wins would be if neither side
 * were faster), the median of the per-pair ratios with a distribution-free 95 % interval (binomial order
 * statistics; it treats the pairs as independent, the per-process ratios show how far that holds), the same
 * for process CPU time, and the peak RSS. Raw pairs go to bench/out/results/paired-<time>.jsonl.
 *
 *   npx tsx bench/finetune/paired.ts [--row "resnet18 full bn-frozen"] [--threads 2] [--processes 4] [--pairs 30] [--warmup 2]
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Lockstepped } from '../lib/lockstep.js';
import { OUT_DIR } from '../lib/models.js';
import { TRAIN_ROWS, trainRowName, trainSides } from '../lib/suites.js';
import { medianInterval, signTestP } from '../lib/measure.js';
import { args, loadavg, median, round } from './common.js';

const a = args({ row: 'resnet18 full bn-frozen', threads: '2', processes: '4', pairs: '30', warmup: '2' });
const row = TRAIN_ROWS.find((r) => trainRowName(r) === a.row);
if (!row) {
  console.error(`no row "${a.row}"; rows: ${TRAIN_ROWS.map((r) => `"${trainRowName(r)}"`).join(', ')}`);
  process.exit(2);
}
const threads = Number(a.threads);
const pairs = Number(a.pairs);
const processes = Number(a.processes);
// in lockstep the driver asks for every step, so iters and maxSeconds only fill the row's arguments
const sides = trainSides(row, threads, { warmup: Number(a.warmup), iters: pairs, maxSeconds: 1e9 }, true);

const resultsDir = join(OUT_DIR, 'results');
mkdirSync(resultsDir, { recursive: true });
const jsonl = join(resultsDir, `paired-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.jsonl`);
const loads: number[] = [loadavg()[0]];
console.error(`# ${a.row}, ${threads} thread(s), ${processes} process pair(s) × ${pairs} pairs of steps; load ${loadavg().join(' ')}; raw pairs → ${jsonl}`);

interface Times {
  wall: number;
  cpu: number;
}
interface ProcessPair {
  g: Times[];
  t: Times[];
  graftRss: number;
  torchRss: number;
}

/** One graft and one PyTorch process, warmed up one after the other, then `pairs` steps each, alternating. */
async function processPair(k: number): Promise<ProcessPair> {
  const graft = new Lockstepped('graft', sides.graft);
  await graft.ready().catch((e: unknown) => (graft.kill(), Promise.reject(e)));
  const torch = new Lockstepped('torch', sides.torch);
  try {
    await torch.ready();
    const g: Times[] = [];
    const t: Times[] = [];
    for (let i = 0; i < pairs; i++) {
      const graftFirst = (k * pairs + i) % 2 === 0;
      const order = graftFirst ? ([graft, torch] as const) : ([torch, graft] as const);
      const times = new Map<Lockstepped, Times>();
      for (const p of order) times.set(p, await p.step());
      g.push(times.get(graft)!);
      t.push(times.get(torch)!);
      loads.push(loadavg()[0]);
      appendFileSync(jsonl, JSON.stringify({ row: a.row, threads, process_pair: k, pair: i, graft_first: graftFirst, graft: g[i], torch: t[i], load: loads.at(-1) }) + '\n');
    }
    const gEnd = await graft.end();
    const tEnd = await torch.end();
    return { g, t, graftRss: Number(gEnd.peak_rss_mb), torchRss: Number(tEnd.peak_rss_mb) };
  } catch (e) {
    graft.kill();
    torch.kill();
    throw e;
  }
}

const walls = (xs: Times[]) => xs.map((x) => x.wall);
const cpus = (xs: Times[]) => xs.map((x) => x.cpu);
const interval = (xs: number[]) => {
  const ci = medianInterval(xs);
  return ci ? `${ci[0].toFixed(3)}–${ci[1].toFixed(3)}×` : 'n/a (fewer than 6 pairs)';
};

const runs: ProcessPair[] = [];
for (let k = 0; k < processes; k++) {
  const r = await processPair(k);
  runs.push(r);
  console.error(`  process pair ${k + 1}/${processes}: median graft ${round(median(walls(r.g)))} ms, PyTorch ${round(median(walls(r.t)))} ms (${round(median(walls(r.t)) / median(walls(r.g)), 3)}×); load ${loadavg()[0].toFixed(2)}`);
}
const g = runs.flatMap((r) => r.g);
const t = runs.flatMap((r) => r.t);
const wallRatios = g.map((x, i) => t[i].wall / x.wall);
const cpuRatios = g.map((x, i) => t[i].cpu / x.cpu);
const perProcess = runs.map((r) => round(median(walls(r.t)) / median(walls(r.g)), 3));
// process pairs vary most, so the test that assumes least takes them, not the steps, as the independent units
const processWins = perProcess.filter((r) => r > 1).length;
const summary = {
  row: a.row,
  threads,
  processes,
  pairs: g.length,
  graft_median_ms: round(median(walls(g))),
  torch_median_ms: round(median(walls(t))),
  ratio_of_medians: round(median(walls(t)) / median(walls(g)), 3),
  ratio_per_process_pair: perProcess,
  process_pairs_graft_faster: processWins,
  process_sign_test_p: round(signTestP(processWins, processes), 4),
  pair_ratio_median: round(median(wallRatios), 3),
  pair_ratio_ci95: medianInterval(wallRatios)?.map((x) => round(x, 3)),
  pairs_graft_faster: wallRatios.filter((r) => r > 1).length,
  cpu_ratio_of_medians: round(median(cpus(t)) / median(cpus(g)), 3),
  cpu_pair_ratio_ci95: medianInterval(cpuRatios)?.map((x) => round(x, 3)),
  graft_peak_rss_mb: Math.max(...runs.map((r) => r.graftRss)),
  torch_peak_rss_mb: Math.max(...runs.map((r) => r.torchRss)),
  load_median: round(median(loads)),
  load_range: [round(Math.min(...loads)), round(Math.max(...loads))],
};
appendFileSync(jsonl, JSON.stringify({ summary }) + '\n');
console.log(
  [
    '| row | threads | steps paired | graft ms/step | PyTorch ms/step | ratio (img/s) | per process pair | process pairs graft faster (sign test p) | per-pair ratio, median [95 % CI] | pairs graft faster | CPU ratio [95 % CI of pairs] | peak RSS MB graft / PyTorch | load |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    `| ${a.row} | ${threads} | ${processes} × ${pairs} | ${summary.graft_median_ms} | ${summary.torch_median_ms} | ${summary.ratio_of_medians}× | ${perProcess.map((x) => `${x}×`).join(', ')} | ${processWins} / ${processes} (${summary.process_sign_test_p}) | ${summary.pair_ratio_median}× [${interval(wallRatios)}] | ${summary.pairs_graft_faster} / ${g.length} | ${summary.cpu_ratio_of_medians}× [${interval(cpuRatios)}] | ${summary.graft_peak_rss_mb} / ${summary.torch_peak_rss_mb} | ${summary.load_median} (${summary.load_range.join('–')}) |`,
  ].join('\n'),
);
