/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="deno.ns" />
// Small charts: a canvas line chart for the overview and the stream page, an SVG sparkline for table rows.
export class LineChart {
  private series: { label: string; color: string; data: number[] }[];
  constructor(private readonly canvas: HTMLCanvasElement, labels: [string, string][], private readonly fmt: (v: number) => string, private readonly max = 120) {
    this.series = labels.map(([label, color]) => ({ label, color, data: [] }));
  }
  /** Number of points pushed so far (tests read it as data-points). */
  points = 0;
  push(...values: number[]): void {
    values.forEach((v, i) => { const s = this.series[i]; if (!s) return; s.data.push(v); if (s.data.length > this.max) s.data.shift(); });
    this.points++;
    this.canvas.dataset.points = String(this.points);
    this.canvas.dataset.last = values.map((v) => Math.round(v)).join(',');
    this.draw();
  }
  draw(): void {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 300, h = c.clientHeight || 120;
    if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
    const g = c.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(c);
    const fg = css.getPropertyValue('--muted') || '#888';
    let top = 1;
    for (const s of this.series) for (const v of s.data) top = Math.max(top, v);
    top *= 1.15;
    g.strokeStyle = fg; g.globalAlpha = 0.25; g.beginPath(); g.moveTo(0, h - 0.5); g.lineTo(w, h - 0.5); g.stroke(); g.globalAlpha = 1;
    this.series.forEach((s, k) => {
      g.strokeStyle = s.color; g.lineWidth = 1.5; g.beginPath();
      s.data.forEach((v, i) => {
        // Fill the width from the first minute on, then scroll.
        const span = Math.min(this.max, Math.max(60, s.data.length)) - 1;
        const x = w - (s.data.length - 1 - i) * (w / span);
        const y = h - 4 - (v / top) * (h - 18);
        if (i) g.lineTo(x, y); else g.moveTo(x, y);
      });
      g.stroke();
      g.fillStyle = s.color; g.font = '11px system-ui, sans-serif';
      g.fillText(`${s.label} ${this.fmt(s.data[s.data.length - 1] ?? 0)}`, 6 + k * 140, 12);
    });
  }
}

export function sparkline(data: number[], w = 90, h = 22): string {
  if (data.length < 2) return `<svg width="${w}" height="${h}" aria-hidden="true"></svg>`;
  const top = Math.max(1, ...data);
  const pts = data.map((v, i) => `${((i / (data.length - 1)) * w).toFixed(1)},${(h - 2 - (v / top) * (h - 4)).toFixed(1)}`).join(' ');
  return `<svg width="${w}" height="${h}" aria-hidden="true"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="${pts}"/></svg>`;
}
