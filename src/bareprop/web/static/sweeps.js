// The Runs page's sweeps: a sweep folder is one group row of the runs table; opened, a row below
// it shows its trials as a table and every trial's validation accuracy per epoch in one chart (the
// best trial thick, pruned and failed ones grey). A trial is a run (id SWEEP/trials/NNNN): ticked,
// its curves join the comparison below the table; its report opens as any run's.
import { LineChart, PALETTE } from './charts.js';
import { api, duration, el, num, pct, runPath, stateBadge, when } from './util.js';

const GREY = '#94a3b8';
const opened = new Map();       // sweep id -> {row: the panel <tr>, key, chart, details}
/** Trials of the opened sweeps as the comparison wants them: id -> {id, epochs_done, state}. */
export const knownTrials = new Map();

const sweepPath = (id) => `api/sweeps/${encodeURIComponent(id)}`;

/** The group row of sweep ``s`` (and its panel row when opened). ctx: {ticked, retick, redraw}. */
export function sweepRows(s, ctx) {
  const open = opened.has(s.id);
  const toggle = el('button', { type: 'button', class: 'toggle', 'aria-expanded': String(open),
    'aria-label': `${open ? 'hide' : 'show'} the trials of ${s.id}`,
    onclick: () => { if (opened.has(s.id)) close(s.id); else opened.set(s.id, { row: null, key: '' }); ctx.redraw(); } },
  open ? '▾' : '▸');
  const counts = [s.trials_pruned ? `${s.trials_pruned} pruned` : null, s.trials_failed ? `${s.trials_failed} failed` : null,
    s.trials_running ? `${s.trials_running} running` : null].filter(Boolean).join(', ');
  const group = el('tr', { class: 'sweep-row', dataset: { id: s.id, sweep: s.id } },
    el('td', {}, toggle),
    el('td', { class: 'run-id' }, s.id, ' ', el('span', { class: 'kind kind-sweep' }, 'sweep'),
      el('div', { class: 'muted small' }, [s.engine, s.prune && s.prune !== 'none' ? `${s.prune} pruning` : null].filter(Boolean).join(' · '))),
    el('td', {}, s.preset ?? '—'),
    el('td', {}, s.dataset ?? '—'),
    el('td', { class: 'sweep-progress' }, `${s.trials_done}/${s.trials_wanted ?? '?'} trials`,
      counts ? el('span', { class: 'muted' }, ` (${counts})`) : null,
      el('div', { class: 'small' }, `best val ${pct(s.best_val_accuracy, 2)}`,
        s.best_trial != null ? el('span', { class: 'muted' }, ` · trial ${String(s.best_trial).padStart(4, '0')}`) : null)),
    el('td', { class: 'num strong', title: "the best trial's test accuracy (the sweep's one use of the test set)" },
      pct(s.test_accuracy, 2)),
    el('td', {}, when(s.started)),
    el('td', { class: 'num' }, duration(s.duration_s)),
    el('td', {}, stateBadge(s.state), s.error ? el('div', { class: 'error-text small' }, s.error) : null),
    el('td', {}, s.trials_done ? el('a', { href: `${sweepPath(s.id)}/report`, target: '_blank', rel: 'noopener', class: 'link' }, 'Report ↗') : null),
  );
  if (!open) return [group];
  const entry = opened.get(s.id);
  if (!entry.row) entry.row = el('tr', { class: 'sweep-panel', dataset: { sweep: s.id } },
    el('td', { colspan: 10 }, el('p', { class: 'empty' }, 'Loading the trials…')));
  const key = JSON.stringify(s);
  if (key !== entry.key) {            // the sweep moved on (a trial's epoch, a new trial): fetch again
    entry.key = key;
    queueMicrotask(() => load(s.id, entry, ctx));     // once the row is in the page: the chart needs its width
  }
  return [group, entry.row];
}

function close(id) {
  const entry = opened.get(id);
  if (entry && entry.chart) entry.chart.destroy();
  opened.delete(id);
  for (const t of [...knownTrials.keys()]) if (t.startsWith(`${id}/`)) knownTrials.delete(t);
}

/** Forget sweeps no longer listed. */
export function keepSweeps(ids) {
  for (const id of [...opened.keys()]) if (!ids.has(id)) close(id);
}

