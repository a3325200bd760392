// The Runs page: every run in the folder as a table, its report one click away, and the per-epoch
// curves of the ticked runs overlaid (accuracy and loss; validation solid, train dashed). A sweep is
// one group row whose trials open below it (sweeps.js); a ticked trial is compared as any run.
import { LineChart, PALETTE } from './charts.js';
import { keepSweeps, knownTrials, sweepRows } from './sweeps.js';
import { $, api, duration, el, kindLabel, pct, runPath, stateBadge, when } from './util.js';

const ticked = new Set();
const histories = new Map();    // id -> {stamp, detail: GET /api/runs/{id}} (refetched when the run changes)
let shown = '';                 // the last list drawn, to redraw only when something changed
let charts = [];
let overlayKey = '';

let latest = [];                // the server's list, newest first
let sweeps = [];                // the server's sweeps, newest first
let sort = { key: null, dir: 1 }; // a clicked column, or the server's order

export function initRunsTable() {
  for (const th of document.querySelectorAll('#runs-table th[data-sort]')) {
    th.tabIndex = 0;
    const pick = () => {
      sort = sort.key === th.dataset.sort ? { key: sort.key, dir: -sort.dir } : { key: th.dataset.sort, dir: 1 };
      for (const other of document.querySelectorAll('#runs-table th[data-sort]')) other.removeAttribute('aria-sort');
      th.setAttribute('aria-sort', sort.dir > 0 ? 'ascending' : 'descending');
      shown = '';
      updateRunsTable(latest, sweeps);
    };
    th.addEventListener('click', pick);
    th.addEventListener('keydown', (e) => { if (e.key === 'Enter') pick(); });
  }
}

/** The runs in the clicked column's order; missing values (null) last either way. */
function sorted(runs) {
  if (!sort.key) return runs;
  const k = sort.key;
  return [...runs].sort((a, b) => {
    const x = a[k], y = b[k];
    if (x == null || y == null) return (x == null) - (y == null);
    return (typeof x === 'number' ? x - y : String(x).localeCompare(String(y))) * sort.dir;
  });
}

/** Runs and sweeps in one list: newest first (the server's order of each), or the clicked column's. */
function merged(list, groups) {
  const all = [...list, ...groups];
  if (sort.key) return sorted(all);
  return all.sort((a, b) => (b.started ?? '9999').localeCompare(a.started ?? '9999'));
}

export function updateRunsTable(list, groups = []) {
  latest = list;
  sweeps = groups;
  const rows = merged(list, groups);
  const key = JSON.stringify(rows);
  if (key === shown) return;
  shown = key;
  const ids = new Set(groups.map((s) => s.id));
  keepSweeps(ids);
  const trialOf = (id) => ids.has(id.split('/')[0]) && knownTrials.has(id);
  for (const id of [...ticked]) if (!list.some((r) => r.id === id) && !trialOf(id)) ticked.delete(id);
  $('runs-empty').classList.toggle('hidden', rows.length > 0);
  $('runs-table').classList.toggle('hidden', rows.length === 0);
  const plural = (n, word) => `${n} ${word}${n > 1 ? 's' : ''}`;
  $('runs-count').textContent = [list.length ? plural(list.length, 'run') : null,
    groups.length ? plural(groups.length, 'sweep') : null].filter(Boolean).join(' · ');
  const ctx = { ticked, retick: () => overlay(latest), redraw: () => { shown = ''; updateRunsTable(latest, sweeps); } };
  $('runs-body').replaceChildren(...rows.flatMap((r) => (r.type === 'sweep' ? sweepRows(r, ctx) : [runRow(r, list)])));
  overlay(list);
}

