/* charts.js - the small hand-written SVG charts of the Predict and Models tabs (no chart
 * library): horizontal bars (a prediction's reasons, positive and negative around a zero axis,
 * or a budget's allocation from zero), a line chart with optional interval bands and a marked
 * point (pricing's price-response curve, demand's forecast), and a history chart (predictions
 * per time bucket as columns with the mean score as a line of points).
 *
 * Every chart is returned as a detached <svg> element built with createElementNS; text is set
 * with textContent, never markup, so labels coming from the server cannot inject anything.
 * Each drawn datum carries its value in data-* attributes (data-label, data-value, data-count...)
 * so the browser tests can compare what is drawn with the API's answer.
 * Exposes window.MdCharts = {hbars, line, history, fmt}.
 */
'use strict';

(function () {
  const NS = 'http://www.w3.org/2000/svg';

  /* An SVG element with attributes, appended to parent when one is given. */
  function s(tag, attrs, parent, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    if (parent) parent.append(e);
    return e;
  }

  /* A number for people: thousands separated, about 3-4 significant digits. */
  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '—';
    if (typeof v !== 'number') return String(v);
    const a = Math.abs(v);
    if (digits !== undefined) return v.toFixed(digits);
    if (a >= 1000) return v.toLocaleString('en-US', { maximumFractionDigits: 0 });
    if (a >= 100) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return '0';
    if (a >= 0.001) return v.toFixed(3);
    return v.toExponential(2);
  }

  /* Linear scale from [d0, d1] to [r0, r1]; a flat domain maps to the middle. */
  function scale(d0, d1, r0, r1) {
    if (d1 === d0) return () => (r0 + r1) / 2;
    return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
  }

  /* About n round tick values covering [lo, hi]. */
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  /* Horizontal bars. rows: [{label, value, note?}]. opts.diverging draws around a zero axis in
   * the middle (positive right, negative left), else bars grow from zero on the left.
   * opts.cls names the chart (class on the <svg>), opts.unit is appended to values. */
  function hbars(rows, opts = {}) {
    const W = 640, rowH = 26, labelW = 230, valueW = 60, top = 6;
    const H = top * 2 + rows.length * rowH;
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart hbars ' + (opts.cls || ''), role: 'img',
      'aria-label': opts.title || 'bar chart', width: '100%' });
    const maxAbs = Math.max(1e-12, ...rows.map((r) => Math.abs(r.value)));
    const x0 = labelW, x1 = W - valueW;
    const zero = opts.diverging ? (x0 + x1) / 2 : x0;
    // Diverging bars keep room on both sides for the value written beyond the bar's end.
    const half = opts.diverging ? (x1 - x0) / 2 - 56 : x1 - x0;
    s('line', { x1: zero, x2: zero, y1: 0, y2: H, class: 'axis' }, svg);
    rows.forEach((r, i) => {
      const y = top + i * rowH;
      const w = (Math.abs(r.value) / maxAbs) * half;
      const neg = r.value < 0;
      const g = s('g', { class: 'bar-row', 'data-label': r.label, 'data-value': String(r.value) }, svg);
      const lab = s('text', { x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end', class: 'label' }, g, r.label);
      if (r.note !== undefined) s('tspan', { class: 'note' }, lab, ' = ' + r.note);
      s('rect', { x: neg ? zero - w : zero, y: y + 4, width: Math.max(w, 0.5), height: rowH - 8, rx: 3,
        class: 'bar ' + (neg ? 'neg' : 'pos') }, g);
      const tx = opts.diverging ? (neg ? zero - w - 6 : zero + w + 6) : zero + w + 6;
      const t = s('text', { x: tx, y: y + rowH / 2 + 4, 'text-anchor': opts.diverging && neg ? 'end' : 'start',
        class: 'value' }, g, (r.value > 0 && opts.diverging ? '+' : '') + fmt(r.value) + (opts.unit ? ' ' + opts.unit : ''));
      s('title', {}, t, `${r.label}: ${r.value}`);
    });
    return svg;
  }

  /* Axes with ticks for a plot area; returns nothing, draws into svg. */
  function axes(svg, box, xs, ys, xt, yt, fx, fy) {
    s('line', { x1: box.l, x2: box.r, y1: box.b, y2: box.b, class: 'axis' }, svg);
    s('line', { x1: box.l, x2: box.l, y1: box.t, y2: box.b, class: 'axis' }, svg);
    for (const v of yt) {
      s('line', { x1: box.l, x2: box.r, y1: ys(v), y2: ys(v), class: 'grid' }, svg);
      s('text', { x: box.l - 6, y: ys(v) + 4, 'text-anchor': 'end', class: 'tick' }, svg, fy(v));
    }
    for (const v of xt) s('text', { x: xs(v), y: box.b + 16, 'text-anchor': 'middle', class: 'tick' }, svg, fx(v));
  }

  /* Line chart. spec: {series: [{name, cls, points: [[x, y]]}], bands: [{cls, label, lower:
   * [[x, y]], upper: [[x, y]]}], marker?: {x, y, label}, fx?, fy?, xLabel?, yLabel?, title?,
   * xTicks?: explicit tick values}. */
  function line(spec) {
    const W = 640, H = 280;
    const box = { l: 64, r: W - 16, t: 16, b: H - 40 };
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart line ' + (spec.cls || ''), role: 'img',
      'aria-label': spec.title || 'line chart', width: '100%' });
    const pts = [];
    for (const se of spec.series) pts.push(...se.points);
    for (const b of spec.bands || []) pts.push(...b.lower, ...b.upper);
    const xv = pts.map((p) => p[0]), yv = pts.map((p) => p[1]);
    let ylo = Math.min(...yv), yhi = Math.max(...yv);
    const pad = (yhi - ylo) * 0.06 || Math.abs(yhi) * 0.1 || 1;
    ylo = spec.yZero && ylo >= 0 ? 0 : ylo - pad;
    yhi += pad;
    const xs = scale(Math.min(...xv), Math.max(...xv), box.l, box.r);
    const ys = scale(ylo, yhi, box.b, box.t);
    const fx = spec.fx || ((v) => fmt(v)), fy = spec.fy || ((v) => fmt(v));
    axes(svg, box, xs, ys, spec.xTicks || ticks(Math.min(...xv), Math.max(...xv), 6), ticks(ylo, yhi, 5), fx, fy);
    for (const b of spec.bands || []) {
      const poly = b.upper.concat(b.lower.slice().reverse()).map((p) => `${xs(p[0])},${ys(p[1])}`).join(' ');
      s('title', {}, s('polygon', { points: poly, class: 'band ' + (b.cls || ''), 'data-label': b.label || '' }, svg), b.label || '');
    }
    for (const se of spec.series) {
      const d = se.points.map((p, i) => (i ? 'L' : 'M') + xs(p[0]).toFixed(2) + ',' + ys(p[1]).toFixed(2)).join('');
      s('path', { d, class: 'series ' + (se.cls || ''), 'data-name': se.name, 'data-points': String(se.points.length) }, svg);
    }
    if (spec.marker) {
      const m = spec.marker;
      const g = s('g', { class: 'marker', 'data-x': String(m.x), 'data-y': String(m.y) }, svg);
      s('line', { x1: xs(m.x), x2: xs(m.x), y1: box.t, y2: box.b, class: 'marker-line' }, g);
      s('circle', { cx: xs(m.x), cy: ys(m.y), r: 5, class: 'marker-dot' }, g);
      const right = xs(m.x) > (box.l + box.r) / 2;
      s('text', { x: xs(m.x) + (right ? -8 : 8), y: box.t + 12, 'text-anchor': right ? 'end' : 'start', class: 'marker-label' }, g, m.label);
    }
    if (spec.xLabel) s('text', { x: (box.l + box.r) / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis-label' }, svg, spec.xLabel);
    if (spec.yLabel) s('text', { x: 12, y: (box.t + box.b) / 2, 'text-anchor': 'middle', class: 'axis-label',
      transform: `rotate(-90 12 ${(box.t + box.b) / 2})` }, svg, spec.yLabel);
    return svg;
  }

  /* History chart. buckets: [{t0, t1, count, mean}] (times in ms, mean may be null). Columns for
   * the count (left axis), a line of points for the mean score (right axis). */
  function history(buckets, opts = {}) {
    const W = 640, H = 200;
    const box = { l: 40, r: W - 52, t: 12, b: H - 30 };
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart history', role: 'img',
      'aria-label': opts.title || 'predictions over time', width: '100%' });
    const maxC = Math.max(1, ...buckets.map((b) => b.count));
    const means = buckets.filter((b) => b.mean !== null).map((b) => b.mean);
    const mlo = Math.min(0, ...means), mhi = Math.max(1e-12, ...means);
    const bw = (box.r - box.l) / Math.max(1, buckets.length);
    const yc = scale(0, maxC, box.b, box.t);
    const ym = scale(mlo, mhi * 1.05, box.b, box.t);
    axes(svg, box, (v) => v, yc, [], ticks(0, maxC, 4).filter((v) => Number.isInteger(v)), fmt, (v) => fmt(v));
    s('line', { x1: box.r, x2: box.r, y1: box.t, y2: box.b, class: 'axis' }, svg);
    for (const v of ticks(mlo, mhi, 4)) s('text', { x: box.r + 6, y: ym(v) + 4, class: 'tick mean-tick' }, svg, fmt(v));
    const fx = opts.fx || ((t) => new Date(t).toISOString().slice(11, 16));
    const every = Math.max(1, Math.ceil(buckets.length / 6));
    const line = [];
    buckets.forEach((b, i) => {
      const x = box.l + i * bw;
      const g = s('g', { class: 'hist-bucket', 'data-count': String(b.count), 'data-t0': String(b.t0),
        'data-mean': b.mean === null ? '' : String(b.mean) }, svg);
      s('rect', { x: x + 1, y: yc(b.count), width: Math.max(1, bw - 2), height: box.b - yc(b.count), class: 'hist-bar' }, g);
      s('title', {}, g, `${fx(b.t0)}: ${b.count} predictions` + (b.mean === null ? '' : `, mean ${fmt(b.mean)}`));
      if (i % every === 0) s('text', { x: x + bw / 2, y: box.b + 16, 'text-anchor': 'middle', class: 'tick' }, svg, fx(b.t0));
      if (b.mean !== null) line.push([x + bw / 2, ym(b.mean)]);
    });
    if (line.length) {
      s('path', { d: line.map((p, i) => (i ? 'L' : 'M') + p[0].toFixed(2) + ',' + p[1].toFixed(2)).join(''), class: 'series mean' }, svg);
      for (const p of line) s('circle', { cx: p[0], cy: p[1], r: 3, class: 'hist-point' }, svg);
    }
    return svg;
  }

  window.MdCharts = { hbars, line, history, fmt };
})();
