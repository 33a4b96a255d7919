// Comparing runs: params that differ, metrics side by side, a scatter of any param or metric
// against another, parallel coordinates, and a metric overlaid across the runs.

import { h, mlflow, fmtNum, hashParams, PALETTE } from './lib.js';
import { metricChart } from './chart.js';

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** A dimension's values over the runs, mapped onto 0..1 (numbers by value, text by rank). */
function scale(values) {
  const present = values.filter((v) => v !== undefined && v !== '');
  const numeric = present.length > 0 && present.every((v) => v !== null && !isNaN(Number(v)));
  if (numeric) {
    const nums = present.map(Number);
    const lo = Math.min(...nums); const hi = Math.max(...nums);
    return { numeric, lo, hi, at: (v) => (v === undefined || v === '' ? null : hi === lo ? 0.5 : (Number(v) - lo) / (hi - lo)) };
  }
  const cats = [...new Set(present.map(String))].sort();
  return { numeric, cats, at: (v) => (v === undefined ? null : cats.length === 1 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1)) };
}

function valueOf(run, dim) {
  const [kind, ...rest] = dim.split('.');
  const key = rest.join('.');
  return (run.data?.[kind] || []).find((x) => x.key === key)?.value;
}

function scatter(runs, xDim, yDim) {
  const W = 520; const H = 360; const p = 50;
  const xs = scale(runs.map((r) => valueOf(r, xDim)));
  const ys = scale(runs.map((r) => valueOf(r, yDim)));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': `Scatter of ${yDim} against ${xDim}`, id: 'scatter' });
  svg.append(s('line', { x1: p, y1: H - p, x2: W - 10, y2: H - p, class: 'axis' }), s('line', { x1: p, y1: 10, x2: p, y2: H - p, class: 'axis' }));
  svg.append(s('text', { x: W / 2, y: H - 12, 'text-anchor': 'middle' }, xDim), s('text', { x: 12, y: H / 2, transform: `rotate(-90 12 ${H / 2})`, 'text-anchor': 'middle' }, yDim));
  const lab = (sc, f) => (sc.numeric ? [fmtNum(sc.lo), fmtNum(sc.hi)] : [sc.cats[0], sc.cats[sc.cats.length - 1]]).map(f);
  lab(xs, String).forEach((t, i) => svg.append(s('text', { x: i ? W - 10 : p, y: H - p + 14, 'text-anchor': i ? 'end' : 'start' }, t ?? '')));
  lab(ys, String).forEach((t, i) => svg.append(s('text', { x: p - 4, y: i ? 16 : H - p, 'text-anchor': 'end' }, t ?? '')));
  runs.forEach((r, i) => {
    const x = xs.at(valueOf(r, xDim)); const y = ys.at(valueOf(r, yDim));
    if (x === null || y === null) return;
    svg.append(s('circle', { cx: p + x * (W - p - 20), cy: H - p - y * (H - p - 20), r: 5, fill: PALETTE[i % PALETTE.length], 'data-run': r.info.run_id },
      s('title', {}, `${r.info.run_name}: ${xDim}=${valueOf(r, xDim)}, ${yDim}=${valueOf(r, yDim)}`)));
  });
  return svg;
}

function parallel(runs, dims) {
  const W = Math.max(480, dims.length * 140); const H = 320; const top = 30; const bottom = 30;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Parallel coordinates', id: 'parallel' });
  const scales = dims.map((d) => scale(runs.map((r) => valueOf(r, d))));
  const X = (i) => 40 + i * (W - 80) / Math.max(1, dims.length - 1);
  const Y = (t) => H - bottom - t * (H - top - bottom);
  dims.forEach((d, i) => {
    svg.append(s('line', { x1: X(i), y1: top, x2: X(i), y2: H - bottom, class: 'axis' }), s('text', { x: X(i), y: 14, 'text-anchor': 'middle' }, d));
    const sc = scales[i];
    const [lo, hi] = sc.numeric ? [fmtNum(sc.lo), fmtNum(sc.hi)] : [sc.cats[0], sc.cats[sc.cats.length - 1]];
    svg.append(s('text', { x: X(i) + 4, y: H - bottom + 14 }, lo ?? ''), s('text', { x: X(i) + 4, y: top - 4 }, hi ?? ''));
  });
  runs.forEach((r, ri) => {
    const pts = dims.map((d, i) => { const t = scales[i].at(valueOf(r, d)); return t === null ? null : `${X(i)},${Y(t)}`; });
    if (pts.some((x) => x === null)) return;
    svg.append(s('polyline', { points: pts.join(' '), fill: 'none', stroke: PALETTE[ri % PALETTE.length], 'stroke-width': 2 }, s('title', {}, r.info.run_name)));
  });
  return svg;
}

