// Metric charts on a canvas. Series come from /api/keel/v1/metrics/buckets: each bucket has
// its first, last, minimum and maximum value, and is drawn as first -> min -> max -> last, so
// a spike inside a bucket is still drawn. Zooming asks the server for the range again.

import { h, keel, fmtNum, fmtTime, fmtDuration, PALETTE } from './lib.js';

const HUGE = 1.7e308; // stored infinities are +-DBL_MAX

/** Nice tick values between lo and hi. */
function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** The x of a bucket's first and last value in the chosen mode. */
function xs(s, i, mode, t0) {
  if (mode === 'step') return [s.first_step[i], s.last_step[i]];
  const off = mode === 'relative' ? t0 : 0;
  return [s.first_ts[i] - off, s.last_ts[i] - off];
}

function finite(v) {
  return v !== null && v !== undefined && Math.abs(v) < HUGE;
}

/**
 * A chart of one metric over several runs.
 * runs: [{run_id, label}]; key: the metric. Options: xMode ('step' | 'time' | 'relative'),
 * logY, smoothing (0..0.99), buckets. Returns the element; el.chart is the controller.
 */
export function metricChart(runs, key, options = {}) {
  const state = {
    xMode: options.xMode || 'step', logY: !!options.logY, smoothing: options.smoothing || 0,
    buckets: options.buckets || 500, view: null, range: null, series: [], t0: {}, loading: false, error: null,
  };
  const canvas = h('canvas', { role: 'img', 'aria-label': `Chart of ${key}` });
  const tip = h('div', { class: 'tip' });
  const status = h('span', { class: 'muted', 'aria-live': 'polite' });
  const legend = h('div', { class: 'legend' });
  const controls = h('div', { class: 'toolbar' },
    h('label', {}, 'x ', h('select', { 'aria-label': 'x axis', onchange: (e) => { state.xMode = e.target.value; state.view = null; draw(); } },
      ...[['step', 'Step'], ['time', 'Time'], ['relative', 'Relative time']].map(([v, l]) => h('option', { value: v, selected: v === state.xMode }, l)))),
    h('label', {}, h('input', { type: 'checkbox', checked: state.logY, onchange: (e) => { state.logY = e.target.checked; draw(); } }), ' log scale'),
    h('label', {}, 'smoothing ', h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: state.smoothing, 'aria-label': 'smoothing', oninput: (e) => { state.smoothing = Number(e.target.value); draw(); } })),
    h('button', { type: 'button', onclick: () => zoomBy(0.5), 'aria-label': 'Zoom in' }, 'Zoom in'),
    h('button', { type: 'button', onclick: () => zoomBy(2), 'aria-label': 'Zoom out' }, 'Zoom out'),
    h('button', { type: 'button', class: 'reset', onclick: () => reset() }, 'Reset zoom'),
    status);
  const el = h('figure', { class: 'chart panel', dataset: { key } },
    h('figcaption', {}, h('strong', {}, key)), controls, canvas, tip, legend);

  async function load(range) {
    state.loading = true;
    status.textContent = 'loading…';
    try {
      const params = { key, run_id: runs.map((r) => r.run_id), buckets: state.buckets };
      if (range) { params.min_step = Math.floor(range[0]); params.max_step = Math.ceil(range[1]); }
      const data = await keel.get('metrics/buckets', params);
      state.series = data.series.map((s, i) => ({ ...s, label: runs[i].label, color: runs[i].color || PALETTE[i % PALETTE.length] }));
      for (const s of state.series) if (!range && s.first_ts.length) state.t0[s.run_id] = s.first_ts[0];
      state.range = range;
      state.error = null;
      const pts = state.series.reduce((a, s) => a + s.first_step.length, 0);
      const raw = state.series.every((s) => s.raw);
      status.textContent = `${pts} points${raw ? ' (every value)' : ' (min/max per bucket)'}`;
      el.dataset.raw = String(raw);
      el.dataset.points = String(pts);
    } catch (e) {
      state.error = e;
      status.textContent = e.message;
    }
    state.loading = false;
    legend.replaceChildren(...state.series.map((s) => h('span', { style: `--c:${s.color}` }, s.label)));
    draw();
  }

  /** The x extent of the data in the current mode. */
  function extent() {
    let lo = Infinity; let hi = -Infinity;
    for (const s of state.series) {
      const n = s.first_step.length;
      if (!n) continue;
      lo = Math.min(lo, xs(s, 0, state.xMode, state.t0[s.run_id])[0]);
      hi = Math.max(hi, xs(s, n - 1, state.xMode, state.t0[s.run_id])[1]);
    }
    if (!isFinite(lo)) return [0, 1];
    return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
  }

  /** Step range covering the x window [a, b] in the current mode. */
  function stepRange(a, b) {
    if (state.xMode === 'step') return [a, b];
    let lo = Infinity; let hi = -Infinity;
    for (const s of state.series) {
      for (let i = 0; i < s.first_step.length; i++) {
        const [x0, x1] = xs(s, i, state.xMode, state.t0[s.run_id]);
        if (x1 >= a && x0 <= b) { lo = Math.min(lo, s.first_step[i]); hi = Math.max(hi, s.last_step[i]); }
      }
    }
    return isFinite(lo) ? [lo, hi] : null;
  }

  async function zoomTo(a, b) {
    if (!(b > a)) return;
    state.view = [a, b];
    const r = stepRange(a, b);
    if (r) await load(r);
    else draw();
    el.dataset.zoomed = 'true';
  }

  function zoomBy(f) {
    const [a, b] = state.view || extent();
    const mid = (a + b) / 2; const half = (b - a) * f / 2;
    if (f > 1 && !state.view) return;
    zoomTo(mid - half, mid + half);
  }

  function reset() {
    state.view = null;
    el.dataset.zoomed = 'false';
    load(null);
  }

  let geometry = null;

  function draw() {
    const rect = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(200, rect.width); const H = Math.max(150, rect.height);
    canvas.width = W * dpr; canvas.height = H * dpr;
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const css = getComputedStyle(el);
    const fg = css.getPropertyValue('--fg') || '#000'; const line = css.getPropertyValue('--line') || '#ccc';
    g.clearRect(0, 0, W, H);
    g.font = '11px system-ui, sans-serif';
    const pad = { l: 64, r: 12, t: 8, b: 28 };
    const [x0, x1] = state.view || extent();
    // y extent over what is visible
    let y0 = Infinity; let y1 = -Infinity;
    const okY = (v) => finite(v) && (!state.logY || v > 0);
    for (const s of state.series) {
      for (let i = 0; i < s.first_step.length; i++) {
        const [a, b] = xs(s, i, state.xMode, state.t0[s.run_id]);
        if (b < x0 || a > x1) continue;
        for (const v of [s.min[i], s.max[i]]) if (okY(v)) { y0 = Math.min(y0, v); y1 = Math.max(y1, v); }
      }
    }
    if (!isFinite(y0)) { y0 = 0; y1 = 1; }
    if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    const ty = (v) => state.logY ? Math.log10(v) : v;
    const [ly0, ly1] = [ty(y0), ty(y1)];
    const X = (x) => pad.l + (x - x0) / (x1 - x0) * (W - pad.l - pad.r);
    const Y = (v) => H - pad.b - (ty(v) - ly0) / (ly1 - ly0 || 1) * (H - pad.t - pad.b);
    geometry = { X, x0, x1, pad, W, H };
    // axes
    g.strokeStyle = line; g.fillStyle = fg; g.lineWidth = 1;
    g.textAlign = 'right'; g.textBaseline = 'middle';
    const yt = state.logY ? ticks(ly0, ly1, 5).map((t) => Math.pow(10, t)) : ticks(y0, y1, 5);
    for (const v of yt) {
      const y = Y(v);
      if (y < pad.t - 1 || y > H - pad.b + 1) continue;
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(W - pad.r, y); g.stroke();
      g.fillText(fmtNum(v), pad.l - 4, y);
    }
    g.textAlign = 'center'; g.textBaseline = 'top';
    for (const v of ticks(x0, x1, Math.max(2, Math.floor((W - pad.l) / 110)))) {
      const x = X(v);
      g.fillText(state.xMode === 'time' ? fmtTime(v).slice(11) : state.xMode === 'relative' ? fmtDuration(v) : fmtNum(v), x, H - pad.b + 6);
    }
    g.save();
    g.beginPath(); g.rect(pad.l, pad.t, W - pad.l - pad.r, H - pad.t - pad.b); g.clip();
    for (const s of state.series) drawSeries(g, s, X, Y, okY);
    if (drag) {
      g.fillStyle = 'rgba(100,150,255,0.2)';
      g.fillRect(Math.min(drag.a, drag.b), pad.t, Math.abs(drag.b - drag.a), H - pad.t - pad.b);
    }
    g.restore();
    if (state.error) { g.fillStyle = 'red'; g.textAlign = 'left'; g.fillText(String(state.error.message), pad.l + 8, pad.t + 8); }
  }

  function drawSeries(g, s, X, Y, okY) {
    const n = s.first_step.length;
    const t0 = state.t0[s.run_id];
    const smooth = state.smoothing > 0;
    g.lineWidth = 1.5;
    g.strokeStyle = s.color;
    g.globalAlpha = smooth ? 0.25 : 1;
    g.beginPath();
    let pen = false;
    for (let i = 0; i < n; i++) {
      if (!okY(s.first[i]) || !okY(s.last[i])) { pen = false; continue; }
      const [a, b] = xs(s, i, state.xMode, t0);
      const xa = X(a); const xb = X(b);
      if (pen) g.lineTo(xa, Y(s.first[i])); else g.moveTo(xa, Y(s.first[i]));
      if (s.min[i] !== s.max[i]) {
        const xm = (xa + xb) / 2;
        if (okY(s.min[i])) g.lineTo(xm, Y(s.min[i]));
        if (okY(s.max[i])) g.lineTo(xm, Y(s.max[i]));
      }
      g.lineTo(xb, Y(s.last[i]));
      if (n === 1 || (i > 0 && !okY(s.last[i - 1]) && (i === n - 1 || !okY(s.first[i + 1])))) g.arc(xb, Y(s.last[i]), 2, 0, 7);
      pen = true;
    }
    g.stroke();
    g.globalAlpha = 1;
    if (smooth) {
      const w = state.smoothing;
      let acc = null; let k = 0;
      g.beginPath();
      for (let i = 0; i < n; i++) {
        const v = s.last[i];
        if (!okY(v)) continue;
        const tv = state.logY ? Math.log10(v) : v;
        acc = acc === null ? tv : acc * w + tv * (1 - w);
        k++;
        const val = state.logY ? Math.pow(10, acc) : acc;
        const x = X(xs(s, i, state.xMode, t0)[1]);
        if (k === 1) g.moveTo(x, Y(val)); else g.lineTo(x, Y(val));
      }
      g.stroke();
    }
  }

  // drag to zoom, hover for values
  let drag = null;
  canvas.addEventListener('mousedown', (e) => {
    const r = canvas.getBoundingClientRect();
    drag = { a: e.clientX - r.left, b: e.clientX - r.left };
  });
  window.addEventListener('mouseup', () => {
    if (!drag || !geometry) { drag = null; return; }
    const { x0, x1, pad, W } = geometry;
    const inv = (px) => x0 + (px - pad.l) / (W - pad.l - pad.r) * (x1 - x0);
    const [a, b] = [inv(Math.min(drag.a, drag.b)), inv(Math.max(drag.a, drag.b))];
    const wide = Math.abs(drag.b - drag.a) > 4;
    drag = null;
    if (wide) zoomTo(a, b); else draw();
  });
  canvas.addEventListener('mousemove', (e) => {
    const r = canvas.getBoundingClientRect();
    if (drag) { drag.b = e.clientX - r.left; draw(); return; }
    if (!geometry) return;
    const { x0, x1, pad, W } = geometry;
    const x = x0 + (e.clientX - r.left - pad.l) / (W - pad.l - pad.r) * (x1 - x0);
    const lines = [];
    for (const s of state.series) {
      let best = -1; let bd = Infinity;
      for (let i = 0; i < s.first_step.length; i++) {
        const [a, b] = xs(s, i, state.xMode, state.t0[s.run_id]);
        const d = x < a ? a - x : x > b ? x - b : 0;
        if (d < bd) { bd = d; best = i; }
      }
      if (best < 0) continue;
      const i = best;
      const range = s.first_step[i] === s.last_step[i] ? `step ${s.first_step[i]}` : `steps ${s.first_step[i]}–${s.last_step[i]}`;
      const val = s.min[i] === s.max[i] ? fmtNum(s.last[i]) : `${fmtNum(s.min[i])} … ${fmtNum(s.max[i])} (last ${fmtNum(s.last[i])})`;
      lines.push(`${s.label}: ${val} at ${range}`);
    }
    tip.textContent = lines.join('\n');
    tip.style.whiteSpace = 'pre';
    tip.style.display = lines.length ? 'block' : 'none';
    tip.style.left = Math.min(e.clientX - r.left + 12, r.width - 200) + 'px';
    tip.style.top = (e.clientY - r.top + 40) + 'px';
  });
  canvas.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  canvas.addEventListener('dblclick', () => reset());
  new ResizeObserver(() => draw()).observe(canvas);

  el.chart = { load, zoomTo, reset, state, draw };
  load(null);
  return el;
}
