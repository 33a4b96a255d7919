// An experiment's runs: server-side paging, MLflow's filter grammar, sorting on any column,
// chosen param/metric/tag columns, child runs grouped under their parent, selection for
// comparison and charts. Everything the table shows is in the address, so links can be shared.

import { h, mlflow, fmtTime, fmtDuration, fmtNum, hashParams, write, ask, PALETTE } from './lib.js';
import { metricChart } from './chart.js';

const FIXED = [
  ['attributes.run_name', 'Run'],
  ['attributes.start_time', 'Created'],
  ['duration', 'Duration'],
  ['attributes.status', 'Status'],
  ['attributes.user_id', 'User'],
];

/** Changes some of the page's address parameters (a new history entry). */
function go(params) {
  const q = hashParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') q.delete(k); else q.set(k, v);
  }
  if (document.activeElement?.id) sessionStorage.setItem('keel.focus', document.activeElement.id);
  const path = location.hash.slice(1).split('?')[0];
  const s = q.toString();
  location.hash = '#' + path + (s ? '?' + s : '');
}

/** A column id (`metrics.loss`) -> the order_by term MLflow understands. */
function orderTerm(col, asc) {
  const dir = asc ? ' ASC' : ' DESC';
  const m = col.match(/^(metrics|params|tags)\.(.*)$/);
  if (m) return `${m[1]}.\`${m[2]}\`${dir}`;
  if (col === 'duration') return null;
  return col + dir;
}

function cell(run, col) {
  const i = run.info; const d = run.data || {};
  const find = (list, k) => (list || []).find((x) => x.key === k);
  const m = col.match(/^(metrics|params|tags)\.(.*)$/);
  if (m) {
    const x = find(d[m[1]], m[2]);
    return x === undefined ? '' : m[1] === 'metrics' ? x.value : x.value;
  }
  switch (col) {
    case 'attributes.start_time': return fmtTime(i.start_time);
    case 'duration': return i.end_time ? fmtDuration(i.end_time - i.start_time) : '';
    case 'attributes.status': return i.status;
    case 'attributes.user_id': return i.user_id || '';
    default: return i.run_name;
  }
}

function filterError(filter, e) {
  const m = /at position (\d+)/.exec(e.message);
  const box = h('div', { class: 'error', role: 'alert', id: 'filter-error' }, e.message);
  if (m) box.append(h('pre', {}, filter + '\n' + ' '.repeat(Number(m[1])) + '^'));
  return box;
}

