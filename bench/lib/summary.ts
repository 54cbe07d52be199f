/**
 * Results → markdown: per job, the median over rounds of each side's numbers, and graft / PyTorch ratios.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { median, round } from './measure.js';
import type { BenchRecord, Framework, Job } from './jobs.js';
import { ROOT } from './models.js';

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Median of a numeric field over one side's records of one job. */
export function med(records: readonly BenchRecord[], key: string, framework: Framework, field: string): number | undefined {
  const xs = records.filter((r) => r.key === key && r.framework === framework && r.error === undefined).map((r) => num(r[field])).filter((x): x is number => x !== undefined);
  return xs.length ? median(xs) : undefined;
}

export function count(records: readonly BenchRecord[], key: string, framework: Framework): number {
  return records.filter((r) => r.key === key && r.framework === framework && r.error === undefined).length;
}

const fmt = (x: number | undefined, digits = 2): string => (x === undefined ? '–' : String(round(x, digits)));
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || b === 0 ? '–' : `${round(a / b, 2)}×`);

export function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/**
 * The standard throughput table: label columns, then img/s (wall), images per CPU-second, peak RSS for
 * both sides with graft/PyTorch ratios, then the machine's load (median loadavg and other busy cores).
 */
export function throughputTable(jobs: readonly Job[], records: readonly BenchRecord[], opts: { rss?: boolean } = {}): string {
  const labels = Object.keys(jobs[0]?.label ?? {});
  const header = [
    ...labels,
    'graft img/s',
    'PyTorch img/s',
    'ratio',
    'graft img/CPU-s',
    'PyTorch img/CPU-s',
    'ratio (CPU)',
    ...(opts.rss === false ? [] : ['graft RSS MB', 'PyTorch RSS MB', 'RSS ratio']),
    'load 1m',
    'other busy cores g / t',
    'n g / t',
  ];
  const rows = jobs.map((j) => {
    const g = (f: string) => med(records, j.key, 'graft', f);
    const t = (f: string) => med(records, j.key, 'torch', f);
    const load = median(records.filter((r) => r.key === j.key).map((r) => num(r.loadavg_1m)).filter((x): x is number => x !== undefined));
    return [
      ...labels.map((l) => String(j.label[l])),
      fmt(g('img_s')),
      fmt(t('img_s')),
      ratio(g('img_s'), t('img_s')),
      fmt(g('img_per_cpu_s')),
      fmt(t('img_per_cpu_s')),
      ratio(g('img_per_cpu_s'), t('img_per_cpu_s')),
      ...(opts.rss === false ? [] : [fmt(g('peak_rss_mb'), 0), fmt(t('peak_rss_mb'), 0), ratio(g('peak_rss_mb'), t('peak_rss_mb'))]),
      fmt(Number.isNaN(load) ? undefined : load, 1),
      `${fmt(g('other_busy_cores'))} / ${fmt(t('other_busy_cores'))}`,
      `${count(records, j.key, 'graft')} / ${count(records, j.key, 'torch')}`,
    ];
  });
  return table(header, rows);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

/** Machine, versions and source state: what the numbers were measured on. */
export function environment(records: readonly BenchRecord[]): string {
  const ort = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string }).version;
  const torch = records.find((r) => typeof r.torch === 'string')?.torch ?? '?';
  const loads = records.map((r) => num(r.loadavg_1m)).filter((x): x is number => x !== undefined);
  const head = sh('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length;
  return [
    `- CPU: ${cpus()[0]?.model ?? '?'} × ${cpus().length} logical cores, ${round(totalmem() / 2 ** 30, 1)} GiB RAM`,
    `- Node ${process.version}, onnxruntime-node ${ort}; PyTorch ${String(torch)} (Debian python3-torch)`,
    `- graft source: git ${head || '?'}${dirty ? ` + ${dirty} uncommitted file(s) under src/` : ''}`,
    `- load average (1 min) over the measurements: median ${loads.length ? round(median(loads), 1) : '?'}, range ${loads.length ? `${round(Math.min(...loads), 1)}–${round(Math.max(...loads), 1)}` : '?'}; now ${loadavg().map((x) => x.toFixed(1)).join(' ')}`,
  ].join('\n');
}
