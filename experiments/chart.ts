// A grouped bar chart as SVG text: one group per (preset, shift), one bar per configuration, its
// height the mean over seeds and a whisker of ± one standard deviation.

export interface Bar {
  readonly label: string;
  /** Percent; NaN draws no bar (a cell not measured). */
  readonly mean: number;
  readonly std: number;
}

export interface BarGroup {
  readonly label: string;
  readonly bars: readonly Bar[];
}

const COLORS = ['#7f7f7f', '#bcbd22', '#d62728', '#1f77b4', '#9467bd', '#ff7f0e', '#2ca02c', '#8c564b'];
const H = 420;
const PAD = { left: 60, right: 20, top: 40, bottom: 90 };
const BAR = 16;
const GAP = 28;

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function groupedBarChart(title: string, groups: readonly BarGroup[], legend: readonly string[]): string {
  const groupWidth = legend.length * BAR + GAP;
  const W = Math.max(560, PAD.left + PAD.right + groups.length * groupWidth);
  const top = Math.min(100, Math.ceil((Math.max(0, ...groups.flatMap((g) => g.bars.map((b) => (Number.isFinite(b.mean) ? b.mean + b.std : 0)))) + 5) / 10) * 10);
  const y = (v: number) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escape(title)}</text>`,
    `<text transform="translate(16 ${(H - PAD.bottom + PAD.top) / 2}) rotate(-90)" text-anchor="middle">accuracy (%)</text>`,
  ];
  for (let v = 0; v <= top; v += 10) {
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${PAD.left - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  groups.forEach((g, gi) => {
    const x0 = PAD.left + GAP / 2 + gi * groupWidth;
    g.bars.forEach((b, bi) => {
      if (!Number.isFinite(b.mean)) return;
      const x = x0 + bi * BAR;
      const color = COLORS[legend.indexOf(b.label) % COLORS.length];
      parts.push(`<rect x="${x}" y="${y(b.mean)}" width="${BAR - 2}" height="${y(0) - y(b.mean)}" fill="${color}"><title>${escape(`${g.label} ${b.label}: ${b.mean.toFixed(2)} ± ${b.std.toFixed(2)}`)}</title></rect>`);
      if (b.std > 0) {
        const cx = x + (BAR - 2) / 2;
        parts.push(`<path d="M${cx} ${y(b.mean + b.std)}V${y(Math.max(0, b.mean - b.std))}M${cx - 3} ${y(b.mean + b.std)}h6M${cx - 3} ${y(Math.max(0, b.mean - b.std))}h6" stroke="black"/>`);
      }
    });
    parts.push(`<text x="${x0 + (legend.length * BAR) / 2}" y="${H - PAD.bottom + 16}" text-anchor="middle">${escape(g.label)}</text>`);
  });
  legend.forEach((label, i) => {
    const x = PAD.left + (i % 3) * 180;
    const yy = H - PAD.bottom + 40 + Math.floor(i / 3) * 18;
    parts.push(`<rect x="${x}" y="${yy - 10}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`, `<text x="${x + 18}" y="${yy}">${escape(label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
