// Small helpers shared by the pages: the API client, DOM building, number formats, colour maps.
// Every string from the server reaches the page through textContent (el()), never innerHTML.

/** fetch a JSON API path with the session cookie; a 4xx/5xx throws an Error carrying {status, field}. */
export async function api(path, init = {}) {
  const response = await fetch(path, { credentials: 'same-origin', ...init });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.field = body && body.field;
    throw error;
  }
  return body;
}

export function postJSON(path, payload) {
  return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                     body: JSON.stringify(payload ?? {}) });
}

// relative to the page's own path (/s/<id>/): the only path this server's cookie is sent to; a
// sweep's trial is SWEEP/trials/NNNN, each component encoded on its own
export const runPath = (id, tail = '') => `api/runs/${id.split('/').map(encodeURIComponent).join('/')}${tail}`;

/** el('div', {class: 'x', onclick: f}, 'text', child...) — text children become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'style') node.style.cssText = value;      // CSSOM: allowed under a strict style-src CSP
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

export function setText(id, text) { $(id).textContent = text ?? ''; }

// ---- formats ---------------------------------------------------------------------------------
// A network family (experiment/arch.py family) as the pages name it.
const KIND_LABELS = { mlp: 'MLP', cnn: 'CNN', rnn: 'RNN', transformer: 'Transformer' };
export function kindLabel(kind) { return KIND_LABELS[kind] ?? 'net'; }

export function pct(x, digits = 1) { return x === null || x === undefined ? '—' : `${(100 * x).toFixed(digits)}%`; }

export function num(x, digits = 4) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? x.toExponential(2) : Number(x.toPrecision(digits)).toString();
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function stateBadge(state) {
  return el('span', { class: `badge state-${state || 'unknown'}` }, state || 'unknown');
}

// ---- colour maps -----------------------------------------------------------------------------
// viridis (perceptual, for activations >= 0) and a blue-white-red diverging map (for weights and
// signed activations), as a few control points linearly interpolated: close enough for reading.
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
const DIVERGING = [[33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43]];

function interp(points, t) {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (points.length - 1);
  const i = Math.min(points.length - 2, Math.floor(x));
  const f = x - i;
  const a = points[i], b = points[i + 1];
  return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
}

/** A colour scale for values in [min, max]: viridis when min >= 0, else diverging around 0. */
export function scaleFor(min, max) {
  if (min >= 0) {
    const span = max - min || 1;
    return { kind: 'viridis', lo: min, hi: max, rgb: (v) => interp(VIRIDIS, (v - min) / span) };
  }
  const m = Math.max(Math.abs(min), Math.abs(max)) || 1;
  return { kind: 'diverging', lo: -m, hi: m, rgb: (v) => interp(DIVERGING, (v + m) / (2 * m)) };
}

export const greyScale = { kind: 'grey', lo: 0, hi: 1, rgb: (v) => { const g = 255 * (1 - v); return [g, g, g]; } };

/** Paint a (h, w) grid of values (rows of numbers) into ``canvas`` at one pixel per value. */
export function paintGrid(canvas, rows, scale) {
  const h = rows.length, w = h ? rows[0].length : 0;
  canvas.width = Math.max(1, w); canvas.height = Math.max(1, h);
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(canvas.width, canvas.height);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [r, g, b] = scale.rgb(rows[y][x]);
      const o = 4 * (y * w + x);
      image.data[o] = r; image.data[o + 1] = g; image.data[o + 2] = b; image.data[o + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

/** A horizontal colour bar with its end values, for a scale from scaleFor/greyScale. */
export function legend(scale, caption) {
  const bar = el('canvas', { class: 'legend-bar', width: 128, height: 1 });
  const ctx = bar.getContext('2d');
  for (let i = 0; i < 128; i++) {
    const [r, g, b] = scale.rgb(scale.lo + (i / 127) * (scale.hi - scale.lo));
    ctx.fillStyle = `rgb(${r | 0},${g | 0},${b | 0})`;
    ctx.fillRect(i, 0, 1, 1);
  }
  return el('div', { class: 'legend-row' }, el('span', { class: 'legend-v' }, num(scale.lo, 3)), bar,
            el('span', { class: 'legend-v' }, num(scale.hi, 3)),
            caption ? el('span', { class: 'muted small' }, caption) : null);
}
