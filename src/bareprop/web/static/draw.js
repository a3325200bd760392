// The Draw page: a drawing pad whose PNG goes to POST /api/runs/{id}/predict (the server prepares it
// exactly as `bareprop predict` prepares a photo), then the answer: class probabilities, the 28x28
// input, each layer's activations and the first layer's weights; for a sequence model also what inside.js
// draws (the recurrent state step by step, each attention head's map).
import { showInside, sequenceMap, unpack } from './inside.js';
import { chosenMethod, clearWhy, offerMethods, showWhy } from './why.js';
import { $, api, el, greyScale, kindLabel, legend, num, paintGrid, pct, runPath, scaleFor, setText } from './util.js';

const INK = 20;                 // px on the 280 px pad: a thick marker, like MNIST's pen at 28 px
const THROTTLE_MS = 180;        // at most one prediction this often while the pen moves

const state = {
  models: null,                 // RunSummary with has_model (null before the first list)
  model: null,                  // id of the chosen run
  info: null,                   // GET /model of it
  strokes: [],                  // [[{x, y}, ...], ...] — the undo history
  drawing: null,                // the stroke under the pen
  inFlight: false, again: false, lastSent: 0, timer: null, seq: 0,
};

let pad, ctx;

export function initDraw() {
  pad = $('draw-pad');
  ctx = pad.getContext('2d');
  repaint();
  pad.addEventListener('pointerdown', (e) => {
    if (e.button !== undefined && e.button > 0) return;
    try { pad.setPointerCapture(e.pointerId); } catch { /* a pointer the browser no longer tracks */ }
    state.drawing = [point(e)];
    state.strokes.push(state.drawing);
    repaint();
    e.preventDefault();
  });
  pad.addEventListener('pointermove', (e) => {
    if (!state.drawing) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const c of (events.length ? events : [e])) state.drawing.push(point(c));
    repaint();
    schedule();
    e.preventDefault();
  });
  const end = () => {
    if (!state.drawing) return;
    state.drawing = null;
    predictNow();
  };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
  $('clear').addEventListener('click', () => { state.strokes = []; repaint(); resetOutputs(); });
  $('undo').addEventListener('click', () => {
    state.strokes.pop();
    repaint();
    if (state.strokes.length) predictNow(); else resetOutputs();
  });
  $('model-select').addEventListener('change', (e) => chooseModel(e.target.value));
  $('explain-select').addEventListener('change', () => { clearWhy(); if (state.strokes.length) predictNow(); });
  // Ctrl/Cmd+Z undoes a stroke while the Draw tab is open
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'z' && !$('page-draw').hidden) { e.preventDefault(); $('undo').click(); }
  });
  resetOutputs();
}

/** Called with the run list whenever it refreshes. */
export function updateModels(runs) {
  const models = runs.filter((r) => r.has_model);
  const same = state.models !== null && models.length === state.models.length
    && models.every((m, i) => m.id === state.models[i].id);
  state.models = models;
  $('draw-empty').classList.toggle('hidden', models.length > 0);
  if (same) return;
  const select = $('model-select');
  select.replaceChildren(...models.map((m) => el('option', { value: m.id },
    `${m.id} · ${kindLabel(m.kind)}${m.test_accuracy != null ? ` · ${pct(m.test_accuracy)}` : ''}`)));
  select.disabled = models.length === 0;
  select.parentElement.hidden = models.length === 0;
  if (!models.some((m) => m.id === state.model)) chooseModel(models.length ? models[0].id : null);
  else select.value = state.model;
}

async function chooseModel(id) {
  state.model = id;
  state.info = null;
  $('model-select').value = id ?? '';
  $('model-meta').replaceChildren();
  $('weights').replaceChildren();
  $('weights-legend').replaceChildren();
  if (!id) {
    $('weights').replaceChildren(el('p', { class: 'empty' }, 'Train a model to see what its first layer learned.'));
    return;
  }
  try {
    const info = await api(runPath(id, '/model'));
    if (state.model !== id) return;
    state.info = info;
    showModel(info);
    if (state.strokes.length) predictNow();
  } catch (err) {
    $('model-meta').replaceChildren(el('p', { class: 'error-text' }, err.message));
  }
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return { x: ((e.clientX - r.left) / r.width) * pad.width, y: ((e.clientY - r.top) / r.height) * pad.height };
}

