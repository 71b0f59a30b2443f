// The scaling chart as SVG text: efficiency against workers (log2 axis), one line per design, points
// for what was measured and what the model predicted for it.

export interface Series {
  readonly label: string;
  readonly color: string;
  readonly points: readonly { readonly x: number; readonly y: number }[];
  /** Markers only (measured points), no line. */
  readonly markers?: 'circle' | 'cross';
}

const W = 720;
const H = 480;
/** The legend sits under the axis, two entries a row. */
const PAD = { left: 60, right: 20, top: 40, bottom: 110 };

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function scalingChart(title: string, series: readonly Series[], xMax: number, yLabel: string, yMax = 1.1): string {
  const x = (v: number) => PAD.left + (Math.log2(v) / Math.log2(xMax)) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (Math.min(v, yMax) / yMax) * (H - PAD.top - PAD.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escape(title)}</text>`,
  ];
  for (let v = 0; v <= yMax + 1e-9; v += 0.2) {
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${PAD.left - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v * 100)} %</text>`);
  }
  for (let v = 1; v <= xMax; v *= 2) parts.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${PAD.top}" y2="${H - PAD.bottom}" stroke="#eee"/>`, `<text x="${x(v)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${v}</text>`);
  parts.push(
    `<text x="${W / 2}" y="${H - PAD.bottom + 34}" text-anchor="middle">workers (N)</text>`,
    `<text transform="translate(16 ${H / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`,
    `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(0.8)}" y2="${y(0.8)}" stroke="#999" stroke-dasharray="4 4"/>`,
  );
  series.forEach((s, i) => {
    if (s.markers) {
      for (const p of s.points) {
        const [cx, cy] = [x(p.x), y(p.y)];
        parts.push(s.markers === 'circle' ? `<circle cx="${cx}" cy="${cy}" r="4" fill="none" stroke="${s.color}" stroke-width="2"/>` : `<path d="M${cx - 4} ${cy - 4}L${cx + 4} ${cy + 4}M${cx - 4} ${cy + 4}L${cx + 4} ${cy - 4}" stroke="${s.color}" stroke-width="2"/>`);
      }
    } else {
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.points.map((p) => `${x(p.x)},${y(p.y)}`).join(' ')}"/>`);
    }
    const [lx, ly] = [PAD.left + (i % 2) * 320, H - PAD.bottom + 58 + Math.floor(i / 2) * 16];
    const key = s.markers === 'circle' ? `<circle cx="${lx + 5}" cy="${ly - 4}" r="4" fill="none" stroke="${s.color}" stroke-width="2"/>` : s.markers === 'cross' ? `<path d="M${lx + 1} ${ly - 8}L${lx + 9} ${ly}M${lx + 1} ${ly}L${lx + 9} ${ly - 8}" stroke="${s.color}" stroke-width="2"/>` : `<line x1="${lx}" x2="${lx + 10}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`;
    parts.push(key, `<text x="${lx + 16}" y="${ly}">${escape(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
