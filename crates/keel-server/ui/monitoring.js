// Monitoring: the checks `keel monitor report`, `keel monitor watch` and `keel server --monitor`
// record as runs of the keel-monitoring experiment. The list shows each watched model version's
// latest check; a model's page shows drift, live and estimated performance and latency over its
// checks, the alerts that fired, the retraining history (each retraining and each comparison of
// a challenger with the champion, with its decision and why) and the latest check's report (each
// column's reference against current distribution).

import { h, mlflow, fmtTime, fmtNum, artifactUrl, PALETTE } from './lib.js';

const EXPERIMENT = 'keel-monitoring';
const enc = encodeURIComponent;
const q1 = (s) => s.replace(/'/g, "\\'");
const tag = (run, k) => ((run.data.tags || []).find((t) => t.key === k) || {}).value;
const param = (run, k) => ((run.data.params || []).find((t) => t.key === k) || {}).value;
const metric = (run, k) => ((run.data.metrics || []).find((m) => m.key === k) || {}).value;
/** Whether a run is a drift check (the loop's steps are runs of the same experiment). */
const isCheck = (run) => (tag(run, 'keel.monitor.check') || 'drift') === 'drift';

/** The experiment's id (none before the first check) and its checks, newest first. */
async function checks(filter) {
  let exp;
  try {
    exp = (await mlflow.get('experiments/get-by-name', { experiment_name: EXPERIMENT })).experiment;
  } catch (e) {
    if (e.code === 'RESOURCE_DOES_NOT_EXIST') return { id: null, runs: [] };
    throw e;
  }
  const runs = [];
  let token;
  // Every check, page by page (a model watched every ten minutes makes 1,008 a week).
  do {
    const r = await mlflow.post('runs/search', { experiment_ids: [exp.experiment_id], filter, order_by: ['attributes.start_time DESC'], max_results: 1000, page_token: token });
    runs.push(...(r.runs || []));
    token = r.next_page_token;
  } while (token && runs.length < 10000);
  return { id: exp.experiment_id, runs };
}

const runLink = (expId, run, text) => h('a', { href: `#/experiments/${expId}/runs/${run.info.run_id}` }, text);

export async function monitoringPage() {
  const { id, runs } = await checks(undefined);
  const latest = new Map();
  for (const r of runs.filter(isCheck)) {
    const key = `${tag(r, 'keel.monitor.model')}/${tag(r, 'keel.monitor.version')}`;
    if (!latest.has(key)) latest.set(key, r);
  }
  const rows = [...latest.values()];
  return h('section', {},
    h('h1', {}, 'Monitoring'),
    h('p', { class: 'muted' }, 'Each served model version\'s latest check: ', h('code', {}, 'keel monitor report'), ', ', h('code', {}, 'keel monitor watch'), ' or ', h('code', {}, 'keel server --monitor'), '.'),
    rows.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'monitored' },
      h('thead', {}, h('tr', {}, ['Model', 'Version', 'Last check', 'Rows', 'Drift share', 'Drifted', 'Alerts', 'Check'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((r) => {
        const model = tag(r, 'keel.monitor.model');
        const drifted = tag(r, 'keel.monitor.dataset_drifted') === 'true';
        return h('tr', { dataset: { model } },
          h('td', {}, h('a', { href: `#/monitoring/${enc(model)}` }, model)),
          h('td', {}, h('a', { href: `#/models/${enc(model)}/versions/${enc(tag(r, 'keel.monitor.version') || '')}` }, 'v' + tag(r, 'keel.monitor.version'))),
          h('td', {}, fmtTime(r.info.start_time)),
          h('td', {}, fmtNum(metric(r, 'current_rows'))),
          h('td', {}, fmtNum(metric(r, 'drift_share'))),
          h('td', { class: drifted ? 'bad' : '' }, drifted ? 'yes' : 'no'),
          h('td', {}, tag(r, 'keel.monitor.alerts') || ''),
          h('td', {}, runLink(id, r, r.info.run_id.slice(0, 8))));
      })))) : h('p', { class: 'muted' }, 'No check recorded yet.'));
}

