// Per-image captions for the `concat` head: JSONL, one {"index": <record>, "text": "<caption>"} per line.

export const MAX_CAPTION_CHARS = 2000;
const MAX_LISTED_PROBLEMS = 20;
const FIELDS = new Set(['index', 'text']);

/** The caption trimmed; throws `${where}: …` when it is empty or longer than MAX_CAPTION_CHARS. */
export function checkCaptionText(text: string, where: string): string {
  const trimmed = text.trim();
  if (trimmed === '') throw new Error(`${where}: caption text is empty`);
  const chars = Array.from(trimmed).length;
  if (chars > MAX_CAPTION_CHARS) {
    throw new Error(`${where}: caption text has ${chars} characters, more than ${MAX_CAPTION_CHARS}`);
  }
  return trimmed;
}

/** Record index → trimmed caption. Throws one Error listing every problem as `${fileName}:${line}: …`. */
export function parseCaptionFile(text: string, fileName: string, recordCount: number): Map<number, string> {
  if (!Number.isInteger(recordCount) || recordCount < 0) {
    throw new Error(`${fileName}: recordCount must be a non-negative integer, got ${recordCount}`);
  }
  const captions = new Map<number, string>();
  const lineOfIndex = new Map<number, number>();
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    const line = i + 1;
    const where = `${fileName}:${line}`;
    const entry = parseLine(raw, where, recordCount);
    problems.push(...entry.problems);
    if (entry.index === undefined) return;
    const earlier = lineOfIndex.get(entry.index);
    if (earlier !== undefined) {
      problems.push(`${where}: duplicate index ${entry.index} (first on line ${earlier})`);
      return;
    }
    lineOfIndex.set(entry.index, line);
    if (entry.text !== undefined) captions.set(entry.index, entry.text);
  });
  if (problems.length > 0) throw new Error(describeProblems(fileName, problems));
  return captions;
}

interface Entry {
  index?: number;
  text?: string;
  problems: string[];
}

function parseLine(raw: string, where: string, recordCount: number): Entry {
  const problems: string[] = [];
  const report = (problem: string) => problems.push(`${where}: ${problem}`);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    report(`invalid JSON (${(e as Error).message})`);
    return { problems };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    report(`expected a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`);
    return { problems };
  }
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).filter((key) => !FIELDS.has(key));
  if (unknown.length > 0) report(`unknown field(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  const index = checkIndex(record.index, recordCount, report);
  const text = checkText(record.text, where, problems);
  return { index, text, problems };
}

function checkIndex(index: unknown, recordCount: number, report: (problem: string) => void): number | undefined {
  if (index === undefined) return void report('missing "index"');
  if (typeof index !== 'number' || !Number.isInteger(index)) {
    return void report(`"index" must be an integer, got ${JSON.stringify(index)}`);
  }
  if (index < 0 || index >= recordCount) {
    return void report(`index ${index} is out of range (${recordCount === 0 ? 'no records' : `0..${recordCount - 1}`})`);
  }
  return index;
}

function checkText(text: unknown, where: string, problems: string[]): string | undefined {
  if (text === undefined) return void problems.push(`${where}: missing "text"`);
  if (typeof text !== 'string') return void problems.push(`${where}: "text" must be a string, got ${JSON.stringify(text)}`);
  try {
    return checkCaptionText(text, where);
  } catch (e) {
    problems.push((e as Error).message);
    return undefined;
  }
}

function describeProblems(fileName: string, problems: readonly string[]): string {
  const listed = problems.slice(0, MAX_LISTED_PROBLEMS);
  const more = problems.length - listed.length;
  const header = `${fileName}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in caption file:`;
  return [header, ...listed, ...(more > 0 ? [`…and ${more} more`] : [])].join('\n');
}
