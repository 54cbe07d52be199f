/**
 * metrics.json → one self-contained HTML page: summary, curves (uPlot, inlined), confusion matrix,
 * per-class table, the worst-misclassified images (thumbnails as data: URIs) and the skipped files.
 *
 * The page makes no network request: a Content-Security-Policy allows only its own two scripts (by
 * hash), inline styles and data: images, so even a string that escaped escaping could not run or load
 * anything.
 */
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import type { ClassMetricsJson, EpochRecord, MetricsJson, WorstItem } from '../train/metrics-json.js';
import { atomicWriteFile } from '../util/fs.js';
import { plotAssets } from './assets.js';
import { CLIENT_JS } from './client.js';
import { duration, esc, fixed, inlineScript, pct, plural, scriptJson } from './html.js';
import { REPORT_CSS } from './style.js';
import { DEFAULT_THUMBNAIL_SIZE, thumbnails } from './thumbnails.js';
import type { Thumbnail } from './thumbnails.js';

export const REPORT_FILE = 'report.html';

export interface ReportOptions {
  /** The most confidently wrong validation images, worst first. Default: `metrics.worst`. */
  worst?: WorstItem[];
  /** Page title. Default: "graft · <mode> · <model>". */
  title?: string;
  /** Thumbnail box in pixels. Default 96. */
  thumbnailSize?: number;
  /** At most this many misclassified images are shown. Default 48. */
  maxWorst?: number;
  /** At most this many skipped files are listed (all are in metrics.json). Default 500. */
  maxSkipped?: number;
}

/** Above this many classes the confusion matrix numbers its columns instead of naming them. */
const NAMED_COLUMNS_MAX = 12;
const SHADES = 8;

const MODE_LABEL: Record<MetricsJson['mode'], string> = {
  head: 'head training (frozen feature extractor)',
  finetune: 'fine-tuning',
  eval: 'evaluation',
};

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

export async function renderReport(metrics: MetricsJson, opts: ReportOptions = {}): Promise<string> {
  const worst = (opts.worst ?? metrics.worst ?? []).slice(0, opts.maxWorst ?? 48);
  const size = opts.thumbnailSize ?? DEFAULT_THUMBNAIL_SIZE;
  const thumbs = await thumbnails(worst.map((w) => w.path), size);
  const title = opts.title ?? `graft · ${metrics.mode} · ${metrics.model}`;
  const hasVal = metrics.accuracy !== null;

  const { js: plotJs, css: plotCss } = plotAssets();
  const client = inlineScript(CLIENT_JS, 'report script');
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(plotJs)} ${sha256(client)}`,
    "style-src 'unsafe-inline'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');

  const sections = [
    summary(metrics),
    curves(metrics),
    hasVal ? confusion(metrics) : '',
    hasVal ? perClass(metrics) : '',
    hasVal ? worstGrid(worst, thumbs, size) : '',
    skipped(metrics, opts.maxSkipped ?? 500),
    config(metrics),
  ];

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp /* ours: single quotes and base64 only */}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="graft">
<title>${esc(title)}</title>
<style>${plotCss}
${REPORT_CSS}</style>
</head>
<body>
<header>
<h1>${esc(title)}</h1>
<p class="sub">${esc(MODE_LABEL[metrics.mode])} · model <b>${esc(metrics.model)}</b>${metrics.featureLayer ? ` · features from <code>${esc(metrics.featureLayer)}</code>` : ''} · ${esc(metrics.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</p>
<nav><a href="#summary">Summary</a><a href="#curves">Curves</a>${hasVal ? '<a href="#confusion">Confusion matrix</a><a href="#per-class">Per class</a><a href="#worst">Misclassified</a>' : ''}<a href="#skipped">Skipped files</a><a href="#config">Settings</a></nav>
</header>
<div id="graft-error" class="error" role="alert" hidden></div>
<main>
${sections.filter(Boolean).join('\n')}
</main>
<footer>Made by graft. This file is self-contained: it loads nothing from the network.</footer>
<script type="application/json" id="graft-data">${scriptJson(chartData(metrics))}</script>
<script>${plotJs}</script>
<script>${client}</script>
</body>
</html>
`;
}

