/**
 * The report's own script, inlined after uPlot: draws the loss / accuracy / learning-rate curves from
 * the JSON in #graft-data and makes tables with class "sortable" sortable. Plain ES2017 so any browser
 * from the last years runs it; everything it shows comes from JSON via textContent or canvas text, never
 * innerHTML.
 */
export const CLIENT_JS = String.raw`(function () {
  'use strict';
  var banner = document.getElementById('graft-error');
  function fail(msg) {
    if (!banner) return;
    banner.hidden = false;
    banner.textContent = 'Part of this report could not be drawn: ' + msg;
  }
  window.addEventListener('error', function (e) { fail(e.message || String(e.error)); });

  function finite(a) { return a.filter(function (v) { return typeof v === 'number' && isFinite(v); }); }

  function charts() {
    var el = document.getElementById('graft-data');
    if (!el) return;
    var d = JSON.parse(el.textContent);
    if (!d.epochs.length) return;
    if (typeof uPlot !== 'function') throw new Error('the plotting library did not load');
    var TRAIN = '#2563eb', VAL = '#ea580c', LR = '#7c3aed', BEST = '#16a34a';
    var made = [];
    var fmtLoss = function (u, v) { return v == null ? '–' : v.toFixed(4); };
    var fmtPct = function (u, v) { return v == null ? '–' : (v * 100).toFixed(1) + '%'; };
    var fmtLr = function (u, v) { return v == null ? '–' : v.toExponential(2); };
    function line(label, color, fmt) {
      return { label: label, stroke: color, width: 2, value: fmt, spanGaps: true,
        points: { show: d.epochs.length <= 60, size: 6, fill: color } };
    }
    function bestMarker(u) {
      if (d.bestEpoch == null) return;
      var x = Math.round(u.valToPos(d.bestEpoch, 'x', true));
      var ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = BEST;
      ctx.lineWidth = uPlot.pxRatio;
      ctx.setLineDash([5 * uPlot.pxRatio, 4 * uPlot.pxRatio]);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.restore();
    }
    function chart(id, title, yRange, yFmt, lines, values, log) {
      var box = document.getElementById(id);
      if (!box) return;
      var opts = {
        title: title,
        width: Math.max(260, box.clientWidth),
        height: 240,
        scales: {
          x: { time: false, range: function (u, min, max) { return min === max ? [min - 0.5, max + 0.5] : [min, max]; } },
          y: log ? { distr: 3 } : { range: yRange },
        },
        axes: [
          { label: 'epoch', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] },
          { size: 64, values: function (u, vals) { return vals.map(function (v) { return yFmt(u, v); }); } },
        ],
        series: [{ label: 'epoch' }].concat(lines),
        hooks: { draw: [bestMarker] },
      };
      made.push({ box: box, plot: new uPlot(opts, [d.epochs].concat(values), box) });
    }
    var lossRange = function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; };
    var accRange = function (u, min, max) {
      if (min == null || max == null) return [0, 1];
      return [Math.max(0, Math.floor((min - 0.02) * 20) / 20), Math.min(1, Math.ceil((max + 0.02) * 20) / 20)];
    };
    var lossLines = [line('train', TRAIN, fmtLoss)], lossValues = [d.trainLoss];
    var accLines = [line('train', TRAIN, fmtPct)], accValues = [d.trainAcc];
    if (d.hasVal) {
      lossLines.push(line('validation', VAL, fmtLoss)); lossValues.push(d.valLoss);
      accLines.push(line('validation', VAL, fmtPct)); accValues.push(d.valAcc);
    }
    chart('chart-loss', 'Loss (cross-entropy)', lossRange, function (u, v) { return v == null ? '' : +v.toPrecision(3) + ''; }, lossLines, lossValues, false);
    if (finite(d.trainAcc).length || d.hasVal) chart('chart-acc', 'Accuracy', accRange, function (u, v) { return v == null ? '' : Math.round(v * 100) + '%'; }, accLines, accValues, false);
    var lrs = finite(d.lr);
    if (lrs.length > 1 && Math.min.apply(null, lrs) !== Math.max.apply(null, lrs)) {
      var log = Math.min.apply(null, lrs) > 0 && Math.max.apply(null, lrs) / Math.min.apply(null, lrs) > 50;
      chart('chart-lr', 'Learning rate', null, function (u, v) { return v == null ? '' : v.toExponential(0); }, [line('lr', LR, fmtLr)], [d.lr], log);
    } else {
      var lrBox = document.getElementById('chart-lr');
      if (lrBox) lrBox.hidden = true;
    }
    if (d.lrFind && d.lrFind.lrs.length > 1) {
      var box = document.getElementById('chart-lrfind');
      if (box) {
        var sug = d.lrFind.suggestion;
        var mark = function (u) {
          var x = Math.round(u.valToPos(sug, 'x', true));
          var c = u.ctx;
          c.save(); c.strokeStyle = BEST; c.lineWidth = uPlot.pxRatio;
          c.setLineDash([5 * uPlot.pxRatio, 4 * uPlot.pxRatio]);
          c.beginPath(); c.moveTo(x, u.bbox.top); c.lineTo(x, u.bbox.top + u.bbox.height); c.stroke(); c.restore();
        };
        made.push({ box: box, plot: new uPlot({
          title: 'Learning-rate range test',
          width: Math.max(260, box.clientWidth),
          height: 240,
          scales: { x: { time: false, distr: 3 } },
          axes: [{ label: 'learning rate', values: function (u, vals) { return vals.map(function (v) { return v.toExponential(0); }); } }, { size: 64 }],
          series: [{ label: 'lr', value: fmtLr }, { label: 'loss', stroke: TRAIN, width: 2, value: fmtLoss }],
          hooks: { draw: [mark] },
        }, [d.lrFind.lrs, d.lrFind.losses], box) });
      }
    }
    var pending = 0;
    window.addEventListener('resize', function () {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(function () {
        made.forEach(function (m) { m.plot.setSize({ width: Math.max(260, m.box.clientWidth), height: 240 }); });
      });
    });
  }

  function sortable() {
    Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
      var body = table.tBodies[0];
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
        th.tabIndex = 0;
        th.title = 'Sort';
        var dir = 1;
        function sort() {
          var rows = Array.prototype.slice.call(body.rows);
          var key = function (r) { var c = r.cells[col]; return c.hasAttribute('data-v') ? parseFloat(c.getAttribute('data-v')) : c.textContent; };
          rows.sort(function (a, b) {
            var x = key(a), y = key(b);
            return (typeof x === 'number' ? x - y : String(x).localeCompare(String(y))) * dir;
          });
          rows.forEach(function (r) { body.appendChild(r); });
          dir = -dir;
        }
        th.addEventListener('click', sort);
        th.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); } });
      });
    });
  }

  try { charts(); } catch (e) { fail(e && e.message ? e.message : String(e)); }
  try { sortable(); } catch (e) { fail(e && e.message ? e.message : String(e)); }
})();
`;
