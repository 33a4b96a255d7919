// A run: what it logged (params, latest metrics, tags, dataset inputs, logged models, the
// versions registered from it), its metric charts and its artifacts; rename, tag, describe,
// delete and restore.

import { h, mlflow, keel, fmtTime, fmtDuration, fmtNum, ask, write, tabs } from './lib.js';
import { metricChart } from './chart.js';
import { artifactBrowser, runArtifacts, proxiedArtifacts } from './artifacts.js';

const refresh = () => window.dispatchEvent(new Event('keel:refresh'));

function kvTable(id, rows, headers, actions) {
  if (!rows.length) return h('p', { class: 'muted' }, 'None.');
  return h('div', { class: 'table-wrap' }, h('table', { id },
    h('thead', {}, h('tr', {}, headers.map((c) => h('th', { scope: 'col' }, c)), actions ? h('th', {}) : null)),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.cells.map((c, i) => h('td', { class: r.num && i === 1 ? 'num' : null }, c)), actions ? h('td', {}, actions(r)) : null)))));
}

async function datasetLinks(inputs) {
  return Promise.all(inputs.map(async (inp) => {
    const d = inp.dataset;
    let link = null;
    try {
      const r = await keel.get(`datasets/by-hash/${encodeURIComponent(d.digest)}`);
      const v = (r.versions || [])[0];
      if (v) link = h('a', { href: `#/datasets/${encodeURIComponent(v.name)}?v=${v.version}` }, `${v.name} v${v.version}`);
    } catch { /* not a keel dataset version */ }
    const ctx = (inp.tags || []).find((t) => t.key === 'mlflow.data.context')?.value || '';
    return { cells: [d.name, d.digest, ctx, d.source_type, link || h('span', { class: 'muted' }, '—')] };
  }));
}

