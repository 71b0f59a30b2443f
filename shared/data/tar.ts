/**
 * Streaming reader for ustar archives (POSIX, GNU and pax flavours), platform-free.
 *
 * Push chunks of any size — headers and bodies may be split anywhere — and collect the regular files
 * completed by each chunk. GNU long names ('L') and pax extended headers ('x') rename the entry that
 * follows them; every other entry type (directories, links, global pax headers, …) is skipped.
 */

export interface TarEntry {
  /** Path inside the archive, as recorded (long-name and pax `path` overrides applied). */
  name: string;
  data: Uint8Array;
}

const BLOCK = 512;
const utf8 = new TextDecoder();

/** Types whose body we keep: regular file ('0'), old-style regular file (NUL), contiguous file ('7'). */
const FILE_TYPES = new Set([0x30, 0x00, 0x37]);
const GNU_LONG_NAME = 0x4c; // 'L'
const PAX_HEADER = 0x78; // 'x'

interface OpenEntry {
  name: string;
  type: number;
  size: number;
  /** null for entry types whose body is skipped. */
  data: Uint8Array | null;
  filled: number;
}

export class TarReader {
  private readonly header = new Uint8Array(BLOCK);
  private headerFill = 0;
  private entry: OpenEntry | null = null;
  private padding = 0;
  /** Name set by a preceding 'L' or pax 'x' entry, for the next header only. */
  private nextName: string | null = null;
  private lastName = '(start of archive)';
  private offset = 0;
  private finished = false;

  /** True once the end-of-archive marker (a zero block) has been read; later bytes are ignored. */
  get done(): boolean {
    return this.finished;
  }

  /** Consumes `chunk` and returns the regular files it completed, in archive order. */
  push(chunk: Uint8Array): TarEntry[] {
    const out: TarEntry[] = [];
    let pos = 0;
    while (pos < chunk.length && !this.finished) {
      const avail = chunk.length - pos;
      if (this.padding > 0) {
        const n = Math.min(this.padding, avail);
        this.padding -= n;
        pos += n;
      } else if (this.entry) {
        const e = this.entry;
        const n = Math.min(e.size - e.filled, avail);
        e.data?.set(chunk.subarray(pos, pos + n), e.filled);
        e.filled += n;
        pos += n;
        if (e.filled === e.size) this.closeEntry(out);
      } else {
        const n = Math.min(BLOCK - this.headerFill, avail);
        this.header.set(chunk.subarray(pos, pos + n), this.headerFill);
        this.headerFill += n;
        pos += n;
        if (this.headerFill === BLOCK) {
          this.headerFill = 0;
          this.openEntry(out, this.offset + pos - BLOCK);
        }
      }
    }
    this.offset += pos;
    return out;
  }

  /**
   * Declares the end of input. Throws if the input stopped inside a header, an entry or its padding.
   * An archive that ends cleanly between entries without the end-of-archive marker is accepted.
   */
  end(): void {
    if (this.finished) return;
    if (this.entry) {
      const e = this.entry;
      throw new Error(`tar: archive is truncated inside entry "${e.name}" (${e.filled} of ${e.size} bytes)`);
    }
    if (this.padding > 0) {
      throw new Error(`tar: archive is truncated in the padding after entry "${this.lastName}"`);
    }
    if (this.headerFill > 0) {
      throw new Error(
        `tar: archive is truncated inside the header after entry "${this.lastName}" ` +
          `(${this.headerFill} of ${BLOCK} bytes)`,
      );
    }
  }

  private openEntry(out: TarEntry[], headerOffset: number): void {
    const h = this.header;
    if (h.every((b) => b === 0)) {
      this.finished = true;
      return;
    }
    const recorded = readName(h);
    const checksum = readNumber(h, 148, 8);
    if (checksum !== headerChecksum(h)) {
      throw new Error(
        `tar: bad header checksum for entry "${recorded}" at byte ${headerOffset} (after entry "${this.lastName}")`,
      );
    }
    const type = h[156];
    const size = readNumber(h, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new Error(`tar: entry "${recorded}" has an invalid size field`);
    }
    const isMeta = type === GNU_LONG_NAME || type === PAX_HEADER;
    const name = isMeta ? recorded : (this.nextName ?? recorded);
    if (!isMeta) this.nextName = null;
    const keep = isMeta || FILE_TYPES.has(type);
    this.entry = { name, type, size, data: keep ? new Uint8Array(size) : null, filled: 0 };
    if (size === 0) this.closeEntry(out);
  }

  private closeEntry(out: TarEntry[]): void {
    const e = this.entry!;
    this.entry = null;
    this.padding = (BLOCK - (e.size % BLOCK)) % BLOCK;
    if (e.type === GNU_LONG_NAME) {
      this.nextName = cString(e.data!, 0, e.size);
    } else if (e.type === PAX_HEADER) {
      const path = paxPath(e.data!, this.lastName);
      if (path !== null) this.nextName = path;
    } else {
      this.lastName = e.name;
      if (e.data) out.push({ name: e.name, data: e.data });
    }
  }
}

function cString(bytes: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && bytes[end] !== 0) end++;
  return utf8.decode(bytes.subarray(start, end));
}

/** Name field, joined with the ustar prefix field when the header is ustar. */
function readName(h: Uint8Array): string {
  const name = cString(h, 0, 100);
  const isUstar = h[257] === 0x75 && h[258] === 0x73 && h[259] === 0x74 && h[260] === 0x61 && h[261] === 0x72;
  const prefix = isUstar ? cString(h, 345, 155) : '';
  return prefix ? `${prefix}/${name}` : name;
}

/** Octal numeric field, or GNU base-256 when the high bit of the first byte is set. */
function readNumber(h: Uint8Array, start: number, length: number): number {
  if (h[start] & 0x80) {
    let v = h[start] & 0x7f;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + h[i];
    return v;
  }
  const text = cString(h, start, length).trim();
  return text === '' ? 0 : /^[0-7]+$/.test(text) ? parseInt(text, 8) : NaN;
}

/** Sum of header bytes with the checksum field counted as spaces. */
function headerChecksum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  return sum;
}

/** The `path` record of a pax extended header ("<len> path=<value>\n" records), or null if absent. */
function paxPath(data: Uint8Array, after: string): string | null {
  let path: string | null = null;
  let pos = 0;
  while (pos < data.length) {
    let space = pos;
    while (space < data.length && data[space] !== 0x20) space++;
    const length = parseInt(utf8.decode(data.subarray(pos, space)), 10);
    if (!(length > 0) || pos + length > data.length || data[pos + length - 1] !== 0x0a) {
      throw new Error(`tar: malformed pax header (after entry "${after}")`);
    }
    const record = utf8.decode(data.subarray(space + 1, pos + length - 1));
    const eq = record.indexOf('=');
    if (record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    pos += length;
  }
  return path;
}