function runRow(r, runs) {
  return el('tr', { dataset: { id: r.id } },
    el('td', {}, el('input', { type: 'checkbox', class: 'pick', 'aria-label': `compare ${r.id}`,
      checked: ticked.has(r.id), onchange: (e) => { if (e.target.checked) ticked.add(r.id); else ticked.delete(r.id); overlay(runs); } })),
    el('td', { class: 'run-id' }, r.id),
    el('td', {}, r.preset ?? '—'),
    el('td', {}, r.dataset ?? '—'),
    el('td', { class: 'arch', title: r.arch ?? '' }, el('span', { class: `kind kind-${r.kind}` }, kindLabel(r.kind)), ' ', r.arch ?? ''),
    el('td', { class: 'num strong' }, pct(r.test_accuracy, 2)),
    el('td', {}, when(r.started)),
    el('td', { class: 'num' }, duration(r.duration_s)),
    el('td', {}, stateBadge(r.state), r.error ? el('div', { class: 'error-text small' }, r.error) : null),
    el('td', {}, r.has_report || r.has_model
      ? el('a', { href: runPath(r.id, '/report'), target: '_blank', rel: 'noopener', class: 'link' }, 'Report ↗')
      : null),
  );
}

/** The ticked runs' and trials' curves, each fetched again when its epochs or state moved on. */
async function overlay(runs) {
  const picked = [...runs, ...knownTrials.values()].filter((r) => ticked.has(r.id));
  const stamp = (r) => `${r.epochs_done}|${r.state}`;
  const key = JSON.stringify(picked.map((r) => [r.id, stamp(r)]));
  if (key === overlayKey) return;
  overlayKey = key;
  if (!picked.length) { drawEmpty(); return; }
  try {
    await Promise.all(picked.map(async (r) => {
      const old = histories.get(r.id);
      if (!old || old.stamp !== stamp(r)) histories.set(r.id, { stamp: stamp(r), detail: await api(runPath(r.id)) });
    }));
  } catch (err) {
    overlayKey = '';
    $('cmp-acc').replaceChildren(el('p', { class: 'error-text' }, err.message));
    return;
  }
  if (key !== overlayKey) return;     // ticks changed while we fetched
  draw(picked.map((r) => histories.get(r.id).detail));
}

function drawEmpty() {
  for (const c of charts) c.destroy();
  charts = [];
  for (const id of ['cmp-acc', 'cmp-loss']) {
    $(id).replaceChildren(el('p', { class: 'empty' }, 'Tick runs in the table to compare them.'));
    $(id).dataset.points = '0';
  }
}

/** Curves of several runs on a shared epoch axis (uPlot.join fills the gaps with null). */
function draw(details) {
  for (const c of charts) c.destroy();
  charts = [];
  const accSeries = [], lossSeries = [], accData = [], lossData = [];
  details.forEach((d, i) => {
    const h = d.history || {};
    const epochs = h.epoch || [];
    const color = PALETTE[i % PALETTE.length];
    const add = (series, data, key, label, dash) => {
      if (!h[key] || !h[key].some((v) => v != null)) return;
      series.push({ label: `${d.id} ${label}`, color, dash, points: true });
      data.push([epochs, h[key]]);
    };
    // held out: the validation split when the run kept one, else the test set it reports per epoch
    const held = h.val_accuracy && h.val_accuracy.some((v) => v != null) ? 'val' : 'test';
    add(accSeries, accData, `${held}_accuracy`, held, undefined);
    add(accSeries, accData, 'train_accuracy', 'train', [6, 4]);
    add(lossSeries, lossData, `${held}_loss`, held, undefined);
    add(lossSeries, lossData, 'train_loss', 'train', [6, 4]);
  });
  charts.push(chart('cmp-acc', 'accuracy', accSeries, accData, true));
  charts.push(chart('cmp-loss', 'loss', lossSeries, lossData, false));
  charts = charts.filter(Boolean);
}

function chart(id, y, series, data, percent) {
  if (!series.length) {
    $(id).replaceChildren(el('p', { class: 'empty' }, 'These runs have no per-epoch history yet.'));
    return null;
  }
  const c = new LineChart($(id), { x: 'epoch', y, percent, integerX: true, height: 260, series });
  c.set(uPlot.join(data));
  return c;
}
