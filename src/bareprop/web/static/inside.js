// The Draw page's look inside a sequence model: a sequence layer's output as a heatmap (a row per step
// or token), each recurrent layer's state at every step beside the drawn digit, and each attention
// head's map over the digit's patch grid. Strings from the server become text nodes (el()), never markup.
import { $, el, greyScale, legend, paintGrid, scaleFor } from './util.js';

const ROWS_PX = 196;                    // the digit and the state heatmaps: one height, rows aligned
const TILE_PX = 128;                    // an attention head's tile
const INK = [255, 45, 120];             // the digit's strokes drawn over an attention map (no viridis hue)

/** A picture from the server ({shown, values} or {shown, u8, min, max}) as nested rows of numbers. */
export function unpack(p) {
  if (p.values) return p.values;
  const q = Uint8Array.from(atob(p.u8), (ch) => ch.charCodeAt(0));
  const step = (p.max - p.min) / 255;
  const flat = Array.from(q, (v) => p.min + v * step);
  const nest = (offset, dims) => {
    if (dims.length === 1) return flat.slice(offset, offset + dims[0]);
    const size = dims.slice(1).reduce((a, b) => a * b, 1);
    return Array.from({ length: dims[0] }, (_, i) => nest(offset + i * size, dims.slice(1)));
  };
  return nest(0, p.shown);
}

/** A (T, E) output (steps or tokens, each a vector) as a small heatmap: a row per step, a column per feature. */
export function sequenceMap(layer, scale) {
  const rows = unpack(layer);
  const [t, e] = layer.shown;
  const cell = Math.min(9, Math.max(4, 480 / Math.max(e, 1)));      // px a value: 16 features 144 px wide, 128 512 px
  const canvas = paintGrid(el('canvas', { class: 'seq pixelated' }), rows, scale);
  canvas.style.width = `min(100%, ${Math.round(e * cell)}px)`;
  canvas.style.aspectRatio = `${e} / ${t}`;
  const [T, E] = layer.shape;
  canvas.title = `${T} steps or tokens (rows) × ${E} features (columns)` +
    (t < T || e < E ? `, the first ${t} × ${e} shown` : '');
  return el('div', {}, canvas,
    el('div', { class: 'muted small' }, `a row per step or token (${T}), a column per feature (${E})`));
}

/** The drawn digit (28×28 values in [0, 1]) as a canvas, transposed when the model reads its columns. */
function digit(input, transposed) {
  const rows = transposed ? input[0].map((_, x) => input.map((row) => row[x])) : input;
  const canvas = paintGrid(el('canvas', { class: 'pixelated digit' }), rows, greyScale);
  canvas.style.height = `${ROWS_PX}px`;
  return canvas;
}

/** Fill or hide the "inside" card for one prediction: recurrent states, then attention maps. */
export function showInside(result) {
  const states = result.hidden_states || [];
  const attention = result.attention && result.attention.maps.length ? result.attention : null;
  const card = $('inside');
  card.hidden = !states.length && !attention;
  const parts = [];
  if (states.length) parts.push(statesView(result.input, states));
  if (attention) parts.push(attentionView(result.input, attention));
  $('inside-body').replaceChildren(...parts);
}

function statesView(input, states) {
  const along = states[0].along;
  const read = along === 'columns' ? 'column' : 'row';
  const figures = [el('figure', { class: 'state' }, digit(input, along === 'columns'),
    el('figcaption', { class: 'muted small' }, along === 'columns' ? 'your digit, transposed: row t is column t' : 'your digit'))];
  for (const s of states) {
    const rows = unpack(s);
    const scale = scaleFor(Math.min(s.min, -1e-12), Math.max(s.max, 1e-12));   // signed: blue-white-red
    const [t, u] = s.shown;
    const canvas = paintGrid(el('canvas', { class: 'pixelated' }), rows, scale);
    canvas.style.height = `${ROWS_PX}px`;
    canvas.style.width = `${Math.min(560, Math.max(160, u * 6))}px`;
    canvas.title = `${s.shape[0]} steps (rows) × ${s.shape[1]} units (columns)`;
    const box = el('div', { class: 'state-map' }, canvas);
    if (s.directions > 1) {
      const per = s.shape[1] / s.directions;                 // forward units first, then backward
      for (let d = 1; d < s.directions && d * per < u; d++) box.append(el('span', { class: 'divider', style: `left:${(100 * d * per) / u}%` }));
    }
    const more = u < s.shape[1] || t < s.shape[0] ? ` (first ${t}×${u} shown)` : '';
    figures.push(el('figure', { class: 'state' }, box,
      el('figcaption', {},
        el('span', { class: 'layer-name' }, `${s.layer + 1}. ${s.name}`),
        el('span', { class: 'muted small' }, ` → ${s.shape.join('×')}${more}${s.directions > 1 ? ' · forward | backward units' : ''}`),
        legend(scale))));
  }
  return el('div', { class: 'inside-part' },
    el('h3', {}, `Hidden state over the ${along || 'steps'}`),
    el('p', { class: 'muted small' }, 'Each row is one step: what the layer holds after reading '
      + `${along ? `${read} t of your digit` : 'step t'}; each column one unit.`),
    el('div', { class: 'states' }, ...figures));
}

/** One head's map on the patch grid, at the digit's resolution, with the digit's ink drawn over it. */
function headTile(grid, input, scale) {
  const h = input.length, w = input[0].length, gh = grid.length, gw = grid[0].length;
  const canvas = el('canvas', { class: 'pixelated', width: w, height: h });
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const rgb = scale.rgb(grid[Math.floor((y * gh) / h)][Math.floor((x * gw) / w)]);
      const a = 0.7 * Math.min(1, Math.max(0, input[y][x]));
      const o = 4 * (y * w + x);
      for (let c = 0; c < 3; c++) image.data[o + c] = (1 - a) * rgb[c] + a * INK[c];
      image.data[o + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  return tile(canvas);
}

function tile(canvas) {
  canvas.style.width = canvas.style.height = `${TILE_PX}px`;
  return canvas;
}

function attentionView(input, attention) {
  const [gh, gw] = attention.grid;
  const layers = attention.maps.map((m) => {
    const heads = unpack(m);
    const scale = scaleFor(0, Math.max(m.max, 1e-12));     // one scale a layer: heads compare
    const more = m.heads > heads.length ? ` (first ${heads.length} of ${m.heads} heads)` : '';
    return el('div', { class: 'attn-layer' },
      el('div', { class: 'layer-head' },
        el('span', { class: 'layer-name' }, `${m.layer + 1}. ${m.name}`),
        el('span', { class: 'muted small' }, `attention ${m.how}${more}`),
        el('span', { class: 'spacer' }), legend(scale, 'attention weight')),
      el('div', { class: 'heads' },
        el('figure', {}, tile(paintGrid(el('canvas', { class: 'pixelated' }), input, greyScale)),
          el('figcaption', { class: 'muted small' }, 'your digit')),
        ...heads.map((grid, i) => el('figure', {}, headTile(grid, input, scale),
          el('figcaption', { class: 'muted small' }, `head ${i}`)))));
  });
  return el('div', { class: 'inside-part' },
    el('h3', {}, 'Attention of each head'),
    el('p', { class: 'muted small' }, `Each tile is one head's attention over your digit's ${gh}×${gw} patch grid `
      + '(brighter: more attention); your strokes are drawn over it in pink.'),
    ...layers);
}
