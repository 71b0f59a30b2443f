// Coordinate-wise robust means over a step's shard gradients: for each coordinate, the shards' values
// sorted, then the median, or the mean after cutting floor(trim × n) values from each end. A minority
// of wrong answers moves each coordinate at most to the honest values' range (Yin et al., "Byzantine-
// robust distributed learning", 2018), at the cost of keeping every shard's gradient for the step.

export const AGGREGATIONS = ['mean', 'trimmed-mean', 'median'] as const;
/** How a step combines its shards' gradients (ClusterConfig.aggregation). */
export type Aggregation = (typeof AGGREGATIONS)[number];

/** How many values 'trimmed-mean' cuts from each end of n (at least one kept in the middle). */
export const trimCount = (n: number, trim: number) => Math.min(Math.floor(trim * n), Math.floor((n - 1) / 2));

export function robustMean(rows: readonly Float32Array[], aggregation: Exclude<Aggregation, 'mean'>, trim: number): Float32Array {
  const n = rows.length;
  if (n === 0) throw new RangeError('no rows to combine');
  const length = rows[0].length;
  for (const r of rows) if (r.length !== length) throw new RangeError(`rows of ${r.length} and ${length} values`);
  // The median is the trimmed mean that keeps the middle one (odd n) or two (even n).
  const cut = aggregation === 'median' ? Math.floor((n - 1) / 2) : trimCount(n, trim);
  const kept = n - 2 * cut;
  const out = new Float32Array(length);
  const column = new Float64Array(n);
  for (let i = 0; i < length; i++) {
    for (let r = 0; r < n; r++) column[r] = rows[r][i];
    // Insertion sort: n is a step's shard count, small.
    for (let a = 1; a < n; a++) {
      const v = column[a];
      let b = a - 1;
      while (b >= 0 && column[b] > v) {
        column[b + 1] = column[b];
        b--;
      }
      column[b + 1] = v;
    }
    let s = 0;
    for (let r = cut; r < n - cut; r++) s += column[r];
    out[i] = s / kept;
  }
  return out;
}
