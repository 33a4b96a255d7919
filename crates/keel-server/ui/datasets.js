// keel's dataset versions: the list, a dataset's versions, the stored profile of a version as
// a chart per column, its validation reports, the runs that used it, and two versions'
// profiles side by side.

import { h, keel, fmtTime, fmtNum, hashParams } from './lib.js';

const enc = encodeURIComponent;
const SVG = 'http://www.w3.org/2000/svg';
const s = (tag, attrs, ...kids) => { const el = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v); el.append(...kids); return el; };

export async function datasetsPage() {
  const list = (await keel.get('datasets')).datasets || [];
  return h('section', {}, h('h1', {}, 'Datasets'),
    list.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'datasets' },
      h('thead', {}, h('tr', {}, ['Name', 'Versions', 'Latest', 'Format', 'Rows', 'Size', 'Updated'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, list.map((d) => h('tr', {},
        h('td', {}, h('a', { href: `#/datasets/${enc(d.name)}` }, d.name)),
        h('td', { class: 'num' }, d.version_count),
        h('td', {}, 'v' + d.latest.version),
        h('td', {}, d.latest.format),
        h('td', { class: 'num' }, d.latest.row_count ?? ''),
        h('td', { class: 'num' }, d.latest.size_bytes),
        h('td', {}, fmtTime(d.latest.creation_time))))))) : h('p', { class: 'muted' }, 'No datasets. Add one with `keel data add`.'));
}

const statsOf = (c) => c.stats || c;

/** A column's distribution: a histogram for numbers and times, top values otherwise. */
function columnChart(c, color = 'var(--accent)', other = null) {
  const st = statsOf(c);
  const W = 300; const H = 110;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': `Distribution of ${c.name}` });
  const bars = (counts, labels, col, offset, width) => {
    const max = Math.max(...counts, 1);
    const bw = (W - 10) / counts.length;
    counts.forEach((n, i) => svg.append(s('rect', { x: 5 + i * bw + offset * bw, y: H - 20 - (n / max) * (H - 30), width: Math.max(1, bw * width - 1), height: (n / max) * (H - 30), fill: col }, s('title', {}, `${labels[i]}: ${n}`))));
  };
  const hist = st.histogram;
  if (hist && hist.counts) {
    const labels = hist.counts.map((_, i) => `${fmtNum(hist.edges[i])} – ${fmtNum(hist.edges[i + 1])}`);
    const oh = other && statsOf(other).histogram;
    bars(hist.counts, labels, color, 0, oh ? 0.5 : 1);
    if (oh) bars(oh.counts, oh.counts.map((_, i) => `${fmtNum(oh.edges[i])} – ${fmtNum(oh.edges[i + 1])}`), 'var(--warn)', 0.5, 0.5);
    svg.append(s('text', { x: 5, y: H - 5 }, fmtNum(hist.edges[0])), s('text', { x: W - 5, y: H - 5, 'text-anchor': 'end' }, fmtNum(hist.edges[hist.edges.length - 1])));
  } else if (st.top) {
    const top = st.top.slice(0, 12);
    bars(top.map((t) => t[1]), top.map((t) => t[0]), color, 0, 1);
    svg.append(s('text', { x: 5, y: H - 5 }, `${st.cardinality}${st.capped ? '+' : ''} distinct`));
  } else svg.append(s('text', { x: 5, y: H / 2 }, 'no values'));
  return svg;
}

function summary(c) {
  const st = statsOf(c);
  const rows = [['count', c.count], ['nulls', c.nulls]];
  if (st.mean !== undefined) rows.push(['mean', fmtNum(st.mean)], ['std', fmtNum(st.std)], ['min', fmtNum(st.min)], ['max', fmtNum(st.max)]);
  if (st.cardinality !== undefined) rows.push(['distinct', st.cardinality + (st.capped ? '+' : '')]);
  if (st.min_ms !== undefined) rows.push(['from', fmtTime(st.min_ms)], ['to', fmtTime(st.max_ms)]);
  return rows;
}