/** Renders the report and writes OUT/report.html atomically; returns its path. */
export async function writeReport(outDir: string, metrics: MetricsJson, opts: ReportOptions = {}): Promise<string> {
  const html = await renderReport(metrics, opts);
  const path = join(outDir, REPORT_FILE);
  atomicWriteFile(path, html);
  return path;
}

function chartData(m: MetricsJson) {
  const h: EpochRecord[] = m.history;
  return {
    epochs: h.map((e) => e.epoch),
    trainLoss: h.map((e) => e.trainLoss),
    trainAcc: h.map((e) => e.trainAccuracy),
    valLoss: h.map((e) => e.valLoss),
    valAcc: h.map((e) => e.valAccuracy),
    lr: h.map((e) => e.lr),
    hasVal: h.some((e) => e.valLoss !== null || e.valAccuracy !== null),
    // a marker only means something between other epochs
    bestEpoch: h.length > 1 && h.some((e) => e.epoch === m.bestEpoch) ? m.bestEpoch : null,
    lrFind: m.lrFind ?? null,
  };
}

function card(label: string, value: string, note = ''): string {
  return `<div class="card"><div class="label">${label}</div><div class="value">${value}</div>${note ? `<div class="note">${note}</div>` : ''}</div>`;
}

function summary(m: MetricsJson): string {
  const cards: string[] = [];
  if (m.accuracy !== null) {
    cards.push(card('Validation accuracy', pct(m.accuracy, 2), m.n.val ? `${Math.round(m.accuracy * m.n.val)} of ${m.n.val} right` : ''));
    cards.push(card('Validation loss', fixed(m.loss)));
    if (m.topK) cards.push(card(`Top-${m.topK.k} accuracy`, pct(m.topK.accuracy, 2)));
    if (m.macro) cards.push(card('Macro F1', fixed(m.macro.f1, 3)));
  } else {
    cards.push(card('Validation', 'none', 'no validation set'));
  }
  cards.push(card('Images', `${m.n.train.toLocaleString('en-US')} / ${m.n.val.toLocaleString('en-US')}`, 'train / validation'));
  cards.push(card('Classes', String(m.classes.length)));
  const best = m.history.some((e) => e.epoch === m.bestEpoch) && m.history.length > 1 ? `exported: epoch ${m.bestEpoch}` : '';
  if (m.history.length) cards.push(card('Epochs', String(m.history.length), best));
  cards.push(card('Time', esc(duration(m.seconds))));
  cards.push(card('Skipped files', `<a href="#skipped">${m.skipped.length}</a>`, m.skipped.length ? 'unreadable, not used' : ''));
  const noVal =
    m.accuracy === null
      ? `<p class="notice">This run had no validation set${m.mode === 'eval' ? '' : ' (trained on every image, <code>--val 0</code>)'}, so there is no validation accuracy, confusion matrix, per-class table or list of misclassified images. Hold out a fraction with <code>--val 0.2</code> or pass <code>--val-dir</code> to measure how well the model generalizes.</p>`
      : '';
  return `<section id="summary"><h2>Summary</h2><div class="cards">${cards.join('')}</div>${noVal}</section>`;
}

