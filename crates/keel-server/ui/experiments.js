// The experiments list: search by name, create, rename, delete and restore.

import { h, mlflow, fmtTime, ask, write, hashParams, setHashParams } from './lib.js';

export async function experimentsPage() {
  const q = hashParams();
  const deleted = q.get('deleted') === '1';
  const name = q.get('name') || '';
  const body = { max_results: 1000, view_type: deleted ? 'DELETED_ONLY' : 'ACTIVE_ONLY', order_by: ['last_update_time DESC'] };
  if (name) body.filter = `name ILIKE '%${name.replace(/'/g, "\\'")}%'`;
  const exps = (await mlflow.post('experiments/search', body)).experiments || [];
  const refresh = () => window.dispatchEvent(new Event('keel:refresh'));
  const search = h('input', {
    type: 'search', value: name, placeholder: 'Filter by name', 'aria-label': 'Filter experiments by name',
    onkeydown: (e) => { if (e.key === 'Enter') { setHashParams({ name: e.target.value, deleted: deleted ? '1' : '' }); refresh(); } },
  });
  const rows = exps.map((e) => h('tr', { dataset: { id: e.experiment_id } },
    h('td', {}, h('a', { href: `#/experiments/${e.experiment_id}` }, e.name)),
    h('td', { class: 'num' }, e.experiment_id),
    h('td', {}, fmtTime(e.creation_time)),
    h('td', {}, fmtTime(e.last_update_time)),
    h('td', {}, (e.tags || []).find((t) => t.key === 'mlflow.note.content')?.value || ''),
    h('td', {},
      deleted
        ? h('button', { type: 'button', onclick: () => write(() => mlflow.post('experiments/restore', { experiment_id: e.experiment_id }), refresh) }, 'Restore')
        : [
          h('button', { type: 'button', 'aria-label': `Rename ${e.name}`, onclick: async () => {
            const n = await ask('New name', e.name);
            if (n) await write(() => mlflow.post('experiments/update', { experiment_id: e.experiment_id, new_name: n }), refresh);
          } }, 'Rename'), ' ',
          h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${e.name}`, onclick: () => write(() => mlflow.post('experiments/delete', { experiment_id: e.experiment_id }), refresh) }, 'Delete'),
        ])));
  return h('section', {},
    h('h1', {}, deleted ? 'Deleted experiments' : 'Experiments'),
    h('div', { class: 'toolbar' }, search,
      h('button', { type: 'button', class: 'primary', onclick: async () => {
        const n = await ask('Experiment name');
        if (n) await write(async () => { const r = await mlflow.post('experiments/create', { name: n }); location.hash = `#/experiments/${r.experiment_id}`; });
      } }, 'New experiment'),
      h('a', { href: deleted ? '#/experiments' : '#/experiments?deleted=1' }, deleted ? 'Active experiments' : 'Deleted experiments')),
    exps.length
      ? h('div', { class: 'table-wrap' }, h('table', { id: 'experiments' },
        h('thead', {}, h('tr', {}, ['Name', 'ID', 'Created', 'Last update', 'Description', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows)))
      : h('p', { class: 'muted' }, 'No experiments.'));
}
