// The model registry: models, their versions, aliases and tags, descriptions, and each
// version's lineage (dataset versions -> run -> logged model -> version -> aliases).

import { h, mlflow, keel, fmtTime, ask, write, hashParams } from './lib.js';

const refresh = () => window.dispatchEvent(new Event('keel:refresh'));
const enc = encodeURIComponent;
const q1 = (s) => s.replace(/'/g, "\\'");

export async function modelsPage() {
  const q = hashParams();
  const name = q.get('name') || '';
  const r = await mlflow.get('registered-models/search', { max_results: 1000, filter: name ? `name ILIKE '%${q1(name)}%'` : undefined });
  const models = r.registered_models || [];
  return h('section', {},
    h('h1', {}, 'Registered models'),
    h('div', { class: 'toolbar' }, h('input', { type: 'search', id: 'model-filter', value: name, 'aria-label': 'Filter models by name', placeholder: 'Filter by name',
      onkeydown: (e) => { if (e.key === 'Enter') location.hash = '#/models?name=' + enc(e.target.value); } })),
    models.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'models' },
      h('thead', {}, h('tr', {}, ['Name', 'Latest version', 'Aliases', 'Last modified', 'Description'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, models.map((m) => h('tr', {},
        h('td', {}, h('a', { href: `#/models/${enc(m.name)}` }, m.name)),
        h('td', {}, (m.latest_versions || []).map((v) => h('a', { href: `#/models/${enc(m.name)}/versions/${v.version}` }, 'v' + v.version)).slice(-1)),
        h('td', {}, (m.aliases || []).map((a) => h('span', { class: 'badge' }, `@${a.alias} → v${a.version}`))),
        h('td', {}, fmtTime(m.last_updated_timestamp)),
        h('td', {}, m.description || '')))))) : h('p', { class: 'muted' }, 'No registered models.'));
}

function aliasForm(name, versions, fixed) {
  return h('form', { class: 'toolbar', id: 'set-alias', onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    await write(() => mlflow.post('registered-models/alias', { name, alias: f.get('alias'), version: String(f.get('version') || fixed) }), refresh);
  } },
  h('input', { type: 'text', name: 'alias', required: true, 'aria-label': 'Alias', placeholder: 'alias (e.g. champion)' }),
  fixed ? null : h('select', { name: 'version', 'aria-label': 'Version' }, versions.map((v) => h('option', { value: v.version }, 'v' + v.version))),
  h('button', { type: 'submit' }, fixed ? 'Set alias on this version' : 'Set or move alias'));
}

function aliasBadges(name, aliases) {
  return aliases.map((a) => h('span', { class: 'badge', dataset: { alias: a } }, '@' + a, ' ',
    h('button', { type: 'button', 'aria-label': `Remove alias ${a}`, style: 'border:none;background:none;padding:0 2px', onclick: () => write(() => mlflow.del('registered-models/alias', { name, alias: a }), refresh) }, '×')));
}

function tagEditor(id, tags, set, del) {
  return h('div', { id },
    tags.length ? h('ul', {}, tags.map((t) => h('li', {}, h('code', {}, t.key), ' = ', t.value, ' ',
      h('button', { type: 'button', 'aria-label': `Delete tag ${t.key}`, onclick: () => write(() => del(t.key), refresh) }, 'Delete')))) : h('p', { class: 'muted' }, 'No tags.'),
    h('form', { class: 'toolbar', onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      await write(() => set(f.get('key'), f.get('value')), refresh);
    } }, h('input', { type: 'text', name: 'key', required: true, 'aria-label': 'Tag key', placeholder: 'key' }),
    h('input', { type: 'text', name: 'value', 'aria-label': 'Tag value', placeholder: 'value' }), h('button', { type: 'submit' }, 'Add tag')));
}