export async function datasetPage(name) {
  const q = hashParams();
  const versions = (await keel.get(`datasets/${enc(name)}/versions`)).versions || [];
  const v = q.get('v') || 'latest';
  const r = await keel.get(`datasets/${enc(name)}/versions/${enc(v)}`);
  const ver = r.version;
  const validations = await keel.get(`datasets/${enc(name)}/versions/${ver.version}/validations`).then((x) => x.validations || [], () => []);
  const against = q.get('diff');
  const other = against ? (await keel.get(`datasets/${enc(name)}/versions/${enc(against)}`)).version : null;
  const cols = ver.profile?.columns || [];
  const otherCols = new Map((other?.profile?.columns || []).map((c) => [c.name, c]));
  const link = (n, extra = '') => `#/datasets/${enc(name)}?v=${n}${extra}`;
  return h('section', {},
    h('div', { class: 'crumbs' }, h('a', { href: '#/datasets' }, 'Datasets'), ' /'),
    h('h1', {}, `${name} v${ver.version}`),
    h('dl', { class: 'kv panel' },
      h('dt', {}, 'Hash'), h('dd', {}, ver.hash),
      h('dt', {}, 'Format'), h('dd', {}, `${ver.format} · ${ver.kind} · ${ver.file_count} file(s) · ${ver.size_bytes} bytes`),
      h('dt', {}, 'Rows'), h('dd', {}, ver.row_count ?? ''),
      h('dt', {}, 'Source'), h('dd', {}, ver.source),
      h('dt', {}, 'Added'), h('dd', {}, `${fmtTime(ver.creation_time)} by ${ver.created_by}`),
      ver.description ? [h('dt', {}, 'Description'), h('dd', {}, ver.description)] : null),
    h('h2', {}, 'Versions'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'data-versions' },
      h('thead', {}, h('tr', {}, ['Version', 'Added', 'Rows', 'Size', 'Hash', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, versions.map((x) => h('tr', { class: x.version === ver.version ? 'selected' : null },
        h('td', {}, h('a', { href: link(x.version) }, 'v' + x.version)),
        h('td', {}, fmtTime(x.creation_time)), h('td', { class: 'num' }, x.row_count ?? ''), h('td', { class: 'num' }, x.size_bytes),
        h('td', {}, h('code', {}, x.hash.slice(0, 12))),
        h('td', {}, x.version !== ver.version ? h('a', { href: link(ver.version, `&diff=${x.version}`) }, `Compare with v${x.version}`) : '')))))),
    h('h2', {}, 'Validation reports'),
    validations.length ? h('div', { id: 'validations' }, validations.map((v, i) => h('details', { open: i === 0, dataset: { passed: String(v.passed) } },
      h('summary', {}, h('span', { class: 'badge ' + (v.passed ? 'FINISHED' : 'FAILED') }, v.passed ? 'passed' : 'failed'),
        ` ${fmtTime(v.time)} by ${v.created_by}: ${v.rules} rules, ${v.failed} failed`),
      h('table', {}, h('thead', {}, h('tr', {}, ['Rule', 'Result', 'Expected', 'Observed', 'Failing rows'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, (v.report.results || []).map((r) => h('tr', { class: r.passed ? null : 'diff' },
          h('td', {}, r.rule + (r.column ? ` (${r.column})` : '')),
          h('td', {}, r.passed ? 'passed' : 'failed'),
          h('td', {}, r.expectation), h('td', {}, r.observed),
          h('td', { class: 'num' }, r.failing_rows ?? '')))))))) : h('p', { class: 'muted' }, `None recorded: keel data validate ${name}@${ver.version} --rules FILE records one.`),
    h('h2', {}, 'Used by runs'),
    (r.used_by || []).length ? h('ul', { id: 'used-by' }, r.used_by.map((u) => h('li', {}, h('a', { href: `#/experiments/${u.experiment_id}/runs/${u.run_id}` }, u.run_id), ` as ${u.dataset_name}${u.context ? ' (' + u.context + ')' : ''}`))) : h('p', { class: 'muted' }, 'No run logged this version as an input.'),
    h('h2', {}, other ? `Profile: v${ver.version} against v${other.version}` : 'Profile'),
    other ? h('p', { class: 'muted' }, `Stored profiles side by side (v${ver.version} in blue, v${other.version} in yellow). For drift tests on the data itself: keel data diff ${name}@${other.version} ${name}@${ver.version}.`) : null,
    cols.length ? h('div', { class: 'grid2', id: 'profile' }, cols.map((c) => {
      const o = otherCols.get(c.name);
      const mine = summary(c); const theirs = o ? summary(o) : [];
      return h('div', { class: 'panel', dataset: { column: c.name } },
        h('strong', {}, c.name), ' ', h('span', { class: 'muted' }, statsOf(c).kind || ''),
        columnChart(c, 'var(--accent)', o),
        h('table', {}, h('tbody', {}, mine.map(([k, val], i) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, val), other ? h('td', { class: 'num' }, theirs[i]?.[1] ?? '—') : null)))));
    })) : h('p', { class: 'muted' }, 'No profile (not a tabular format).'));
}
