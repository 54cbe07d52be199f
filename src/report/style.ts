/** The report's stylesheet: readable on screen and in print, light colours, tables that scroll. */
const shades = (prefix: string, hue: number) =>
  Array.from({ length: 8 }, (_, i) => {
    const level = i + 1;
    const light = 96 - level * 7;
    return `.${prefix}${level}{background:hsl(${hue} 75% ${light}%);${light < 60 ? 'color:#fff;' : ''}}`;
  }).join('');

export const REPORT_CSS = `
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#0f172a;color:#f8fafc;padding:18px 28px 0}
header h1{margin:0;font-size:22px;font-weight:600;overflow-wrap:anywhere}
header .sub{margin:4px 0 10px;color:#cbd5e1;font-size:14px;overflow-wrap:anywhere}
header code{color:#e2e8f0}
nav{display:flex;gap:18px;flex-wrap:wrap;padding-bottom:10px}
nav a{color:#93c5fd;text-decoration:none;font-size:14px}
nav a:hover{text-decoration:underline}
main{max-width:1200px;margin:0 auto;padding:8px 28px 28px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:4px 20px 16px;margin:18px 0}
h2{font-size:18px;font-weight:600;margin:14px 0 8px}
.note{color:var(--muted);font-size:13.5px;margin:4px 0 10px}
.notice{background:#fef9c3;border:1px solid #fde68a;border-radius:8px;padding:8px 12px;font-size:14px}
.error{background:#fee2e2;border:1px solid #fca5a5;color:#991b1b;padding:10px 28px;margin:0}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fcfdff}
.card .label{color:var(--muted);font-size:12.5px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.card .note{margin:0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
.chart{min-width:0}
.chart[hidden]{display:none}
.uplot .u-title{font-size:14px;font-weight:600}
details summary{cursor:pointer;color:var(--accent);margin:8px 0}
.scroll{overflow:auto;border:1px solid var(--line);border-radius:6px}
.scroll.short{max-height:360px}
.scroll.tall{max-height:70vh}
.scroll.matrix{max-height:80vh;display:inline-block;max-width:100%}
table{border-collapse:collapse;font-size:13.5px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left}
thead th{position:sticky;top:0;background:#f1f5f9;z-index:1}
table.num td{text-align:right;font-variant-numeric:tabular-nums}
table.num td:first-child{text-align:left}
tr.best td{font-weight:600;background:#f0fdf4}
.perclass th[scope=row]{font-weight:500;overflow-wrap:anywhere;max-width:320px}
.perclass tfoot th,.perclass tfoot td{border-top:2px solid #cbd5e1;font-weight:600}
.perclass thead th{cursor:pointer;user-select:none}
td.bar{background:linear-gradient(90deg,#dbeafe var(--v),transparent var(--v))}
tr.nosupport{color:#9ca3af;font-style:italic}
table.confusion{font-variant-numeric:tabular-nums}
table.confusion td{text-align:center;min-width:34px;border:1px solid #eef2f7}
table.confusion th[scope=row]{position:sticky;left:0;background:#f8fafc;white-space:nowrap;max-width:260px;overflow:hidden;text-overflow:ellipsis;z-index:1}
table.confusion thead th{text-align:center;vertical-align:bottom}
table.confusion thead th.vert span{writing-mode:vertical-rl;transform:rotate(180deg);display:inline-block;max-height:11em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
table.confusion th.corner{left:0;z-index:2;font-weight:500;color:var(--muted);font-size:12px;white-space:nowrap;text-align:left}
table.confusion td.z{color:#d1d5db}
table.confusion .tot{color:var(--muted);font-size:12px}
.compact table.confusion{font-size:10.5px}
.compact table.confusion td{min-width:20px;padding:1px 2px}
.compact table.confusion thead th{padding:2px 1px;font-weight:500;font-size:10px}
.compact table.confusion th[scope=row]{padding:1px 6px;font-size:11px;max-width:200px}
.idx{color:var(--muted);display:inline-block;min-width:2.2em;text-align:right}
.key{padding:0 4px;border-radius:3px}
${shades('d', 217)}${shades('e', 0)}
.grid{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;width:136px;font-size:12.5px;text-align:center}
.thumb{margin:0 auto;display:flex;align-items:center;justify-content:center;background:#f1f5f9;border-radius:6px;overflow:hidden}
.thumb img{width:100%;height:100%;object-fit:contain;display:block}
.thumb img.px{image-rendering:pixelated}
.ph{color:#9ca3af;font-size:11px;padding:4px}
figcaption{margin-top:4px;line-height:1.35;overflow-wrap:anywhere}
.truth{color:#1d4ed8;font-weight:600}
.pred{color:#b91c1c;font-weight:600}
.path{color:var(--muted);font-size:11.5px;overflow-wrap:anywhere}
table.skipped td.path{font-size:12.5px;max-width:420px}
table.kv th{font-weight:500;color:var(--muted)}
footer{text-align:center;color:var(--muted);font-size:12px;padding:0 0 24px}
@media print{.scroll{max-height:none!important;overflow:visible}header{background:none;color:#000}nav{display:none}}
`;