/** A line chart over time: series [{label, points: [[ms, value]]}], a dashed level at `threshold`. */
function timeChart(id, title, series, threshold) {
  const SVG = 'http://www.w3.org/2000/svg';
  const s = (tag, attrs, ...kids) => { const el = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v); el.append(...kids); return el; };
  const W = 560; const H = 220; const L = 56; const R = 12; const T = 12; const B = 28;
  const pts = series.flatMap((x) => x.points).filter((p) => Number.isFinite(p[1]));
  const fig = h('figure', { class: 'panel', id, dataset: { points: String(pts.length) } }, h('figcaption', {}, h('strong', {}, title)));
  if (!pts.length) { fig.append(h('p', { class: 'muted' }, 'No values.')); return fig; }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  if (x1 === x0) { x0 -= 60000; x1 += 60000; }
  const vals = pts.map((p) => p[1]).concat(threshold === undefined ? [] : [threshold]);
  let [y0, y1] = [Math.min(0, ...vals), Math.max(...vals)];
  if (y1 === y0) y1 = y0 + 1;
  y1 += (y1 - y0) * 0.08;
  const X = (t) => L + (t - x0) / (x1 - x0) * (W - L - R);
  const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title });
  for (let k = 0; k <= 4; k++) {
    const v = y0 + (y1 - y0) * k / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: 'currentColor', 'stroke-opacity': 0.12 }),
      s('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: 'currentColor' }, fmtNum(v)));
  }
  for (const t of [x0, (x0 + x1) / 2, x1]) svg.append(s('text', { x: X(t), y: H - 8, 'text-anchor': 'middle', 'font-size': 11, fill: 'currentColor' }, fmtTime(t).slice(5, 16)));
  if (threshold !== undefined) svg.append(s('line', { x1: L, x2: W - R, y1: Y(threshold), y2: Y(threshold), stroke: '#c0392b', 'stroke-dasharray': '5 4' }));
  series.forEach((x, i) => {
    const p = x.points.filter((q) => Number.isFinite(q[1]));
    const color = PALETTE[i % PALETTE.length];
    if (p.length > 1) svg.append(s('polyline', { points: p.map((q) => `${X(q[0])},${Y(q[1])}`).join(' '), fill: 'none', stroke: color, 'stroke-width': 2 }));
    for (const q of p) svg.append(s('circle', { cx: X(q[0]), cy: Y(q[1]), r: 3, fill: color }, s('title', {}, `${x.label}: ${fmtNum(q[1])} at ${fmtTime(q[0])}`)));
  });
  fig.append(svg, h('div', { class: 'legend' }, series.map((x, i) => h('span', { style: `--c:${PALETTE[i % PALETTE.length]}` }, x.label))));
  return fig;
}

