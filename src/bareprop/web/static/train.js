// The Train page: a form that starts a run (the server validates it with the CLI's own code and
// answers 400 {error, field}, shown beside the field), the runs with their state, and a live panel
// for the selected run fed by its server-sent events (GET /api/runs/{id}/events).
import { LineChart } from './charts.js';
import { $, api, duration, el, kindLabel, num, pct, postJSON, runPath, setText, stateBadge } from './util.js';

const LIVE = new Set(['running', 'queued', 'stopping']);   // the stream goes on in these
const RESUMABLE = new Set(['stopped', 'failed', 'incomplete']);
const SMOOTH = 0.9;             // exponential moving average of the batch loss, as TensorBoard's slider

const FIELDS = ['preset', 'dataset', 'epochs', 'batch_size', 'lr', 'optimizer', 'seed', 'augment'];
const INTEGER = new Set(['epochs', 'batch_size', 'seed']);

let presets = [];
let runs = null;                // the last run list (null before the first)
let listKey = '';
let onChange = () => {};        // asks the app to refresh the run list now

const live = { id: null, source: null, summary: null, state: null, ema: null, loss: null, acc: null, fresh: {} };

export function initTrain(catalogue, refresh) {
  onChange = refresh;
  presets = catalogue.presets || [];
  fillSelect('f-preset', presets.map((p) => p.name));
  fillSelect('f-dataset', catalogue.datasets || []);
  fillSelect('f-optimizer', catalogue.optimizers || []);
  fillSelect('f-augment', catalogue.augments || ['none']);
  $('f-preset').addEventListener('change', () => applyPreset($('f-preset').value));
  const first = presets.find((p) => p.name === 'default') || presets[0];
  if (first) { $('f-preset').value = first.name; applyPreset(first.name); }
  $('train-form').addEventListener('submit', (e) => { e.preventDefault(); start(); });
  for (const name of FIELDS) $(`f-${name}`).addEventListener('input', () => showFieldError(name, ''));
  $('stop').addEventListener('click', () => act('stop'));
  $('resume').addEventListener('click', () => act('resume'));
}

function fillSelect(id, values) {
  $(id).replaceChildren(...values.map((v) => el('option', { value: v }, v)));
}

function applyPreset(name) {
  const preset = presets.find((p) => p.name === name);
  if (!preset) return;
  setText('preset-desc', `${kindLabel(preset.kind)} · ${preset.description || ''}`);
  const s = preset.settings || {};
  for (const name of ['dataset', 'epochs', 'batch_size', 'lr', 'optimizer', 'seed', 'augment']) {
    if (s[name] !== undefined && s[name] !== null) $(`f-${name}`).value = String(s[name]);
  }
  clearErrors();
}

/** The form as the API's JSON: numbers where they parse, the raw text otherwise (the server names it). */
function payload() {
  const body = {};
  for (const name of FIELDS) {
    const raw = $(`f-${name}`).value.trim();
    if (raw === '') continue;
    if (INTEGER.has(name) || name === 'lr') {
      const n = Number(raw);
      body[name] = Number.isFinite(n) && (!INTEGER.has(name) || Number.isInteger(n)) ? n : raw;
    } else body[name] = raw;
  }
  return body;
}

function clearErrors() {
  for (const name of FIELDS) showFieldError(name, '');
  setText('form-error', '');
}

function showFieldError(name, message) {
  const slot = document.querySelector(`.field-error[data-for="${name}"]`);
  if (slot) slot.textContent = message;
  $(`f-${name}`).classList.toggle('invalid', !!message);
  if (message) $(`f-${name}`).setAttribute('aria-invalid', 'true'); else $(`f-${name}`).removeAttribute('aria-invalid');
}

async function start() {
  clearErrors();
  const button = $('start');
  button.disabled = true;
  try {
    const answer = await postJSON('api/train', payload());
    watch(answer.id);
    onChange();
  } catch (err) {
    if (err.field && FIELDS.includes(err.field)) {
      showFieldError(err.field, err.message);
      $(`f-${err.field}`).focus();
    } else setText('form-error', err.message);
  } finally {
    button.disabled = false;
  }
}

