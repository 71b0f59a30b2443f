// A gradient frame's domain section: what a DANN run's domain classifier did on the answer's images.
//   present u32 (0: a run without DANN, nothing follows; 1: the two fields follow)
//   loss    f64 mean domain cross-entropy (over the lease's graph runs, as the frame's loss)
//   correct u32 correct domain predictions among the shard's source and target images (2 × count)
// A frame carries the section or not at all: no zeros standing in for "none".
import { WireError, type FrameReader, type FrameWriter } from './frame';

export interface DomainFigures {
  readonly loss: number;
  readonly correct: number;
}

/** Bytes of the domain section (undefined: a frame without one). */
export const domainBytes = (d: DomainFigures | undefined): number => (d ? 4 + 8 + 4 : 4);

export function writeDomain(w: FrameWriter, d: DomainFigures | undefined): void {
  w.u32(d ? 1 : 0);
  if (!d) return;
  w.f64(d.loss);
  w.u32(d.correct);
}

/**
 * The section, refused (WireError 'domain') unless it is well formed: a presence word of 0 or 1, a
 * finite non-negative loss, and at most 2 × `count` correct (the shard's source and target images).
 */
export function readDomain(r: FrameReader, count: number, what: string): { domain?: DomainFigures } {
  const present = r.u32();
  if (present === 0) return {};
  if (present !== 1) throw new WireError('domain', `${what}: domain section marker ${present} (0: none, 1: present)`);
  const loss = r.f64();
  const correct = r.u32();
  if (!Number.isFinite(loss) || loss < 0) throw new WireError('domain', `${what}: domain loss ${loss} is not a finite non-negative number`);
  if (correct > 2 * count) throw new WireError('domain', `${what}: ${correct} correct domain predictions among the shard's ${2 * count} source and target images`);
  return { domain: { loss, correct } };
}