function curves(m: MetricsJson): string {
  const h = m.history;
  if (h.length === 0) {
    return `<section id="curves"><h2>Training curves</h2><p class="notice">No training history: ${m.mode === 'eval' ? 'this is an evaluation run' : 'no epoch was recorded'}.</p></section>`;
  }
  const hasVal = h.some((e) => e.valLoss !== null || e.valAccuracy !== null);
  const notes: string[] = [];
  if (!hasVal) notes.push('<p class="notice">No validation set: the curves show training numbers only.</p>');
  if (h.length === 1) notes.push('<p class="note">A single epoch: each curve is one point.</p>');
  if (h.length > 1 && h.some((e) => e.epoch === m.bestEpoch)) notes.push(`<p class="note">The dashed green line marks epoch ${m.bestEpoch}, whose weights were exported.</p>`);
  const hasPhase = h.some((e) => e.phase !== undefined);
  const rows = h
    .map(
      (e) =>
        `<tr${e.epoch === m.bestEpoch ? ' class="best"' : ''}><td>${e.epoch}</td>${hasPhase ? `<td>${esc(e.phase ?? '')}</td>` : ''}<td>${fixed(e.trainLoss)}</td><td>${pct(e.trainAccuracy)}</td>` +
        `${hasVal ? `<td>${fixed(e.valLoss)}</td><td>${pct(e.valAccuracy)}</td>` : ''}<td>${esc(e.lr.toExponential(2))}</td><td>${esc(duration(e.seconds))}</td></tr>`,
    )
    .join('');
  const head = `<tr><th>epoch</th>${hasPhase ? '<th>phase</th>' : ''}<th>train loss</th><th>train acc.</th>${hasVal ? '<th>val loss</th><th>val acc.</th>' : ''}<th>lr</th><th>time</th></tr>`;
  return `<section id="curves"><h2>Training curves</h2>${notes.join('')}
<div class="charts"><div class="chart" id="chart-loss"></div><div class="chart" id="chart-acc"></div><div class="chart" id="chart-lr"></div>${m.lrFind ? '<div class="chart" id="chart-lrfind"></div>' : ''}</div>${
    m.lrFind ? `<p class="note">Learning-rate range test: smoothed loss against the rate; the run used the suggested ${esc(m.lrFind.suggestion.toExponential(2))} (dashed line), where the loss falls fastest.</p>` : ''
  }
<noscript><p class="notice">The charts need JavaScript; the numbers are in the table below.</p></noscript>
<details><summary>Numbers per epoch</summary><div class="scroll short"><table class="num"><thead>${head}</thead><tbody>${rows}</tbody></table></div></details></section>`;
}

function confusion(m: MetricsJson): string {
  const C = m.confusion;
  if (!C) return '';
  const K = m.classes.length;
  const named = K <= NAMED_COLUMNS_MAX;
  const long = m.classes.some((c) => c.length > 6);
  const colHead = m.classes
    .map((c, j) => (named ? `<th${long ? ' class="vert"' : ''} title="${esc(c)}"><span>${esc(c)}</span></th>` : `<th title="${esc(c)}">${j}</th>`))
    .join('');
  const rows: string[] = [];
  for (let t = 0; t < K; t++) {
    const total = C[t].reduce((a, b) => a + b, 0);
    const cells: string[] = [];
    for (let p = 0; p < K; p++) {
      const v = C[t][p];
      if (v === 0) {
        // end tags are optional for td; a 100-class matrix is 10 000 cells, mostly empty
        cells.push(named ? '<td class="z">0' : '<td>');
        continue;
      }
      const level = Math.max(1, Math.ceil((v / total) * SHADES));
      const share = total ? ` (${pct(v / total)} of ${m.classes[t]})` : '';
      cells.push(`<td class="${t === p ? 'd' : 'e'}${level}" title="${esc(`true ${m.classes[t]} → predicted ${m.classes[p]}: ${v}${share}`)}">${v}`);
    }
    rows.push(`<tr><th scope="row">${named ? '' : `<span class="idx">${t}</span> `}${esc(m.classes[t])}${cells.join('')}<td class="tot">${total}`);
  }
  const corner = '<th class="corner">true ↓ · predicted →</th>';
  return `<section id="confusion"><h2>Confusion matrix</h2>
<p class="note">Rows are the <b>true</b> class, columns the <b>predicted</b> class; each cell counts validation images. Colour shows the share of the row: <span class="key d6">blue</span> = right, <span class="key e6">red</span> = confused.${named ? '' : ' Columns are numbered like the rows; hover a cell for its classes.'}</p>
<div class="scroll matrix${named ? '' : ' compact'}"><table class="confusion"><thead><tr>${corner}${colHead}<th class="tot">n</th></tr></thead><tbody>${rows.join('\n')}</tbody></table></div></section>`;
}

function metricCells(x: { precision: number; recall: number; f1: number }): string {
  const cell = (v: number) => `<td data-v="${v}" class="bar" style="--v:${(v * 100).toFixed(1)}%">${pct(v)}</td>`;
  return cell(x.precision) + cell(x.recall) + cell(x.f1);
}