export async function runPage(expId, runId, tab, rest) {
  const run = (await mlflow.get('runs/get', { run_id: runId })).run;
  const info = run.info; const data = run.data || {};
  expId = info.experiment_id;
  const tags = data.tags || [];
  const tag = (k) => tags.find((t) => t.key === k)?.value;
  const current = tab === 'artifacts' ? 'artifacts' : tab === 'metrics' || tab === 'model-metrics' ? 'metrics' : 'overview';
  const deleted = info.lifecycle_stage === 'deleted';
  const [versions, inputs, models] = await Promise.all([
    mlflow.get('model-versions/search', { filter: `run_id='${runId}'` }).then((r) => r.model_versions || [], () => []),
    datasetLinks(run.inputs?.dataset_inputs || []),
    Promise.all((run.outputs?.model_outputs || []).map((o) => mlflow.get(`logged-models/${o.model_id}`).then((r) => r.model, () => null))),
  ]);
  const show = (t) => { location.hash = `#/experiments/${expId}/runs/${runId}${t === 'overview' ? '' : '/' + t}`; };
  const header = h('div', {},
    h('div', { class: 'crumbs' }, h('a', { href: '#/experiments' }, 'Experiments'), ' / ', h('a', { href: `#/experiments/${expId}` }, `Experiment ${expId}`), ' /'),
    h('h1', {}, info.run_name || runId, ' ', h('span', { class: 'badge ' + info.status }, info.status), deleted ? h('span', { class: 'badge FAILED' }, 'deleted') : null),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', id: 'rename-run', onclick: async () => {
        const n = await ask('Run name', info.run_name);
        if (n) await write(() => mlflow.post('runs/update', { run_id: runId, run_name: n }), refresh);
      } }, 'Rename'),
      h('button', { type: 'button', id: 'describe-run', onclick: async () => {
        const n = await ask('Description', tag('mlflow.note.content') || '');
        if (n !== null) await write(() => mlflow.post('runs/set-tag', { run_id: runId, key: 'mlflow.note.content', value: n }), refresh);
      } }, 'Edit description'),
      deleted
        ? h('button', { type: 'button', id: 'restore-run', onclick: () => write(() => mlflow.post('runs/restore', { run_id: runId }), refresh) }, 'Restore')
        : h('button', { type: 'button', class: 'danger', id: 'delete-run', onclick: () => write(() => mlflow.post('runs/delete', { run_id: runId }), refresh) }, 'Delete')));

  let content;
  if (current === 'artifacts') {
    content = artifactBrowser(runArtifacts(runId), rest ? decodeURIComponent(rest) : null);
  } else if (current === 'metrics') {
    const keys = (data.metrics || []).map((m) => m.key).sort();
    content = keys.length
      ? h('div', { class: 'grid2', id: 'charts' }, keys.map((k) => metricChart([{ run_id: runId, label: info.run_name || runId }], k)))
      : h('p', { class: 'muted' }, 'No metrics.');
  } else {
    const note = tag('mlflow.note.content');
    const userTags = tags.filter((t) => !t.key.startsWith('mlflow.'));
    const history = (() => { try { return JSON.parse(tag('mlflow.log-model.history') || '[]'); } catch { return []; } })();
    content = h('div', {},
      note ? h('p', { id: 'description' }, note) : null,
      h('div', { class: 'grid2' },
        h('div', { class: 'panel' }, h('dl', { class: 'kv' },
          h('dt', {}, 'Run ID'), h('dd', {}, runId),
          h('dt', {}, 'Experiment'), h('dd', {}, h('a', { href: `#/experiments/${expId}` }, expId)),
          h('dt', {}, 'Started'), h('dd', {}, fmtTime(info.start_time)),
          h('dt', {}, 'Duration'), h('dd', {}, info.end_time ? fmtDuration(info.end_time - info.start_time) : 'running'),
          h('dt', {}, 'User'), h('dd', {}, info.user_id || ''),
          h('dt', {}, 'Source'), h('dd', {}, tag('mlflow.source.name') || ''),
          tag('mlflow.parentRunId') ? [h('dt', {}, 'Parent run'), h('dd', {}, h('a', { href: `#/experiments/${expId}/runs/${tag('mlflow.parentRunId')}` }, tag('mlflow.parentRunId')))] : null,
          h('dt', {}, 'Artifacts'), h('dd', {}, info.artifact_uri))),
        h('div', { class: 'panel' }, h('h2', {}, 'Registered versions'),
          versions.length ? h('ul', { id: 'registered' }, versions.map((v) => h('li', {}, h('a', { href: `#/models/${encodeURIComponent(v.name)}/versions/${v.version}` }, `${v.name} v${v.version}`), (v.aliases || []).map((a) => [' ', h('span', { class: 'badge' }, '@' + a)])))) : h('p', { class: 'muted' }, 'None.'),
          h('h2', {}, 'Logged models'),
          models.filter(Boolean).length || history.length
            ? h('ul', { id: 'logged-models' }, models.filter(Boolean).map((m) => h('li', {}, h('a', { href: `#/experiments/${expId}/models/${m.info.model_id}` }, m.info.name), ` (${m.info.model_id})`)),
              history.map((m) => h('li', {}, h('a', { href: `#/experiments/${expId}/runs/${runId}/artifacts/${encodeURIComponent(m.artifact_path + '/MLmodel')}` }, m.artifact_path), ' ', Object.keys(m.flavors || {}).join(', '))))
            : h('p', { class: 'muted' }, 'None.'))),
      h('h2', {}, 'Parameters'),
      kvTable('params', (data.params || []).map((p) => ({ cells: [p.key, p.value] })), ['Name', 'Value']),
      h('h2', {}, 'Metrics'),
      kvTable('metrics', (data.metrics || []).map((m) => ({ num: true, cells: [h('a', { href: `#/experiments/${expId}/runs/${runId}/metrics` }, m.key), fmtNum(m.value), m.step, fmtTime(m.timestamp)] })), ['Name', 'Latest', 'Step', 'Time']),
      h('h2', {}, 'Dataset inputs'),
      kvTable('inputs', inputs, ['Name', 'Digest', 'Context', 'Source', 'keel version']),
      h('h2', {}, 'Tags'),
      kvTable('tags', userTags.map((t) => ({ key: t.key, cells: [t.key, t.value] })), ['Key', 'Value'],
        (r) => h('button', { type: 'button', 'aria-label': `Delete tag ${r.key}`, onclick: () => write(() => mlflow.post('runs/delete-tag', { run_id: runId, key: r.key }), refresh) }, 'Delete')),
      h('form', { class: 'toolbar', id: 'add-tag', onsubmit: async (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        await write(() => mlflow.post('runs/set-tag', { run_id: runId, key: f.get('key'), value: f.get('value') }), refresh);
      } },
      h('input', { type: 'text', name: 'key', required: true, 'aria-label': 'Tag key', placeholder: 'key' }),
      h('input', { type: 'text', name: 'value', 'aria-label': 'Tag value', placeholder: 'value' }),
      h('button', { type: 'submit' }, 'Add tag')));
  }
  return h('section', {}, header,
    tabs([['overview', 'Overview'], ['metrics', 'Metric charts'], ['artifacts', 'Artifacts']], current, show),
    content);
}

/** A logged model (MLflow 3): what it is, where it came from, and its artifacts. */
export async function loggedModelPage(expId, modelId) {
  const m = (await mlflow.get(`logged-models/${modelId}`)).model;
  const info = m.info; const data = m.data || {};
  const run = info.source_run_id;
  return h('section', {},
    h('div', { class: 'crumbs' }, h('a', { href: '#/experiments' }, 'Experiments'), ' / ', h('a', { href: `#/experiments/${info.experiment_id}` }, `Experiment ${info.experiment_id}`), ' /'),
    h('h1', {}, info.name, ' ', h('span', { class: 'muted' }, info.model_id)),
    h('dl', { class: 'kv panel' },
      h('dt', {}, 'Source run'), h('dd', {}, run ? h('a', { href: `#/experiments/${info.experiment_id}/runs/${run}` }, run) : ''),
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(info.creation_timestamp_ms)),
      h('dt', {}, 'Status'), h('dd', {}, info.status || ''),
      h('dt', {}, 'Location'), h('dd', {}, info.artifact_uri)),
    h('h2', {}, 'Parameters'), kvTable('model-params', (data.params || []).map((p) => ({ cells: [p.key, p.value] })), ['Name', 'Value']),
    h('h2', {}, 'Metrics'), kvTable('model-metrics', (data.metrics || []).map((x) => ({ num: true, cells: [x.key, fmtNum(x.value), x.step] })), ['Name', 'Value', 'Step']),
    h('h2', {}, 'Artifacts'),
    info.artifact_uri.startsWith('mlflow-artifacts:')
      ? artifactBrowser(proxiedArtifacts(info.artifact_uri), null)
      : h('p', { class: 'muted' }, 'Stored outside the server\'s artifact proxy.'));
}