// ---- the run list -----------------------------------------------------------------------------
export function updateRuns(list) {
  const firstList = runs === null;
  runs = list;
  // opening the page while something trains: watch it without a click
  const active = list.find((r) => LIVE.has(r.state));
  if (firstList && !live.id && active) watch(active.id);
  $('runlist-empty').classList.toggle('hidden', list.length > 0);
  const key = JSON.stringify([live.id, list]);
  if (key !== listKey) {              // redraw only on a change: keeps keyboard focus in the list
    listKey = key;
    drawList(list);
  }
  const mine = list.find((r) => r.id === live.id);
  if (!mine) return;
  if (!live.source) setLiveState(mine.state, mine.error);
  // a run watched from the moment it was queued has no preset/arch until its folder is written
  if (mine.arch) setText('live-arch', [mine.preset, mine.dataset, mine.arch].filter(Boolean).join(' · '));
  if (live.summary && mine.epochs) live.summary.epochs = mine.epochs;
}

function drawList(list) {
  $('runlist').replaceChildren(...list.map((r) => {
    const done = r.epochs ? `${r.epochs_done}/${r.epochs} epochs` : '';
    return el('li', { class: `runitem${r.id === live.id ? ' selected' : ''}`, dataset: { id: r.id, state: r.state },
                      tabindex: 0, onclick: () => watch(r.id),
                      onkeydown: (e) => { if (e.key === 'Enter') watch(r.id); } },
      el('div', { class: 'runitem-top' }, el('span', { class: 'run-id' }, r.id), stateBadge(r.state)),
      el('div', { class: 'muted small' },
        [r.preset, r.dataset, done, r.test_accuracy != null ? `test ${pct(r.test_accuracy)}` : null]
          .filter(Boolean).join(' · ')));
  }));
}

// ---- the live panel ---------------------------------------------------------------------------
export async function watch(id) {
  if (live.source) { live.source.close(); live.source = null; }
  live.id = id;
  for (const item of document.querySelectorAll('.runitem')) item.classList.toggle('selected', item.dataset.id === id);
  $('live-empty').hidden = true;
  $('live-body').hidden = false;
  setText('live-id', id);
  setText('live-error', '');
  setText('live-arch', '');
  $('live-log').textContent = '';
  for (const k of ['s-epoch', 's-batch', 's-loss', 's-lr', 's-speed', 's-eta', 's-test']) setText(k, '—');
  $('live-bar').style.width = '0%';
  if (live.loss) live.loss.destroy();
  if (live.acc) live.acc.destroy();
  live.loss = new LineChart($('loss-chart'), { x: 'step', y: 'loss', height: 230, integerX: true,
    empty: 'The loss of every batch appears here as the run trains', series: [
    { label: 'loss', color: 'rgba(79, 70, 229, 0.28)', width: 1 },
    { label: 'smoothed', color: '#4f46e5', width: 2 }] });
  live.acc = new LineChart($('acc-chart'), { x: 'epoch', y: 'accuracy', percent: true, integerX: true, height: 200,
    empty: 'Accuracy appears at the end of each epoch', series: [
    { label: 'train', color: '#94a3b8', dash: [6, 4], points: true },
    { label: 'validation', color: '#059669', points: true },
    { label: 'test', color: '#d97706', points: true }] });
  live.ema = null;
  try {
    live.summary = await api(runPath(id));
    if (live.id !== id) return;
    setText('live-arch', [live.summary.preset, live.summary.dataset, live.summary.arch].filter(Boolean).join(' · '));
    setLiveState(live.summary.state, live.summary.error);
    if (live.summary.test_accuracy != null) setText('s-test', pct(live.summary.test_accuracy, 2));
    drawSaved(live.summary);
    const { epochs_done: done, epochs } = live.summary;
    if (epochs) {
      setText('s-epoch', `${done} / ${epochs}`);
      $('live-bar').style.width = `${Math.min(100, (100 * done) / epochs).toFixed(1)}%`;
    }
  } catch (err) {
    setText('live-error', err.message);
    return;
  }
  listen(id);
}

