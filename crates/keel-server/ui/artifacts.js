// An artifact browser: a lazily expanded tree, and a preview of the chosen file (text, JSON,
// YAML, CSV as a table, images, SVG, HTML reports in a sandboxed frame, MLmodel).

import { h, mlflow, artifactUrl, errorBox } from './lib.js';

/** A run's artifacts, through `artifacts/list` and `/get-artifact`. */
export function runArtifacts(runId) {
  return {
    list: async (path) => (await mlflow.get('artifacts/list', { run_id: runId, path })).files || [],
    url: (path) => artifactUrl(runId, path),
  };
}

/** Artifacts under an `mlflow-artifacts:/` location (a logged model's), through the proxy. */
export function proxiedArtifacts(uri) {
  const base = uri.replace(/^mlflow-artifacts:\/*/, '').replace(/\/+$/, '');
  const join = (path) => (path ? `${base}/${path}` : base);
  return {
    list: async (path) => {
      const r = await fetch('/api/2.0/mlflow-artifacts/artifacts?' + new URLSearchParams({ path: join(path) }));
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const files = (await r.json()).files || [];
      return files.map((f) => ({ ...f, path: path ? `${path}/${f.path}` : f.path }));
    },
    url: (path) => '/api/2.0/mlflow-artifacts/artifacts/' + join(path).split('/').map(encodeURIComponent).join('/'),
  };
}

const TEXT = /\.(txt|log|py|md|yaml|yml|json|toml|cfg|ini|sh|r|sql|js|ts|xml)$|(^|\/)(MLmodel|requirements\.txt|conda\.yaml|python_env\.yaml|LICENSE)$/i;
const IMAGE = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', bmp: 'image/bmp', svg: 'image/svg+xml' };
const MAX_PREVIEW = 5 * 1024 * 1024;
const MAX_CSV_ROWS = 500;

/** CSV text -> rows of cells (quotes and doubled quotes understood), at most `limit` rows. */
export function parseCsv(text, sep = ',', limit = MAX_CSV_ROWS) {
  const rows = []; let row = []; let cur = ''; let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') quoted = false; else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) { row.push(cur); cur = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cur); rows.push(row); row = []; cur = '';
      if (rows.length > limit) break;
    } else cur += c;
  }
  if (cur !== '' || row.length) { row.push(cur); rows.push(row); }
  return rows;
}

async function preview(source, file) {
  const url = source.url(file.path);
  const name = file.path.split('/').pop();
  const ext = (name.includes('.') ? name.split('.').pop() : '').toLowerCase();
  const size = Number(file.file_size || 0);
  const head = h('div', { class: 'toolbar' }, h('strong', {}, file.path), h('span', { class: 'muted' }, `${size} bytes`), h('a', { href: url, download: name }, 'Download'));
  if (size > MAX_PREVIEW) return [head, h('p', { class: 'muted' }, 'Too large to preview.')];
  const r = await fetch(url);
  if (!r.ok) return [head, errorBox(new Error(`HTTP ${r.status}`))];
  const blob = await r.blob();
  if (IMAGE[ext]) {
    const img = h('img', { class: 'preview', alt: file.path, src: URL.createObjectURL(new Blob([blob], { type: IMAGE[ext] })) });
    return [head, img];
  }
  const text = await blob.text();
  if (ext === 'html' || ext === 'htm') {
    // An opaque origin: the report's scripts run, but cannot reach keel or its cookies.
    return [head, h('iframe', { class: 'preview', sandbox: 'allow-scripts', title: file.path, srcdoc: text })];
  }
  if (ext === 'csv' || ext === 'tsv') {
    const rows = parseCsv(text, ext === 'tsv' ? '\t' : ',');
    const [header, ...rest] = rows;
    return [head, h('div', { class: 'table-wrap' }, h('table', { class: 'csv' },
      h('thead', {}, h('tr', {}, (header || []).map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rest.slice(0, MAX_CSV_ROWS).map((row) => h('tr', {}, row.map((c) => h('td', {}, c))))))),
    rows.length > MAX_CSV_ROWS ? h('p', { class: 'muted' }, `First ${MAX_CSV_ROWS} rows.`) : null];
  }
  if (ext === 'json') {
    try { return [head, h('pre', { class: 'preview' }, JSON.stringify(JSON.parse(text), null, 2))]; } catch { /* shown as text */ }
  }
  if (TEXT.test(name) || !/[\x00-\x08\x0e-\x1f]/.test(text.slice(0, 4096))) return [head, h('pre', { class: 'preview' }, text)];
  return [head, h('p', { class: 'muted' }, 'Binary file.')];
}

/** A browser of the artifacts of `source` (`runArtifacts` or `proxiedArtifacts`); `initial`
 * opens a path. */
export function artifactBrowser(source, initial) {
  const pane = h('div', { class: 'preview-pane', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Choose a file.'));
  let current = null;
  async function open(file, button) {
    if (current) current.removeAttribute('aria-current');
    current = button; button.setAttribute('aria-current', 'true');
    pane.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try { pane.replaceChildren(...(await preview(source, file)).filter(Boolean)); } catch (e) { pane.replaceChildren(errorBox(e)); }
  }
  async function list(path) {
    return (await source.list(path)).sort((a, b) => (b.is_dir - a.is_dir) || a.path.localeCompare(b.path));
  }
  async function branch(path) {
    const ul = h('ul', { role: 'group' });
    for (const f of await list(path)) {
      const name = f.path.split('/').pop();
      const li = h('li', { role: 'treeitem' });
      if (f.is_dir) {
        let open_ = false; let sub = null;
        const b = h('button', { type: 'button', 'aria-expanded': 'false', dataset: { path: f.path }, onclick: async () => {
          open_ = !open_;
          b.setAttribute('aria-expanded', String(open_));
          b.textContent = (open_ ? '▾ ' : '▸ ') + name;
          if (open_ && !sub) { sub = await branch(f.path); li.append(sub); }
          if (sub) sub.hidden = !open_;
        } }, '▸ ' + name);
        li.append(b);
        if (initial && initial.startsWith(f.path + '/')) b.click();
      } else {
        const b = h('button', { type: 'button', dataset: { path: f.path }, onclick: () => open(f, b) }, name);
        li.append(b);
        if (initial === f.path) open(f, b);
      }
      ul.append(li);
    }
    if (!ul.children.length && !path) ul.append(h('li', { class: 'muted' }, 'No artifacts.'));
    return ul;
  }
  const tree = h('div', { class: 'tree', role: 'tree', 'aria-label': 'Artifacts' });
  branch('').then((ul) => tree.append(ul), (e) => tree.append(errorBox(e)));
  return h('div', { class: 'artifacts', id: 'artifacts' }, tree, pane);
}