function repaint() {
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = '#000000';
  ctx.fillStyle = '#000000';
  ctx.lineWidth = INK;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  for (const stroke of state.strokes) {
    if (stroke.length === 1) {
      ctx.beginPath();
      ctx.arc(stroke[0].x, stroke[0].y, INK / 2, 0, 2 * Math.PI);
      ctx.fill();
      continue;
    }
    ctx.beginPath();
    ctx.moveTo(stroke[0].x, stroke[0].y);
    for (const p of stroke.slice(1)) ctx.lineTo(p.x, p.y);
    ctx.stroke();
  }
}

// ---- predictions ----------------------------------------------------------------------------
function schedule() {
  if (state.timer) return;
  const wait = Math.max(0, THROTTLE_MS - (performance.now() - state.lastSent));
  state.timer = setTimeout(() => { state.timer = null; predictNow(); }, wait);
}

async function predictNow() {
  if (!state.model || !state.strokes.length) return;
  if (state.inFlight) { state.again = true; return; }      // one request at a time; the last stroke wins
  state.inFlight = true;
  state.lastSent = performance.now();
  const id = state.model;
  const seq = ++state.seq;
  $('prediction').dataset.busy = '1';
  setText('predict-status', 'predicting…');
  try {
    const blob = await new Promise((resolve) => pad.toBlob(resolve, 'image/png'));
    // maps=u8: conv feature maps as base64 bytes, not JSON floats (the server's JSON cost more than the forward pass)
    const method = chosenMethod();
    const query = `?maps=u8${method ? `&explain=${encodeURIComponent(method)}` : ''}`;
    const result = await api(runPath(id, `/predict${query}`), { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: blob });
    if (id === state.model && state.strokes.length) showPrediction(result, seq);
    setText('predict-error', '');
  } catch (err) {
    setText('predict-error', err.message);
  } finally {
    state.inFlight = false;
    setText('predict-status', '');
    if (state.again) { state.again = false; predictNow(); } else $('prediction').dataset.busy = '0';
  }
}

function resetOutputs() {
  const pred = $('prediction');
  pred.textContent = 'Draw a digit';
  pred.classList.add('idle');
  delete pred.dataset.seq;
  const classes = (state.info && state.info.classes) || [];
  $('probs').replaceChildren(...classes.map((c) => probRow(c, 0, false)));
  const input = $('input28');
  input.getContext('2d').clearRect(0, 0, input.width, input.height);
  $('activations').replaceChildren(el('p', { class: 'empty' }, 'Draw something to see each layer light up.'));
  $('inside').hidden = true;
  $('inside-body').replaceChildren();
  clearWhy();
}

function probRow(label, p, top) {
  return el('div', { class: `prob${top ? ' top' : ''}` },
    el('span', { class: 'prob-label' }, label),
    el('span', { class: 'prob-track' }, el('span', { class: 'prob-fill', style: `width:${(100 * p).toFixed(1)}%` })),
    el('span', { class: 'prob-value' }, pct(p)));
}

function showPrediction(result, seq) {
  const probs = result.probabilities || [];
  const classes = (state.info && state.info.classes) || probs.map((_, i) => String(i));
  const pred = $('prediction');
  pred.classList.remove('idle');
  pred.textContent = `${result.label} — ${pct(probs[result.class])}`;
  pred.dataset.seq = String(seq);
  pred.dataset.label = String(result.label);
  $('probs').replaceChildren(...probs.map((p, i) => probRow(classes[i] ?? String(i), p, i === result.class)));

  paintGrid($('input28'), result.input, greyScale);
  $('input-legend').replaceChildren(legend(greyScale, 'ink'));
  showActivations(result.activations || []);
  showInside(result);
  showWhy(result.explanation, result.input, seq);
}