export async function modelPage(name) {
  const [m, vs, changes] = await Promise.all([
    mlflow.get('registered-models/get', { name }).then((r) => r.registered_model),
    mlflow.get('model-versions/search', { filter: `name='${q1(name)}'`, max_results: 10000 }).then((r) => r.model_versions || []),
    keel.get('registered-models/alias-history', { name }).then((r) => r.changes || []),
  ]);
  vs.sort((a, b) => Number(b.version) - Number(a.version));
  return h('section', {},
    h('div', { class: 'crumbs' }, h('a', { href: '#/models' }, 'Models'), ' /'),
    h('h1', {}, m.name),
    h('p', { id: 'description' }, m.description || h('span', { class: 'muted' }, 'No description.'), ' ',
      h('button', { type: 'button', id: 'edit-description', onclick: async () => {
        const d = await ask('Description', m.description || '');
        if (d !== null) await write(() => mlflow.patch('registered-models/update', { name, description: d }), refresh);
      } }, 'Edit')),
    h('h2', {}, 'Aliases'),
    h('div', { id: 'aliases' }, aliasBadges(name, (m.aliases || []).map((a) => a.alias)).map((b, i) => [b, ` → v${m.aliases[i].version} `])),
    aliasForm(name, vs),
    h('details', { id: 'alias-history', open: changes.length > 0 && changes.length <= 20 },
      h('summary', {}, `Alias history (${changes.length})`),
      changes.length ? h('table', {}, h('thead', {}, h('tr', {}, ['When', 'Alias', 'Change'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, [...changes].reverse().map((c) => h('tr', {}, h('td', {}, fmtTime(c.timestamp)), h('td', {}, '@' + c.alias),
          h('td', {}, c.version ? h('a', { href: `#/models/${enc(name)}/versions/${c.version}` }, `→ v${c.version}`) : 'removed')))))
        : h('p', { class: 'muted' }, 'No alias was set or moved yet.')),
    h('h2', {}, 'Versions'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'versions' },
      h('thead', {}, h('tr', {}, ['Version', 'Registered', 'Aliases', 'Stage', 'Status', 'Source run', 'Description'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, vs.map((v) => h('tr', { dataset: { version: v.version } },
        h('td', {}, h('a', { href: `#/models/${enc(name)}/versions/${v.version}` }, 'v' + v.version)),
        h('td', {}, fmtTime(v.creation_timestamp)),
        h('td', {}, (v.aliases || []).map((a) => h('span', { class: 'badge' }, '@' + a))),
        h('td', {}, v.current_stage || ''),
        h('td', {}, v.status || ''),
        h('td', {}, v.run_id ? h('a', { href: `#/experiments/_/runs/${v.run_id}` }, v.run_id.slice(0, 8)) : ''),
        h('td', {}, v.description || '')))))),
    h('h2', {}, 'Tags'),
    tagEditor('model-tags', m.tags || [], (key, value) => mlflow.post('registered-models/set-tag', { name, key, value }), (key) => mlflow.del('registered-models/delete-tag', { name, key })));
}

const rate = (x) => (x === null || x === undefined ? 'undefined' : Number(x).toFixed(3));

/** Horizontal bars of each group's selection, true positive and false positive rates. */
function fairnessBars(f) {
  const SVG = 'http://www.w3.org/2000/svg';
  const s = (tag, attrs, ...kids) => { const el = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v); el.append(...kids); return el; };
  const series = [['selection_rate', 'selection rate', '#0969da'], ['true_positive_rate', 'true positive rate', '#1a7f37'], ['false_positive_rate', 'false positive rate', '#cf222e']];
  const labelW = 140; const barW = 360; const rowH = 14; const groupH = rowH * 3 + 10;
  const W = labelW + barW + 60; const H = f.groups.length * groupH + 30;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': `Rates per group of ${f.sensitive}`, class: 'fairness-chart' });
  series.forEach(([, name, color], k) => svg.append(s('rect', { x: k * 170, y: 4, width: 10, height: 10, fill: color }), s('text', { x: k * 170 + 14, y: 13 }, name)));
  f.groups.forEach((g, i) => {
    const y0 = 24 + i * groupH;
    svg.append(s('text', { x: 0, y: y0 + rowH * 1.8 }, String(g.group).slice(0, 20)));
    series.forEach(([key, , color], k) => {
      const v = Math.min(Math.max(g[key], 0), 1); const y = y0 + k * rowH;
      svg.append(s('rect', { x: labelW, y, width: v * barW, height: rowH - 2, fill: color, 'data-group': g.group, 'data-rate': key }),
        s('text', { x: labelW + v * barW + 4, y: y + rowH - 3 }, rate(g[key])));
    });
  });
  return h('div', { style: 'overflow:auto;color:var(--fg)' }, svg);
}

/** A version's model card: what a person wrote, the data it learned from, its fairness. */
async function modelCard(name, version) {
  const c = (await keel.get('model-versions/card', { name, version })).card;
  const link = (format, label) => h('a', { href: `/api/keel/v1/model-versions/card?name=${enc(name)}&version=${enc(version)}&format=${format}`, download: `${name}-v${version}-card.${format === 'html' ? 'html' : 'md'}` }, label);
  const written = (id, title, key, text) => [
    h('h3', {}, title),
    h('p', { id, class: 'card-text', style: 'white-space:pre-wrap' }, text || h('span', { class: 'muted' }, 'Not written yet.'), ' ',
      h('button', { type: 'button', id: `edit-${id}`, onclick: async () => {
        const t = await ask(title, text || '');
        if (t !== null && t.trim()) await write(() => mlflow.post('model-versions/set-tag', { name, version, key, value: t }), refresh);
      } }, 'Edit'))];
  return h('section', { id: 'model-card', class: 'panel' },
    h('h2', {}, 'Model card'),
    h('p', {}, 'Download as ', link('markdown', 'Markdown'), ' or ', link('html', 'HTML'), '.'),
    written('intended-use', 'Intended use', 'keel.card.intended_use', c.intended_use),
    written('limitations', 'Limitations', 'keel.card.limitations', c.limitations),
    h('h3', {}, 'Training data'),
    c.datasets.length ? h('table', { id: 'card-datasets' }, h('thead', {}, h('tr', {}, ['Dataset', 'Context', 'Version', 'Content hash', 'Rows', 'Validation'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, c.datasets.map((d) => h('tr', {}, h('td', {}, d.name), h('td', {}, d.context || ''), h('td', {}, d.version || 'not a keel dataset'),
        h('td', {}, h('code', {}, (d.hash || d.digest).slice(0, 16))), h('td', {}, d.rows ?? ''), h('td', {}, d.validation || ''))))) : h('p', { class: 'muted' }, 'The run names no dataset.'),
    h('h3', {}, 'Fairness'),
    c.fairness.length ? c.fairness.map((f) => h('div', { class: 'fairness', dataset: { sensitive: f.sensitive } },
      h('p', {}, `By ${f.sensitive} on ${f.dataset} (${f.overall.count} rows); outcome ${f.target}, positive label ${f.positive_label}.`),
      fairnessBars(f),
      h('table', {}, h('thead', {}, h('tr', {}, ['Group', 'Rows', 'Selection rate', 'True positive rate', 'False positive rate', 'Accuracy'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, [...f.groups, f.overall].map((g) => h('tr', { dataset: { group: g.group } }, h('td', {}, g.group), h('td', {}, String(g.count)),
          h('td', {}, rate(g.selection_rate)), h('td', {}, rate(g.true_positive_rate)), h('td', {}, rate(g.false_positive_rate)), h('td', {}, rate(g.accuracy)))))),
      h('dl', { class: 'kv' },
        h('dt', {}, 'Demographic parity difference'), h('dd', { class: 'dpd' }, rate(f.demographic_parity_difference)),
        h('dt', {}, 'Demographic parity ratio'), h('dd', {}, rate(f.demographic_parity_ratio)),
        h('dt', {}, 'Equalized odds difference'), h('dd', { class: 'eod' }, rate(f.equalized_odds_difference)),
        h('dt', {}, 'Equalized odds ratio'), h('dd', {}, rate(f.equalized_odds_ratio))))) :
      h('p', { class: 'muted' }, 'Not evaluated: ', h('code', {}, `keel models fairness ${name} ${version} --data DATASET --sensitive COLUMN`), '.'),
    c.missing.length ? [h('h3', {}, 'Not yet on this card'), h('ul', { id: 'card-missing' }, c.missing.map((m) => h('li', {}, m)))] : null);
}

/** The lineage of a version as a left-to-right graph. */
function lineage(columns) {
  const SVG = 'http://www.w3.org/2000/svg';
  const s = (tag, attrs, ...kids) => { const el = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v); el.append(...kids); return el; };
  const colW = 220; const rowH = 56; const boxW = 190; const boxH = 40;
  const rows = Math.max(...columns.map((c) => c.nodes.length), 1);
  const W = columns.length * colW; const H = rows * rowH + 30;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Lineage', id: 'lineage' });
  const pos = columns.map((c, ci) => c.nodes.map((_, ni) => [ci * colW + 10, 26 + ni * rowH + (rows - c.nodes.length) * rowH / 2]));
  columns.forEach((c, ci) => {
    svg.append(s('text', { x: ci * colW + 10, y: 14 }, c.title));
    if (ci > 0) for (const [x, y] of pos[ci]) for (const [px, py] of pos[ci - 1]) svg.append(s('line', { x1: px + boxW, y1: py + boxH / 2, x2: x, y2: y + boxH / 2, stroke: 'currentColor', 'stroke-opacity': 0.4 }));
    c.nodes.forEach((n, ni) => {
      const [x, y] = pos[ci][ni];
      const box = s('g', { 'data-node': c.title },
        s('rect', { x, y, width: boxW, height: boxH, rx: 6, fill: 'none', stroke: 'currentColor' }),
        s('text', { x: x + 8, y: y + 16 }, n.label.slice(0, 28)),
        s('text', { x: x + 8, y: y + 32, 'fill-opacity': 0.7 }, (n.sub || '').slice(0, 30)));
      if (n.href) { const a = s('a', { href: n.href }); a.append(box); svg.append(a); } else svg.append(box);
    });
  });
  return h('div', { style: 'overflow:auto;color:var(--fg)' }, svg);
}

export async function versionPage(name, version) {
  const v = (await mlflow.get('model-versions/get', { name, version })).model_version;
  let run = null;
  if (v.run_id) run = await mlflow.get('runs/get', { run_id: v.run_id }).then((r) => r.run, () => null);
  const datasets = await Promise.all((run?.inputs?.dataset_inputs || []).map(async (inp) => {
    const d = inp.dataset;
    const kv = await keel.get(`datasets/by-hash/${enc(d.digest)}`).then((r) => (r.versions || [])[0], () => null);
    return kv ? { label: `${kv.name} v${kv.version}`, sub: d.digest, href: `#/datasets/${enc(kv.name)}?v=${kv.version}` } : { label: d.name, sub: d.digest };
  }));
  const columns = [
    { title: 'Data', nodes: datasets.length ? datasets : [{ label: 'no dataset logged', sub: '' }] },
    { title: 'Run', nodes: run ? [{ label: run.info.run_name || run.info.run_id, sub: run.info.run_id.slice(0, 12), href: `#/experiments/${run.info.experiment_id}/runs/${run.info.run_id}` }] : [{ label: 'no run', sub: v.source }] },
    { title: 'Logged model', nodes: [{ label: v.model_id || v.source.split('/').slice(-1)[0], sub: v.source.slice(0, 30),
      href: v.model_id && run ? `#/experiments/${run.info.experiment_id}/models/${v.model_id}` : run ? `#/experiments/${run.info.experiment_id}/runs/${run.info.run_id}/artifacts` : null }] },
    { title: 'Version', nodes: [{ label: `${name} v${version}`, sub: v.current_stage || v.status }] },
    { title: 'Aliases', nodes: (v.aliases || []).length ? v.aliases.map((a) => ({ label: '@' + a, sub: `models:/${name}@${a}` })) : [{ label: 'no alias', sub: '' }] },
  ];
  return h('section', {},
    h('div', { class: 'crumbs' }, h('a', { href: '#/models' }, 'Models'), ' / ', h('a', { href: `#/models/${enc(name)}` }, name), ' /'),
    h('h1', {}, `${name} version ${version}`),
    h('dl', { class: 'kv panel' },
      h('dt', {}, 'Registered'), h('dd', {}, fmtTime(v.creation_timestamp)),
      h('dt', {}, 'Source'), h('dd', {}, v.source),
      h('dt', {}, 'Run'), h('dd', {}, run ? h('a', { href: `#/experiments/${run.info.experiment_id}/runs/${run.info.run_id}` }, run.info.run_name || v.run_id) : v.run_id || ''),
      h('dt', {}, 'Stage'), h('dd', {}, v.current_stage || ''),
      h('dt', {}, 'Status'), h('dd', {}, v.status || '')),
    h('h2', {}, 'Description'),
    h('p', { id: 'description' }, v.description || h('span', { class: 'muted' }, 'No description.'), ' ',
      h('button', { type: 'button', id: 'edit-description', onclick: async () => {
        const d = await ask('Description', v.description || '');
        if (d !== null) await write(() => mlflow.patch('model-versions/update', { name, version, description: d }), refresh);
      } }, 'Edit')),
    h('h2', {}, 'Aliases'),
    h('div', { id: 'aliases' }, aliasBadges(name, v.aliases || [])),
    aliasForm(name, [], version),
    h('h2', {}, 'Lineage'),
    lineage(columns),
    await modelCard(name, version),
    h('h2', {}, 'Tags'),
    tagEditor('version-tags', v.tags || [], (key, value) => mlflow.post('model-versions/set-tag', { name, version, key, value }), (key) => mlflow.del('model-versions/delete-tag', { name, version, key })));
}