function listen(id) {
  const source = new EventSource(runPath(id, '/events'), { withCredentials: true });
  live.source = source;
  // Each (re)connection replays the run's events from its start: its first batch (epoch) event clears
  // the curve drawn until then from the run's saved history (all a run trained outside the server has).
  source.addEventListener('open', () => { live.fresh = { loss: true, acc: true }; });
  source.addEventListener('batch', (e) => onBatch(JSON.parse(e.data)));
  source.addEventListener('epoch', (e) => onEpoch(JSON.parse(e.data)));
  source.addEventListener('state', (e) => {
    const d = JSON.parse(e.data);
    setLiveState(d.state, d.error);
    if (d.test_accuracy != null) setText('s-test', pct(d.test_accuracy, 2));
    if (!LIVE.has(d.state)) onChange();
  });
  source.addEventListener('log', (e) => appendLog(JSON.parse(e.data).line));
  source.addEventListener('error', () => {
    // The server ends the stream after a final state; do not let EventSource reconnect then.
    if (live.source === source && !LIVE.has(live.state)) { source.close(); live.source = null; }
  });
}

/** Before a stream's first batch (or epoch) event, clear that chart: the stream replays it all. */
function restart(kind) {
  if (!live.fresh[kind]) return;
  live.fresh[kind] = false;
  live[kind].clear();
  if (kind === 'loss') live.ema = null;
}

/** The curves from GET /api/runs/{id}: its per-batch losses and per-epoch history. */
function drawSaved(summary) {
  const b = summary.batches || {}, h = summary.history || {};
  (b.step || []).forEach((step, i) => pushLoss(step, b.loss[i]));
  (h.epoch || []).forEach((epoch, i) => live.acc.push(epoch, at(h.train_accuracy, i), at(h.val_accuracy, i), at(h.test_accuracy, i)));
}

const at = (xs, i) => (xs ? xs[i] : null);

/** Debiased EMA, as TensorBoard smooths: m_t = b m_(t-1) + (1 - b) x_t from m_0 = 0, shown as
 *  m_t / (1 - b^t) — an average of the points so far at the start, not a line stuck at the first. */
function pushLoss(step, loss) {
  const e = live.ema || { m: 0, n: 0 };
  e.m = SMOOTH * e.m + (1 - SMOOTH) * loss;
  e.n += 1;
  live.ema = e;
  live.loss.push(step, loss, e.m / (1 - SMOOTH ** e.n));
}

function onBatch(d) {
  restart('loss');
  pushLoss(d.step, d.loss);
  const epochs = (live.summary && live.summary.epochs) || d.epochs || 1;
  setText('s-epoch', `${d.epoch} / ${epochs}`);
  setText('s-batch', `${d.batch} / ${d.batches}`);
  setText('s-loss', num(d.loss));
  setText('s-lr', num(d.lr, 3));
  setText('s-speed', d.examples_per_s != null ? Math.round(d.examples_per_s).toLocaleString() : '—');
  setText('s-eta', duration(d.eta_s));
  const done = ((d.epoch - 1) * d.batches + d.batch) / (epochs * d.batches);
  $('live-bar').style.width = `${Math.min(100, 100 * done).toFixed(1)}%`;
}

function onEpoch(d) {
  restart('acc');
  live.acc.push(d.epoch, d.train_accuracy, d.val_accuracy, d.test_accuracy);
  if (d.lr != null) setText('s-lr', num(d.lr, 3));
  if (d.epochs && live.summary) live.summary.epochs = d.epochs;
}

function appendLog(line) {
  const pre = $('live-log');
  const lines = (pre.textContent + line + '\n').split('\n');
  pre.textContent = lines.slice(-400).join('\n');
}

function setLiveState(state, error) {
  live.state = state;
  const badge = $('live-state');
  badge.className = `badge state-${state}`;
  badge.textContent = state;
  $('stop').disabled = !LIVE.has(state) || state === 'stopping';
  $('resume').disabled = !RESUMABLE.has(state);
  if (state === 'finished') $('live-bar').style.width = '100%';
  const report = $('live-report');
  report.hidden = state !== 'finished';
  report.href = runPath(live.id, '/report');
  setText('live-error', error || '');
}

async function act(action) {
  const id = live.id;
  $(action).disabled = true;
  try {
    const answer = await postJSON(runPath(id, `/${action}`));
    if (live.id !== id) return;
    setLiveState(answer.state, null);
    if (action === 'resume') watch(id);
    onChange();
  } catch (err) {
    setText('live-error', err.message);
    $(action).disabled = false;
  }
}

export const selectedRun = () => live.id;