export async function comparePage() {
  const q = hashParams();
  let ids = [];
  try { ids = JSON.parse(q.get('runs') || '[]'); } catch { ids = []; }
  const runs = (await Promise.all(ids.map((id) => mlflow.get('runs/get', { run_id: id }).then((r) => r.run, () => null)))).filter(Boolean);
  if (!runs.length) return h('section', {}, h('h1', {}, 'Compare runs'), h('p', { class: 'muted' }, 'No runs chosen: select runs in an experiment\'s table.'));
  const onlyDiff = q.get('all') !== '1';
  const keysOf = (kind) => [...new Set(runs.flatMap((r) => (r.data?.[kind] || []).map((x) => x.key)))].sort();
  const params = keysOf('params'); const metrics = keysOf('metrics');
  const differs = (kind, k) => new Set(runs.map((r) => String(valueOf(r, `${kind}.${k}`)))).size > 1;
  const head = h('tr', {}, h('th', { scope: 'col' }, 'Run'), runs.map((r) => h('th', { scope: 'col' }, h('a', { href: `#/experiments/${r.info.experiment_id}/runs/${r.info.run_id}` }, r.info.run_name || r.info.run_id))));
  const table = (id, kind, keys) => h('div', { class: 'table-wrap' }, h('table', { id },
    h('thead', {}, head.cloneNode(true)),
    h('tbody', {}, keys.filter((k) => !onlyDiff || kind === 'metrics' || differs(kind, k)).map((k) => h('tr', { class: differs(kind, k) ? 'diff' : null, dataset: { key: k } },
      h('th', { scope: 'row' }, k), runs.map((r) => { const v = valueOf(r, `${kind}.${k}`); return h('td', { class: kind === 'metrics' ? 'num' : null }, kind === 'metrics' ? fmtNum(v) : v ?? ''); }))))));
  const dims = [...params.map((k) => 'params.' + k), ...metrics.map((k) => 'metrics.' + k)];
  const xDim = q.get('x') || dims[0]; const yDim = q.get('y') || metrics.map((k) => 'metrics.' + k)[0] || dims[1] || dims[0];
  const plot = h('div', {}, scatter(runs, xDim, yDim));
  const pick = (label, id, value, on) => h('label', {}, label + ' ', h('select', { id, 'aria-label': label, onchange: (e) => on(e.target.value) }, dims.map((d) => h('option', { value: d, selected: d === value }, d))));
  let x = xDim; let y = yDim;
  const redraw = () => plot.replaceChildren(scatter(runs, x, y));
  const pcDims = [...params.filter((k) => differs('params', k)).map((k) => 'params.' + k), ...metrics.slice(0, 3).map((k) => 'metrics.' + k)];
  const chartHolder = h('div', {});
  const colored = runs.map((r, i) => ({ run_id: r.info.run_id, label: r.info.run_name || r.info.run_id, color: PALETTE[i % PALETTE.length] }));
  const showChart = (k) => chartHolder.replaceChildren(k ? metricChart(colored, k) : '');
  showChart(metrics[0]);
  return h('section', {},
    h('h1', {}, `Compare ${runs.length} runs`),
    h('div', { class: 'toolbar' }, h('label', {}, h('input', { type: 'checkbox', id: 'only-diff', checked: onlyDiff, onchange: (e) => {
      const p = new URLSearchParams(q); if (e.target.checked) p.delete('all'); else p.set('all', '1');
      location.hash = '#/compare-runs?' + p.toString();
    } }), ' only params that differ')),
    h('h2', {}, 'Parameters'), table('compare-params', 'params', params),
    h('h2', {}, 'Metrics'), table('compare-metrics', 'metrics', metrics),
    h('h2', {}, 'Metric over time'),
    h('label', {}, 'Metric ', h('select', { 'aria-label': 'Metric to chart', id: 'compare-chart', onchange: (e) => showChart(e.target.value) }, metrics.map((k) => h('option', { value: k }, k)))),
    chartHolder,
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, 'Scatter'), h('div', { class: 'toolbar' }, pick('x', 'scatter-x', x, (v) => { x = v; redraw(); }), pick('y', 'scatter-y', y, (v) => { y = v; redraw(); })), plot),
      h('div', { style: 'overflow:auto' }, h('h2', {}, 'Parallel coordinates'), pcDims.length > 1 ? parallel(runs, pcDims) : h('p', { class: 'muted' }, 'Needs two or more differing params or metrics.'))));
}