export async function runsPage(expId) {
  const q = hashParams();
  const filter = q.get('filter') || '';
  const order = q.get('order') || 'attributes.start_time';
  const asc = q.get('asc') === '1';
  const deleted = q.get('deleted') === '1';
  const group = q.get('group') !== '0';
  const size = Math.min(Number(q.get('n')) || 50, 1000); // MLflow's first page holds 50 too
  const token = q.get('page') || undefined;
  const chartKey = q.get('chart') || '';
  const selected = new Set((q.get('sel') || '').split(',').filter(Boolean));

  // The experiment and the page of runs, asked for at once.
  const term = orderTerm(order, asc);
  const [exp, found] = await Promise.all([
    mlflow.get('experiments/get', { experiment_id: expId }).then((r) => r.experiment),
    mlflow.post('runs/search', {
      experiment_ids: [expId], filter, max_results: size, page_token: token,
      order_by: term ? [term] : [], run_view_type: deleted ? 'DELETED_ONLY' : 'ACTIVE_ONLY',
    }).then((r) => ({ r }), (e) => ({ e })),
  ]);
  const runs = found.r?.runs || []; const next = found.r?.next_page_token || null; const error = found.e || null;

  // Columns: chosen in the address, else the first few metrics and params of this page.
  const keys = { metrics: new Set(), params: new Set(), tags: new Set() };
  for (const r of runs) for (const kind of ['metrics', 'params', 'tags']) for (const x of r.data?.[kind] || []) {
    if (kind !== 'tags' || !x.key.startsWith('mlflow.')) keys[kind].add(x.key);
  }
  const chosen = q.has('cols')
    ? q.get('cols').split(',').filter(Boolean).map(decodeURIComponent)
    : [...[...keys.metrics].sort().slice(0, 6).map((k) => 'metrics.' + k), ...[...keys.params].sort().slice(0, 6).map((k) => 'params.' + k)];
  const columns = [...FIXED, ...chosen.map((c) => [c, c.replace(/^(metrics|params|tags)\./, '')])];

  // Child runs under their parent when the parent is on this page.
  const byId = new Map(runs.map((r) => [r.info.run_id, r]));
  const parentOf = (r) => (r.data?.tags || []).find((t) => t.key === 'mlflow.parentRunId')?.value;
  const children = new Map();
  const top = [];
  for (const r of runs) {
    const p = parentOf(r);
    if (group && p && byId.has(p)) {
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(r);
    } else top.push(r);
  }
  const ordered = [];
  for (const r of top) {
    ordered.push([r, false]);
    for (const c of children.get(r.info.run_id) || []) ordered.push([c, true]);
  }

  const setSel = () => go({ sel: [...selected].join(',') });
  const head = h('tr', {},
    h('th', { scope: 'col' }, h('input', {
      type: 'checkbox', 'aria-label': 'Select all runs on this page',
      checked: runs.length > 0 && runs.every((r) => selected.has(r.info.run_id)),
      onchange: (e) => { for (const r of runs) { if (e.target.checked) selected.add(r.info.run_id); else selected.delete(r.info.run_id); } setSel(); },
    })),
    ...columns.map(([id, label]) => {
      const sorted = order === id;
      const kind = id.split('.')[0];
      return h('th', { scope: 'col', class: kind === 'metrics' ? 'num' : null, 'aria-sort': sorted ? (asc ? 'ascending' : 'descending') : null },
        id === 'duration' ? label : h('button', {
          class: 'sort', id: 'sort-' + id, title: `Sort by ${id}`,
          onclick: () => go({ order: id, asc: sorted && !asc ? '1' : '', page: '', prev: '' }),
        }, label, sorted ? (asc ? ' ▲' : ' ▼') : ''));
    }));
  const body = h('tbody', {}, ordered.map(([r, child]) => {
    const id = r.info.run_id;
    return h('tr', { class: [selected.has(id) ? 'selected' : '', child ? 'child' : ''].join(' '), dataset: { runId: id } },
      h('td', {}, h('input', {
        type: 'checkbox', checked: selected.has(id), 'aria-label': `Select ${r.info.run_name}`, id: 'sel-' + id,
        onchange: (e) => { if (e.target.checked) selected.add(id); else selected.delete(id); setSel(); },
      })),
      ...columns.map(([col]) => {
        const v = cell(r, col);
        if (col === 'attributes.run_name') return h('td', {}, child ? '↳ ' : '', h('a', { href: `#/experiments/${expId}/runs/${id}` }, v || id));
        if (col === 'attributes.status') return h('td', {}, h('span', { class: 'badge ' + v }, v));
        return h('td', { class: col.startsWith('metrics.') ? 'num' : null }, typeof v === 'number' ? fmtNum(v) : v);
      }));
  }));

  const search = h('input', {
    type: 'search', id: 'filter', value: filter, 'aria-label': 'Filter runs (MLflow search syntax)',
    placeholder: "metrics.rmse < 1 and params.model = 'tree'",
    onkeydown: (e) => { if (e.key === 'Enter') go({ filter: e.target.value, page: '', prev: '' }); },
  });

  // The column chooser.
  const chooser = h('details', { id: 'columns' }, h('summary', {}, `Columns (${chosen.length})`),
    h('div', { class: 'cols' }, ['metrics', 'params', 'tags'].flatMap((kind) => [...keys[kind]].sort().map((k) => {
      const id = `${kind}.${k}`;
      return h('label', {}, h('input', {
        type: 'checkbox', checked: chosen.includes(id), 'aria-label': id,
        onchange: (e) => {
          const next = e.target.checked ? [...chosen, id] : chosen.filter((c) => c !== id);
          go({ cols: next.map(encodeURIComponent).join(',') || ',' });
        },
      }), ' ', id);
    }))));

  const selRuns = runs.filter((r) => selected.has(r.info.run_id));
  const compare = h('button', {
    type: 'button', class: 'primary', id: 'compare', disabled: selected.size < 2,
    onclick: () => { location.hash = `#/compare-runs?runs=${encodeURIComponent(JSON.stringify([...selected]))}&experiments=${encodeURIComponent(JSON.stringify([expId]))}`; },
  }, `Compare (${selected.size})`);
  const bulk = deleted
    ? h('button', { type: 'button', disabled: !selected.size, onclick: () => write(async () => { for (const id of selected) await mlflow.post('runs/restore', { run_id: id }); }, () => go({ sel: '' })) }, 'Restore')
    : h('button', { type: 'button', class: 'danger', disabled: !selected.size, onclick: () => write(async () => { for (const id of selected) await mlflow.post('runs/delete', { run_id: id }); }, () => go({ sel: '' })) }, 'Delete');
  const metricKeys = [...keys.metrics].sort();
  const chartPick = h('label', {}, 'Chart ', h('select', {
    id: 'chart-metric', 'aria-label': 'Chart a metric',
    onchange: (e) => go({ chart: e.target.value }),
  }, h('option', { value: '' }, '—'), metricKeys.map((k) => h('option', { value: k, selected: k === chartKey }, k))));

  let chart = null;
  if (chartKey) {
    const chartRuns = (selRuns.length ? selRuns : runs.slice(0, 10)).map((r, i) => ({ run_id: r.info.run_id, label: r.info.run_name, color: PALETTE[i % PALETTE.length] }));
    if (chartRuns.length) chart = metricChart(chartRuns, chartKey);
  }

  const pager = h('div', { class: 'toolbar' },
    h('button', { type: 'button', id: 'prev-page', disabled: !token, onclick: () => {
      const stack = (q.get('prev') || '').split(',');
      const back = stack.pop();
      go({ page: back, prev: stack.join(',') });
    } }, 'Previous page'),
    h('button', { type: 'button', id: 'next-page', disabled: !next, onclick: () => go({ page: next, prev: [q.get('prev') || '', token || ''].join(',').replace(/^,/, '') }) }, 'Next page'),
    h('span', { class: 'muted' }, `${runs.length} runs on this page`),
    h('label', {}, 'Page size ', h('select', { 'aria-label': 'Page size', onchange: (e) => go({ n: e.target.value, page: '', prev: '' }) },
      [25, 50, 100, 250, 1000].map((n) => h('option', { value: n, selected: n === size }, n)))));

  return h('section', {},
    h('div', { class: 'crumbs' }, h('a', { href: '#/experiments' }, 'Experiments'), ' / '),
    h('h1', {}, exp.name, ' ', h('button', { type: 'button', 'aria-label': 'Rename experiment', onclick: async () => {
      const n = await ask('New name', exp.name);
      if (n) await write(() => mlflow.post('experiments/update', { experiment_id: expId, new_name: n }), () => window.dispatchEvent(new Event('keel:refresh')));
    } }, 'Rename')),
    h('p', { class: 'muted' }, `Experiment ${expId} · ${exp.artifact_location}`),
    h('div', { class: 'toolbar' }, search, h('button', { type: 'button', onclick: () => go({ filter: search.value, page: '', prev: '' }) }, 'Search')),
    error ? filterError(filter, error) : null,
    h('div', { class: 'toolbar' }, compare, bulk, chartPick, chooser,
      h('label', {}, h('input', { type: 'checkbox', id: 'group', checked: group, onchange: (e) => go({ group: e.target.checked ? '' : '0' }) }), ' group child runs'),
      h('a', { href: `#/experiments/${expId}${deleted ? '' : '?deleted=1'}` }, deleted ? 'Active runs' : 'Deleted runs')),
    chart,
    h('div', { class: 'table-wrap' }, h('table', { id: 'runs' }, h('thead', {}, head), body)),
    pager);
}