function showActivations(layers) {
  const box = $('activations');
  const classes = (state.info && state.info.classes) || [];
  box.replaceChildren(...layers.map((layer, k) => {
    const scale = scaleFor(layer.min ?? 0, layer.max ?? 1);
    let body = layer.type === 'conv' ? featureMaps(layer, scale)
      : layer.type === 'sequence' ? sequenceMap(layer, scale) : strip(layer.values, scale);
    if (k === layers.length - 1 && layer.type === 'dense' && layer.values.length === classes.length) {
      body = el('div', { class: 'outputs', style: `width:min(100%, ${classes.length * 28}px)` }, body,
        el('div', { class: 'strip-labels', style: `grid-template-columns:repeat(${classes.length}, 1fr)` },
          ...classes.map((c) => el('span', { title: c }, c))));
    }
    return el('div', { class: 'layer' },
      el('div', { class: 'layer-head' },
        el('span', { class: 'layer-name' }, `${layer.layer + 1}. ${layer.name}`),   // as the 1-based list above
        el('span', { class: 'muted small' }, `→ ${(layer.shape || []).join('×')}`),
        el('span', { class: 'spacer' }), legend(scale)),
      body);
  }));
}

/** A dense layer's output as a strip of cells, wrapped at 64 per row. */
function strip(values, scale) {
  const perRow = Math.min(64, values.length);
  const rows = [];
  for (let i = 0; i < values.length; i += perRow) {
    const row = values.slice(i, i + perRow);
    while (row.length < perRow) row.push(NaN);
    rows.push(row);
  }
  const canvas = paintGrid(el('canvas', { class: 'strip pixelated' }), rows, {
    ...scale, rgb: (v) => (Number.isNaN(v) ? [241, 245, 249] : scale.rgb(v)) });
  // cells at most 28 px wide: a 10-unit output layer stays a strip, not a wall of colour
  canvas.style.width = `min(100%, ${perRow * 28}px)`;
  canvas.style.aspectRatio = `${perRow} / ${rows.length}`;
  canvas.title = `${values.length} units`;
  return canvas;
}

/** A conv layer's (C, H, W) output as one small map per channel. */
function featureMaps(layer, scale) {
  const maps = unpack(layer);            // values, or u8 bytes of the channels shown
  return el('div', { class: 'maps' }, ...maps.map((map, c) => {
    const canvas = paintGrid(el('canvas', { class: 'map pixelated', title: `channel ${c}` }), map, scale);
    return canvas;
  }));
}

// ---- the model's description and first layer -----------------------------------------------
function showModel(info) {
  const run = (state.models || []).find((m) => m.id === info.id);
  offerMethods(info.explain_methods);
  $('model-meta').replaceChildren(
    el('div', { class: 'muted small' }, run ? run.arch : ''),
    el('ol', { class: 'layer-list' }, ...(info.layers || []).map((l) =>
      el('li', {}, el('code', {}, l.name), el('span', { class: 'muted small' },
        ` → ${(l.output_shape || []).join('×')}${l.kind === 'sequence' ? ' sequence' : ''}`)))));
  resetOutputs();
  const first = info.first_layer;
  const tiles = $('weights');
  if (!first) {
    setText('weights-title', 'First layer\'s weights');
    setText('weights-note', '');
    tiles.classList.remove('filters');
    tiles.replaceChildren(el('p', { class: 'empty' }, 'This model has no first Linear or Conv2d layer to show (a recurrent layer\'s weights read the image a row at a time).'));
    return;
  }
  const scale = scaleFor(Math.min(first.min, -1e-12), first.max);
  let maps;
  if (first.type === 'conv') {
    // (out, in, kh, kw): one tile per output filter, its first input channel (the image, for layer 1)
    maps = first.values.map((f) => f[0]);
    setText('weights-title', 'First layer\'s filters');
    setText('weights-note', `${first.shape[0]} filters of ${first.shape[2]}×${first.shape[3]} over ${first.shape[1]} channel(s)`);
  } else {
    maps = first.values;    // (units, 28, 28): what each of the first hidden units looks for
    setText('weights-title', 'First layer\'s weights');
    setText('weights-note', `the first ${first.shape[0]} hidden units, each unit's ${first.shape[1] * first.shape[2]} weights as a ${first.shape[1]}×${first.shape[2]} image`);
  }
  tiles.classList.toggle('filters', first.type === 'conv');
  tiles.replaceChildren(...maps.map((m, i) => paintGrid(el('canvas', { class: 'tile pixelated', title: `unit ${i}` }), m, scale)));
  $('weights-legend').replaceChildren(legend(scale, 'blue: negative · red: positive'));
}