async function load(id, entry, ctx) {
  const key = entry.key;
  let d;
  try {
    d = await api(sweepPath(id));
  } catch (err) {
    if (opened.get(id) === entry) entry.row.firstChild.replaceChildren(el('p', { class: 'error-text' }, err.message));
    return;
  }
  if (opened.get(id) !== entry || entry.key !== key) return;     // closed, or changed again meanwhile
  for (const t of d.trials) if (t.id) knownTrials.set(t.id, { id: t.id, epochs_done: t.epochs, state: t.state });
  if (entry.chart) entry.chart.destroy();
  const box = el('div', { class: 'chart sweep-chart', dataset: { points: '0' } });
  entry.row.firstChild.replaceChildren(header(d), box, trialTable(d, ctx));
  entry.chart = chart(box, d.trials);
  ctx.retick();
}

function header(d) {
  const best = d.best;
  return el('div', { class: 'sweep-head' },
    el('div', {}, el('span', { class: 'muted' }, 'Search space: '), d.space.join('  ·  ') || '—'),
    best ? el('div', {}, el('span', { class: 'muted' }, 'Best: '),
      `trial ${String(best.number).padStart(4, '0')}, validation ${pct(best.value, 2)}, test ${pct(best.test_accuracy, 2)}`) : null,
    best && best.command ? el('code', { class: 'sweep-command' }, best.command) : null,
    d.trials_cut ? el('div', { class: 'muted small' }, `showing the first ${d.trials.length} trials`) : null);
}

/** Every trial's validation accuracy per epoch on one epoch axis (a trial's missing epochs null). */
function chart(box, trials) {
  const drawn = trials.filter((t) => t.val_accuracy.length);
  box.dataset.series = String(drawn.length);
  if (!drawn.length) {
    box.replaceChildren(el('p', { class: 'empty' }, 'No trial has finished an epoch yet.'));
    return null;
  }
  const epochs = Math.max(...drawn.map((t) => t.val_accuracy.length));
  const xs = Array.from({ length: epochs }, (_, i) => i + 1);
  let colour = 1;
  const series = drawn.map((t) => {
    const grey = t.state === 'pruned' || t.state === 'failed';
    return { label: `${String(t.number).padStart(4, '0')}${t.best ? ' (best)' : ''}`,
      color: t.best ? PALETTE[0] : grey ? GREY : PALETTE[colour++ % PALETTE.length],
      width: t.best ? 3.5 : grey ? 1 : 1.5, dash: t.state === 'failed' ? [4, 4] : undefined, points: epochs < 30 };
  });
  const c = new LineChart(box, { x: 'epoch', y: 'validation accuracy', percent: true, clamp: [0, 1], integerX: true, height: 280, series });
  c.set([xs, ...drawn.map((t) => xs.map((_, i) => t.val_accuracy[i] ?? null))]);
  return c;
}

function trialTable(d, ctx) {
  const names = [...new Set(d.trials.flatMap((t) => Object.keys(t.params)))].slice(0, 12);
  const value = (v) => (Array.isArray(v) ? v.map(value).join(' ') : typeof v === 'number' ? num(v, 3) : String(v ?? '—'));
  const rows = d.trials.map((t) => el('tr', { class: `trial state-row-${t.state}${t.best ? ' best' : ''}`, dataset: { id: t.id ?? '' } },
    el('td', {}, t.id ? el('input', { type: 'checkbox', class: 'pick', 'aria-label': `compare ${t.id}`, checked: ctx.ticked.has(t.id),
      onchange: (e) => { if (e.target.checked) ctx.ticked.add(t.id); else ctx.ticked.delete(t.id); ctx.retick(); } }) : null),
    el('td', { class: 'num' }, String(t.number ?? '?').padStart(4, '0'), t.best ? el('span', { class: 'kind kind-best' }, 'best') : null),
    ...names.map((n) => el('td', { class: 'num' }, value(t.params[n]))),
    el('td', { class: 'num' }, String(t.epochs)),
    el('td', { class: 'num strong' }, pct(t.value ?? t.val_accuracy[t.val_accuracy.length - 1], 2)),
    el('td', { class: 'num' }, duration(t.seconds)),
    el('td', {}, stateBadge(t.state), t.reason ? el('div', { class: 'muted small reason' }, t.reason) : null),
    el('td', {}, t.id ? el('a', { href: runPath(t.id, '/report'), target: '_blank', rel: 'noopener', class: 'link' }, 'Report ↗') : null)));
  return el('table', { class: 'runs trials' },
    el('thead', {}, el('tr', {}, el('th', {}), el('th', { class: 'num' }, 'Trial'), ...names.map((n) => el('th', { class: 'num' }, n)),
      el('th', { class: 'num' }, 'Epochs'), el('th', { class: 'num' }, 'Val acc.'), el('th', { class: 'num' }, 'Time'),
      el('th', {}, 'State'), el('th', {}))),
    el('tbody', {}, ...rows));
}