function perClass(m: MetricsJson): string {
  const rows = (m.perClass ?? [])
    .map((c: ClassMetricsJson, i) => `<tr${c.support === 0 ? ' class="nosupport" title="no validation images of this class"' : ''}><td data-v="${i}">${i}</td><th scope="row">${esc(c.label)}</th>${metricCells(c)}<td data-v="${c.support}">${c.support}</td></tr>`)
    .join('\n');
  const foot = [
    m.macro ? `<tr><td></td><th scope="row">macro average</th>${metricCells(m.macro)}<td>${m.n.val}</td></tr>` : '',
    m.weighted ? `<tr><td></td><th scope="row">weighted average</th>${metricCells(m.weighted)}<td>${m.n.val}</td></tr>` : '',
  ].join('');
  const noSupport = (m.perClass ?? []).filter((c) => c.support === 0).length;
  return `<section id="per-class"><h2>Per class</h2>
<p class="note">Precision: of the images predicted as the class, the share that are. Recall: of the images of the class, the share found. A ratio with nothing to divide by counts as 0. Click a column to sort.${noSupport ? ` ${plural(noSupport, 'class has', 'classes have')} no validation images (greyed).` : ''}</p>
<div class="scroll tall"><table class="sortable num perclass"><thead><tr><th>#</th><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr></thead><tbody>${rows}</tbody><tfoot>${foot}</tfoot></table></div></section>`;
}

function worstGrid(worst: WorstItem[], thumbs: Thumbnail[], size: number): string {
  if (worst.length === 0) return `<section id="worst"><h2>Misclassified images</h2><p class="notice">No validation image was misclassified.</p></section>`;
  const cards = worst
    .map((w, i) => {
      const t = thumbs[i];
      const img = t.ok
        ? `<img src="${t.dataUri}"${Math.max(t.width, t.height) <= size / 2 ? ' class="px"' : ''} alt="${esc(`${w.trueLabel} predicted as ${w.predLabel}`)}">`
        : `<div class="ph" title="${esc(t.reason)}">no preview</div>`;
      return `<figure>${`<div class="thumb" style="width:${size}px;height:${size}px">${img}</div>`}<figcaption><span class="truth">${esc(w.trueLabel)}</span> → <span class="pred">${esc(w.predLabel)}</span><br><b>${pct(w.probability)}</b><br><span class="path" title="${esc(w.path)}">${esc(basename(w.path))}</span></figcaption></figure>`;
    })
    .join('\n');
  return `<section id="worst"><h2>Misclassified images</h2><p class="note">The validation images the model was most sure about and got wrong: true class → predicted class, and the probability given to the wrong class. Hover a file name for its path.</p><div class="grid">${cards}</div></section>`;
}

function skipped(m: MetricsJson, max: number): string {
  const s = m.skipped;
  if (s.length === 0) return `<section id="skipped"><h2>Skipped files</h2><p class="note">None: every file was read.</p></section>`;
  const rows = s
    .slice(0, max)
    .map((f) => `<tr><td class="path">${esc(f.path)}</td><td><code>${esc(f.code)}</code></td><td>${esc(f.message)}</td></tr>`)
    .join('\n');
  const more = s.length > max ? `<p class="note">… and ${s.length - max} more, listed in metrics.json.</p>` : '';
  return `<section id="skipped"><h2>Skipped files</h2><p class="note">${plural(s.length, 'file')} could not be used and ${s.length === 1 ? 'was' : 'were'} left out; the run went on without ${s.length === 1 ? 'it' : 'them'}.</p>
<div class="scroll short"><table class="skipped"><thead><tr><th>file</th><th>code</th><th>reason</th></tr></thead><tbody>${rows}</tbody></table></div>${more}</section>`;
}

function config(m: MetricsJson): string {
  const entries = Object.entries(m.config).filter(([, v]) => v !== undefined);
  const rows = entries.map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td><code>${esc(typeof v === 'string' ? v : JSON.stringify(v))}</code></td></tr>`).join('');
  return `<section id="config"><h2>Settings</h2><details${entries.length ? '' : ' open'}><summary>Hyper-parameters and run details</summary><table class="kv">
<tr><th scope="row">mode</th><td>${esc(m.mode)}</td></tr><tr><th scope="row">model</th><td><code>${esc(m.model)}</code></td></tr>
<tr><th scope="row">feature layer</th><td>${m.featureLayer ? `<code>${esc(m.featureLayer)}</code>` : '–'}</td></tr>${m.graftVersion ? `<tr><th scope="row">graft</th><td>${esc(m.graftVersion)}</td></tr>` : ''}
${rows}</table></details></section>`;
}