export async function monitoredModelPage(model) {
  const { id, runs: all } = await checks(`tags.\`keel.monitor.model\` = '${q1(model)}'`);
  const newest = all.filter(isCheck);
  const loopSteps = all.filter((r) => !isCheck(r));
  if (!newest.length) return h('section', {}, h('h1', {}, model), h('p', { class: 'muted' }, 'No check of this model is recorded.'), ...retraining(id, loopSteps));
  const runs = [...newest].reverse();
  const at = (r) => r.info.start_time;
  const line = (label, key) => ({ label, points: runs.map((r) => [at(r), metric(r, key)]).filter((p) => p[1] !== undefined) });
  const last = newest[0];
  const columns = [...new Set(runs.flatMap((r) => (r.data.metrics || []).map((m) => m.key).filter((k) => k.startsWith('drift.')).map((k) => k.slice(6))))].sort();
  const performance = [...new Set(runs.flatMap((r) => (r.data.metrics || []).map((m) => m.key).filter((k) => k.startsWith('realised.') || k.startsWith('estimated.'))))].sort();
  const byMetric = new Map();
  for (const k of performance) {
    const name = k.slice(k.indexOf('.') + 1);
    if (!byMetric.has(name)) byMetric.set(name, []);
    byMetric.get(name).push(line(k.slice(0, k.indexOf('.')), k));
  }
  const alerts = newest.filter((r) => tag(r, 'keel.monitor.firing') === 'true');
  const share = Number(param(last, 'drift_share_threshold'));
  return h('section', {},
    h('div', { class: 'crumbs' }, h('a', { href: '#/monitoring' }, 'Monitoring'), ' /'),
    h('h1', {}, model),
    h('p', {}, `${runs.length} checks; the latest `, runLink(id, last, fmtTime(at(last))), ` read ${fmtNum(metric(last, 'current_rows'))} rows of v${tag(last, 'keel.monitor.version')} against ${param(last, 'reference') || '?'}.`),
    h('h2', {}, 'Drift'),
    h('div', { class: 'charts' },
      timeChart('drift-share', 'Share of drifted columns', [line('drift share', 'drift_share')], Number.isFinite(share) ? share : undefined),
      ...columns.map((c) => timeChart(`drift-${c}`, `${c}: drift score`, [line(c, 'drift.' + c)]))),
    h('h2', {}, 'Performance'),
    byMetric.size ? h('div', { class: 'charts', id: 'performance' }, ...[...byMetric].map(([name, series]) => timeChart(`metric-${name}`, name, series)))
      : h('p', { class: 'muted' }, 'No ground truth or probabilities logged yet.'),
    h('div', { class: 'charts' }, timeChart('latency', 'Request latency (ms)', [line('p50', 'latency_p50_ms'), line('p99', 'latency_p99_ms')])),
    h('h2', {}, `Alerts (${alerts.length})`),
    alerts.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'alerts' },
      h('thead', {}, h('tr', {}, ['When', 'Version', 'Alerts', 'Check'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, alerts.map((r) => h('tr', {}, h('td', {}, fmtTime(at(r))), h('td', {}, 'v' + tag(r, 'keel.monitor.version')), h('td', {}, tag(r, 'keel.monitor.alerts')), h('td', {}, runLink(id, r, r.info.run_id.slice(0, 8))))))))
      : h('p', { class: 'muted' }, 'No alert fired.'),
    ...retraining(id, loopSteps),
    h('h2', {}, 'Latest report'),
    await report(last));
}

/** The retraining history: each retraining and each comparison, with its decision and why. */
function retraining(id, steps) {
  return [
    h('h2', {}, `Retraining (${steps.length})`),
    steps.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'retraining' },
      h('thead', {}, h('tr', {}, ['When', 'Step', 'Champion', 'Challenger', 'Decision', 'Why', 'Run'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, steps.map((r) => h('tr', { dataset: { step: tag(r, 'keel.monitor.check') || '' } },
        h('td', {}, fmtTime(r.info.start_time)),
        h('td', {}, tag(r, 'keel.monitor.check')),
        h('td', {}, 'v' + (param(r, 'champion_version') || '?')),
        h('td', {}, param(r, 'challenger_version') ? 'v' + param(r, 'challenger_version') : ''),
        h('td', { class: tag(r, 'keel.monitor.decision') === 'promoted' ? 'good' : '' }, tag(r, 'keel.monitor.decision') || ''),
        h('td', {}, param(r, 'reason') || (param(r, 'data') ? `${tag(r, 'keel.monitor.decision') === 'dry-run' ? 'would train' : 'trained'} on ${param(r, 'data')}` : '')),
        h('td', {}, runLink(id, r, r.info.run_id.slice(0, 8))))))))
      : h('p', { class: 'muted' }, 'No retraining recorded.'),
  ];
}

/** The check's HTML report, in a frame that runs no script. */
async function report(run) {
  const r = await fetch(artifactUrl(run.info.run_id, 'report.html'));
  if (!r.ok) return h('p', { class: 'muted' }, 'This check stored no report.');
  return h('iframe', { class: 'preview', id: 'latest-report', sandbox: '', title: 'Latest report', srcdoc: await r.text() });
}
