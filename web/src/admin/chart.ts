// A small line chart drawn on a <canvas> (the CSP allows no inline styles or
// SVG markup from strings; drawing from script is allowed). One chart per
// quantity, x = the last few minutes, y from 0 to a rounded maximum.
import { h } from './dom';

export interface Series { label: string; color: string; values: (number | null)[]; }

export class LineChart {
  readonly el: HTMLDivElement;
  private canvas: HTMLCanvasElement;
  private legend: HTMLDivElement;

  /** `minTop`: the smallest top of the y axis (4 for counts, so ticks are whole numbers). */
  constructor(readonly title: string, readonly format: (v: number) => string, testid: string, readonly minTop = 0) {
    this.canvas = h('canvas', { class: 'chart-canvas', width: 480, height: 160 });
    this.legend = h('div', { class: 'legend' });
    this.el = h('div', { class: 'chart', testid }, h('div', { class: 'chart-title' }, title), this.canvas, this.legend);
  }

  /** Draws the series; `times` are unix ms, aligned with each series' values. */
  draw(times: number[], series: Series[], maxWindowMs = 300000): void {
    // The x axis spans what has been sampled (at least a minute, at most
    // maxWindowMs), so a freshly opened console does not squeeze its first
    // seconds against the right edge.
    const span = times.length > 1 ? times[times.length - 1] - times[0] : 0;
    const windowMs = Math.min(maxWindowMs, Math.max(60000, Math.ceil(span / 60000) * 60000));
    const dpr = window.devicePixelRatio || 1;
    const cssW = Math.max(200, this.canvas.clientWidth || 480);
    const cssH = 160;
    if (this.canvas.width !== Math.round(cssW * dpr)) this.canvas.width = Math.round(cssW * dpr);
    if (this.canvas.height !== Math.round(cssH * dpr)) this.canvas.height = Math.round(cssH * dpr);
    const g = this.canvas.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    const left = 56, right = 8, top = 8, bottom = 18;
    const w = cssW - left - right, ht = cssH - top - bottom;
    let max = 0;
    for (const s of series) for (const v of s.values) if (v !== null && Number.isFinite(v)) max = Math.max(max, v);
    const ymax = niceMax(Math.max(max, this.minTop));
    const now = times.length ? times[times.length - 1] : Date.now();
    const t0 = now - windowMs;
    g.strokeStyle = '#d0d4da';
    g.fillStyle = '#5b6470';
    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = top + ht - (ht * i) / 4;
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + w, y + 0.5); g.stroke();
      g.fillText(this.format((ymax * i) / 4), left - 4, y);
    }
    g.textAlign = 'left';
    g.textBaseline = 'alphabetic';
    g.fillText(`-${Math.round(windowMs / 60000)} min`, left, cssH - 4);
    g.textAlign = 'right';
    g.fillText('now', left + w, cssH - 4);
    for (const s of series) {
      g.strokeStyle = s.color;
      g.lineWidth = 1.5;
      g.beginPath();
      let pen = false;
      for (let i = 0; i < times.length; i++) {
        const v = s.values[i];
        if (v === null || v === undefined || !Number.isFinite(v) || times[i] < t0) { pen = false; continue; }
        const x = left + (w * (times[i] - t0)) / windowMs;
        const y = top + ht - (ht * v) / ymax;
        if (pen) g.lineTo(x, y); else g.moveTo(x, y);
        pen = true;
      }
      g.stroke();
    }
    this.legend.replaceChildren(...series.map((s) => {
      const last = [...s.values].reverse().find((v) => v !== null && v !== undefined);
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = s.color; // from script: allowed by style-src 'self'
      return h('span', { class: 'legend-item' }, swatch, `${s.label} ${last === undefined || last === null ? '—' : this.format(last)}`);
    }));
  }
}

/** 1, 2 or 5 times a power of ten, at least the maximum (and never 0). */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
