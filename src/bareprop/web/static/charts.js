// Line charts on uPlot (static/vendor/, MIT): one thin class that sizes itself to its card,
// keeps its data, and redraws at most once per animation frame however fast points arrive.
import { el } from './util.js';

export const PALETTE = ['#4f46e5', '#e11d48', '#059669', '#d97706', '#0891b2', '#7c3aed', '#db2777', '#65a30d'];

const WHOLE = [0, 1, 2, 3, 4, 5, 6].flatMap((e) => [1, 2, 5].map((m) => m * 10 ** e));

const AXIS = { stroke: '#475569', grid: { stroke: '#e2e8f0', width: 1 }, ticks: { stroke: '#cbd5e1', width: 1 },
               font: '12px system-ui, sans-serif', labelFont: '12px system-ui, sans-serif' };

/** A y range as uPlot would pick it, kept within [lo, hi] (no 120% accuracy when every value is 100%). */
function clamped([lo, hi]) {
  return (u, min, max) => {
    const [a, b] = uPlot.rangeNum(min ?? lo, max ?? hi, 0.1, true);
    return [Math.max(lo, a), Math.min(hi, b)];
  };
}

export class LineChart {
  /**
   * container: an element; options: {x: label, y: label, series: [{label, color, dash, points, width}],
   * height, percent: y as a fraction shown in %, clamp: [lo, hi] the y axis never goes beyond}.
   */
  constructor(container, options) {
    this.container = container;
    this.options = options;
    this.data = [[], ...options.series.map(() => [])];
    this.pending = false;
    container.replaceChildren();
    container.classList.add('chart-box');
    this.note = el('div', { class: 'chart-note' }, options.empty || 'No points yet');
    const width = Math.max(280, container.clientWidth || 600);
    const fmt = options.percent ? (u, v) => (v === null ? '—' : `${(100 * v).toFixed(2)}%`)
                                : (u, v) => (v === null ? '—' : Number(v.toPrecision(4)).toString());
    this.plot = new uPlot({
      width, height: options.height || 220,
      scales: { x: { time: false }, ...(options.clamp ? { y: { range: clamped(options.clamp) } } : {}) },
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      axes: [
        { ...AXIS, label: options.x, size: 40,
          // epochs and steps are whole numbers: no 1.5 ticks
          incrs: options.integerX ? WHOLE : undefined },
        { ...AXIS, label: options.y, size: 56,
          values: options.percent ? (u, ticks) => ticks.map((t) => `${(100 * t).toFixed(0)}%`) : undefined },
      ],
      series: [
        { label: options.x },
        ...options.series.map((s, i) => ({
          label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: s.width || 2,
          dash: s.dash, value: fmt, spanGaps: true,
          points: { show: s.points ?? false, size: 6 },
        })),
      ],
    }, this.data, container);
    container.append(this.note);
    this.resizer = new ResizeObserver(() => {
      const w = Math.max(280, container.clientWidth);
      if (Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: this.plot.height });
    });
    this.resizer.observe(container);
    this.update();
  }

  get length() { return this.data[0].length; }

  /** Replace all data: [xs, ys1, ys2, ...]. */
  set(data) { this.data = data; this.update(); }

  /** Append one x with its series values. */
  push(x, ...ys) {
    this.data[0].push(x);
    ys.forEach((y, i) => this.data[i + 1].push(y ?? null));
    this.update();
  }

  clear() { this.set([[], ...this.options.series.map(() => [])]); }

  update() {
    this.container.dataset.points = String(this.length);
    this.container.dataset.lastX = this.length ? String(this.data[0][this.length - 1]) : '';
    this.note.hidden = this.length > 0;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.plot.setData(this.data); });
  }

  destroy() { this.resizer.disconnect(); this.plot.destroy(); }
}
