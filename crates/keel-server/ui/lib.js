// Shared helpers: DOM building (text only, never HTML strings), the API client, formatting
// and the address bar state.

/** An element: h('a', {href: '#/x', class: 'y', onclick: f}, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** An error the API answered (MLflow's error shape) or a network failure. */
export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

let sessionAsked;

/** Who is signed in and the session's CSRF value; `null` on a server without auth. */
export function session() {
  sessionAsked ??= fetch('/api/keel/v1/session', { headers: { 'X-Requested-With': 'keel-ui' } })
    .then((r) => (r.ok ? r.json() : null))
    .catch(() => null);
  return sessionAsked;
}

async function request(method, url, body) {
  // The UI's own requests: no browser sign-in dialog on a 401 (the sign-in page is ours), and
  // writes carry the session's CSRF value.
  const init = { method, headers: { 'X-Requested-With': 'keel-ui' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET') {
    const csrf = (await session())?.csrf_token;
    if (csrf) init.headers['X-Keel-CSRF'] = csrf;
  }
  const r = await fetch(url, init);
  if (r.status === 401) {
    location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search + location.hash));
  }
  const text = await r.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!r.ok) throw new ApiError(data.error_code || 'HTTP_' + r.status, data.message || r.statusText, r.status);
  return data;
}

const MLFLOW = '/ajax-api/2.0/mlflow/';
const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, x);
  }
  return q.toString();
};

/** The MLflow REST API, as the mlflow client calls it. */
export const mlflow = {
  get: (path, params) => request('GET', MLFLOW + path + '?' + query(params)),
  post: (path, body) => request('POST', MLFLOW + path, body || {}),
  patch: (path, body) => request('PATCH', MLFLOW + path, body || {}),
  del: (path, body) => request('DELETE', MLFLOW + path, body || {}),
};

/** keel's own API. */
export const keel = {
  get: (path, params) => request('GET', '/api/keel/v1/' + path + '?' + query(params)),
};

/** An artifact's bytes: of a run, or of a model version. */
export function artifactUrl(runId, path) {
  return '/get-artifact?' + query({ run_uuid: runId, path });
}

export function fmtTime(ms) {
  if (ms === undefined || ms === null || ms === '') return '';
  const d = new Date(Number(ms));
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtDuration(ms) {
  if (ms === undefined || ms === null || isNaN(ms)) return '';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + 's';
  if (s < 3600) return (s / 60).toFixed(1) + 'min';
  return (s / 3600).toFixed(1) + 'h';
}

export function fmtNum(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (!isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(4);
  return String(Math.round(v * 1e6) / 1e6);
}

/** The route's query string (after `?` in the hash) as an object, and a way to change it. */
export function hashParams() {
  const hash = location.hash.slice(1);
  const i = hash.indexOf('?');
  return new URLSearchParams(i >= 0 ? hash.slice(i + 1) : '');
}

export function setHashParams(params, replace = true) {
  const hash = location.hash.slice(1);
  const i = hash.indexOf('?');
  const path = i >= 0 ? hash.slice(0, i) : hash;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  const url = '#' + path + (s ? '?' + s : '');
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
}

export function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.style.display = 'block';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.style.display = 'none'; }, 3000);
}

/** Shows an error where a page's content would be. */
export function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
}

/** Runs `action` (a write), then `done`; shows a failure instead of throwing. Resolves whether it worked. */
export async function write(action, done) {
  try {
    await action();
    if (done) await done();
    return true;
  } catch (e) {
    // Shown, and handled here: a refused write (403, say) is news for the user, not an error
    // of the page.
    toast(e.message || String(e));
    return false;
  }
}

/** A prompt as a small inline form: resolves with the text, or null when cancelled. */
export function ask(label, initial = '') {
  return new Promise((resolve) => {
    const input = h('input', { type: 'text', value: initial, 'aria-label': label });
    const dlg = h('dialog', { 'aria-label': label },
      h('form', { method: 'dialog' },
        h('label', {}, label, ' ', input), ' ',
        h('button', { value: 'ok', class: 'primary' }, 'Save'), ' ',
        h('button', { value: 'cancel', formnovalidate: true }, 'Cancel')));
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'ok' ? input.value : null);
      dlg.remove();
    });
    document.body.append(dlg);
    dlg.showModal();
    input.select();
  });
}

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** A tab strip: tabs = [[id, label]], calls show(id). */
export function tabs(list, current, show) {
  const bar = h('div', { class: 'tabs', role: 'tablist' });
  for (const [id, label] of list) {
    bar.append(h('button', {
      role: 'tab', 'aria-selected': String(id === current), id: 'tab-' + id,
      onclick: () => show(id),
      onkeydown: (ev) => {
        const i = list.findIndex((t) => t[0] === id);
        const next = ev.key === 'ArrowRight' ? list[(i + 1) % list.length] : ev.key === 'ArrowLeft' ? list[(i + list.length - 1) % list.length] : null;
        if (next) { show(next[0]); document.getElementById('tab-' + next[0])?.focus(); }
      },
    }, label));
  }
  return bar;
}
