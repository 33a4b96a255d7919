// The router: MLflow's addresses (`#/experiments/<id>`, `#/experiments/<id>/runs/<run_id>`,
// `#/models/<name>/versions/<v>`, `#/compare-runs?runs=[...]`) and keel's own. A page's module
// is imported when the page is first opened, so a cold load fetches and compiles only what the
// page it lands on needs (index.html preloads the runs table's modules, the usual landing page).

import { h, errorBox, session } from './lib.js';

/** The sections in the top bar; a section lists the route prefixes it owns. */
const SECTIONS = [
  { label: 'Experiments', href: '#/experiments', owns: ['experiments', 'compare-runs', 'metric'] },
  { label: 'Models', href: '#/models', owns: ['models'] },
  { label: 'Datasets', href: '#/datasets', owns: ['datasets'] },
  { label: 'Monitoring', href: '#/monitoring', owns: ['monitoring'] },
];

const ROUTES = [
  [/^\/?$/, () => { location.replace('#/experiments'); }],
  [/^\/experiments$/, () => import('./experiments.js').then((m) => m.experimentsPage())],
  [/^\/experiments\/([^/]+)(?:\/runs)?$/, (id) => import('./runs.js').then((m) => m.runsPage(id))],
  [/^\/experiments\/([^/]+)\/runs\/([^/]+)(?:\/(artifacts|metrics|model-metrics))?(?:\/(.*))?$/, (exp, run, tab, rest) => import('./run.js').then((m) => m.runPage(exp, run, tab, rest))],
  [/^\/experiments\/([^/]+)\/models\/([^/]+)$/, (exp, id) => import('./run.js').then((m) => m.loggedModelPage(exp, id))],
  [/^\/compare-runs$/, () => import('./compare.js').then((m) => m.comparePage())],
  [/^\/models$/, () => import('./models.js').then((m) => m.modelsPage())],
  [/^\/models\/([^/]+)$/, (name) => import('./models.js').then((m) => m.modelPage(name))],
  [/^\/models\/([^/]+)\/versions\/([^/]+)$/, (name, v) => import('./models.js').then((m) => m.versionPage(name, v))],
  [/^\/datasets$/, () => import('./datasets.js').then((m) => m.datasetsPage())],
  [/^\/datasets\/([^/]+)$/, (name) => import('./datasets.js').then((m) => m.datasetPage(name))],
  [/^\/monitoring$/, () => import('./monitoring.js').then((m) => m.monitoringPage())],
  [/^\/monitoring\/([^/]+)$/, (model) => import('./monitoring.js').then((m) => m.monitoredModelPage(model))],
];

function nav(path) {
  const first = path.split('/')[1] || 'experiments';
  const el = document.getElementById('nav');
  el.replaceChildren(...SECTIONS.map((s) => h('a', {
    href: s.href, 'aria-current': s.owns.includes(first) ? 'page' : null,
  }, s.label)));
}

let generation = 0;

async function route() {
  const hash = location.hash.slice(1) || '/';
  const path = hash.split('?')[0];
  nav(path);
  const main = document.getElementById('main');
  const mine = ++generation;
  for (const [re, page] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    try {
      const content = await page(...m.slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x))));
      if (mine !== generation || !content) return;
      main.replaceChildren(content);
      const focus = sessionStorage.getItem('keel.focus');
      sessionStorage.removeItem('keel.focus');
      if (focus) document.getElementById(focus)?.focus();
    } catch (e) {
      if (mine === generation) main.replaceChildren(errorBox(e));
    }
    document.title = (main.querySelector('h1')?.textContent || 'keel') + ' · keel';
    return;
  }
  main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, path), '. ', h('a', { href: '#/experiments' }, 'Experiments')));
}

/** Who is signed in, with a way out, on a server with auth. */
async function whoami() {
  const s = await session();
  if (!s?.user) return;
  const signOut = async () => {
    const csrf = s.csrf_token ? { 'X-Keel-CSRF': s.csrf_token } : {};
    await fetch('/api/keel/v1/session', { method: 'DELETE', headers: { 'X-Requested-With': 'keel-ui', ...csrf } });
    location.assign('/login');
  };
  document.querySelector('header.top').append(h('span', { class: 'whoami' },
    'Signed in as ', h('strong', { id: 'whoami' }, s.user.username), ' · ',
    h('button', { type: 'button', onclick: signOut }, 'Sign out')));
}

/** A page may ask to be rendered again without a navigation (after a write). */
window.addEventListener('keel:refresh', route);
window.addEventListener('hashchange', route);
route();
whoami();
