// WordPiece tokenizer matching Hugging Face's BertTokenizer (BasicTokenizer, then WordpieceTokenizer),
// for feeding BERT in onnxruntime. Pure: runs in Node, workerd and browsers.

export const MAX_SEQUENCE_LENGTH = 512;

export interface WordPieceOptions {
  lowercase: boolean;
  stripAccents: boolean;
  cleanText: boolean;
  handleChineseChars: boolean;
  unkToken: string;
  /** Marks a piece that continues a word ("##"). */
  prefix: string;
  /** Longer words (in code points) become the unknown token whole. */
  maxInputCharsPerWord: number;
}

/** bert-base-uncased: do_lower_case=True, accents stripped because strip_accents is unset. */
const UNCASED: WordPieceOptions = {
  lowercase: true,
  stripAccents: true,
  cleanText: true,
  handleChineseChars: true,
  unkToken: '[UNK]',
  prefix: '##',
  maxInputCharsPerWord: 100,
};

/** Row-major [batch, length] int64 tensors for BERT's three inputs. */
export interface EncodedBatch {
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  tokenTypeIds: BigInt64Array;
  batch: number;
  length: number;
}

export class WordPieceTokenizer {
  readonly size: number;
  readonly padId: number;
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;

  private constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    private readonly options: WordPieceOptions,
    source: string,
  ) {
    const missing: string[] = [];
    const special = (token: string): number => {
      const id = vocab.get(token);
      if (id === undefined) missing.push(token);
      return id ?? -1;
    };
    this.padId = special('[PAD]');
    this.unkId = special(options.unkToken);
    this.clsId = special('[CLS]');
    this.sepId = special('[SEP]');
    if (missing.length > 0) throw new Error(`${source}: vocabulary lacks special token(s) ${missing.join(' ')}`);
    this.size = vocab.size;
  }

  /** vocab.txt: one token per line, id = line index (0-based). */
  static fromVocab(text: string, source: string): WordPieceTokenizer {
    const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
    if (lines.at(-1) === '') lines.pop();
    if (lines.length === 0) throw new Error(`${source}: vocabulary is empty`);
    const vocab = new Map<string, number>();
    const problems: string[] = [];
    lines.forEach((token, id) => {
      const earlier = vocab.get(token);
      if (token === '') problems.push(`line ${id + 1} is blank`);
      else if (earlier !== undefined) problems.push(`duplicate token ${JSON.stringify(token)} on lines ${earlier + 1} and ${id + 1}`);
      else vocab.set(token, id);
    });
    if (problems.length > 0) throw new Error(`${source}: ${listProblems(problems)}`);
    return new WordPieceTokenizer(vocab, UNCASED, source);
  }

  /** Hugging Face tokenizer.json with a WordPiece model (and a BertNormalizer, or none). */
  static fromTokenizerJson(json: unknown, source: string): WordPieceTokenizer {
    const model = isRecord(json) && isRecord(json.model) ? json.model : undefined;
    if (!isRecord(json) || model?.type !== 'WordPiece') {
      throw new Error(`${source}: not a WordPiece tokenizer.json (model.type is ${JSON.stringify(model?.type)})`);
    }
    const pre = json.pre_tokenizer;
    if (isRecord(pre) && pre.type !== 'BertPreTokenizer') {
      throw new Error(`${source}: unsupported pre_tokenizer ${JSON.stringify(pre.type)} (only BertPreTokenizer)`);
    }
    const options: WordPieceOptions = {
      ...normalizerOptions(json.normalizer, source),
      unkToken: setting(model, 'unk_token', 'string', UNCASED.unkToken, source),
      prefix: setting(model, 'continuing_subword_prefix', 'string', UNCASED.prefix, source),
      maxInputCharsPerWord: setting(model, 'max_input_chars_per_word', 'number', UNCASED.maxInputCharsPerWord, source),
    };
    if (!Number.isInteger(options.maxInputCharsPerWord) || options.maxInputCharsPerWord < 1) {
      throw new Error(`${source}: model.max_input_chars_per_word must be a positive integer`);
    }
    return new WordPieceTokenizer(vocabFromJson(model.vocab, source), options, source);
  }

  /** Word pieces, with the unknown token standing for any word that cannot be split into known pieces. */
  tokenize(text: string): string[] {
    return basicTokenize(text, this.options).flatMap((word) => this.wordPieces(word));
  }

  /** [CLS] pieces [SEP], the pieces truncated so that the whole fits in maxLength. */
  encode(text: string, maxLength = MAX_SEQUENCE_LENGTH): number[] {
    checkMaxLength(maxLength);
    const ids = this.tokenize(text)
      .slice(0, maxLength - 2)
      .map((piece) => this.vocab.get(piece) as number);
    return [this.clsId, ...ids, this.sepId];
  }

  /** Encodes each text and pads with [PAD] to the longest sequence in the batch. */
  encodeBatch(texts: readonly string[], maxLength = MAX_SEQUENCE_LENGTH): EncodedBatch {
    checkMaxLength(maxLength);
    if (texts.length === 0) throw new Error('encodeBatch: no texts to encode');
    const rows = texts.map((text, i) => {
      if (text.trim() === '') throw new Error(`encodeBatch: text ${i} is empty`);
      return this.encode(text, maxLength);
    });
    const batch = rows.length;
    const length = rows.reduce((n, row) => Math.max(n, row.length), 0);
    const inputIds = new BigInt64Array(batch * length).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(batch * length);
    rows.forEach((row, b) =>
      row.forEach((id, j) => {
        inputIds[b * length + j] = BigInt(id);
        attentionMask[b * length + j] = 1n;
      }),
    );
    return { inputIds, attentionMask, tokenTypeIds: new BigInt64Array(batch * length), batch, length };
  }

  /** Greedy longest-match-first, as in BERT's WordpieceTokenizer. */
  private wordPieces(word: string): string[] {
    const { unkToken, prefix, maxInputCharsPerWord } = this.options;
    const chars = Array.from(word);
    if (chars.length > maxInputCharsPerWord) return [unkToken];
    const pieces: string[] = [];
    for (let start = 0; start < chars.length; ) {
      let end = chars.length;
      let piece: string | undefined;
      for (; end > start; end--) {
        const candidate = (start > 0 ? prefix : '') + chars.slice(start, end).join('');
        if (this.vocab.has(candidate)) {
          piece = candidate;
          break;
        }
      }
      if (piece === undefined) return [unkToken];
      pieces.push(piece);
      start = end;
    }
    return pieces;
  }
}

function checkMaxLength(maxLength: number): void {
  if (!Number.isInteger(maxLength) || maxLength < 2 || maxLength > MAX_SEQUENCE_LENGTH) {
    throw new Error(`maxLength must be an integer in 2..${MAX_SEQUENCE_LENGTH}, got ${maxLength}`);
  }
}

// ---- BasicTokenizer ----

function basicTokenize(text: string, o: WordPieceOptions): string[] {
  let s = o.cleanText ? cleanText(text) : text;
  if (o.handleChineseChars) s = padChineseChars(s);
  return s
    .normalize('NFC')
    .split(/\s+/u)
    .filter((word) => word !== '')
    .flatMap((word) => splitOnPunctuation(normalizeWord(word, o)));
}

/** Drops NUL, U+FFFD and control/format/unassigned characters; every whitespace becomes a space. */
function cleanText(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
    out += isWhitespace(ch) ? ' ' : ch;
  }
  return out;
}

const isWhitespace = (ch: string): boolean => ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || /\p{Zs}/u.test(ch);
const isControl = (ch: string): boolean => ch !== '\t' && ch !== '\n' && ch !== '\r' && /\p{C}/u.test(ch);

/** BERT treats all non-letter/number ASCII as punctuation (e.g. $ + ^ `), which Unicode does not. */
function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0) as number;
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126) || /\p{P}/u.test(ch);
}

/** The CJK Unified Ideograph blocks (not Japanese kana or Hangul, which are written with spaces). */
const CJK_RANGES: readonly (readonly [number, number])[] = [
  [0x4e00, 0x9fff],
  [0x3400, 0x4dbf],
  [0x20000, 0x2a6df],
  [0x2a700, 0x2b73f],
  [0x2b740, 0x2b81f],
  [0x2b820, 0x2ceaf],
  [0xf900, 0xfaff],
  [0x2f800, 0x2fa1f],
];

function padChineseChars(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    out += CJK_RANGES.some(([lo, hi]) => cp >= lo && cp <= hi) ? ` ${ch} ` : ch;
  }
  return out;
}

function normalizeWord(word: string, o: WordPieceOptions): string {
  const lower = o.lowercase ? word.toLowerCase() : word;
  return o.stripAccents ? lower.normalize('NFD').replace(/\p{Mn}/gu, '') : lower;
}

function splitOnPunctuation(word: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const ch of word) {
    if (!isPunctuation(ch)) {
      current += ch;
      continue;
    }
    if (current !== '') out.push(current);
    out.push(ch);
    current = '';
  }
  if (current !== '') out.push(current);
  return out;
}

// ---- tokenizer.json ----

type Settings = Pick<WordPieceOptions, 'lowercase' | 'stripAccents' | 'cleanText' | 'handleChineseChars'>;

/** Hugging Face semantics: no normalizer means no normalization; strip_accents null follows lowercase. */
function normalizerOptions(normalizer: unknown, source: string): Settings {
  if (normalizer === undefined || normalizer === null) {
    return { lowercase: false, stripAccents: false, cleanText: false, handleChineseChars: false };
  }
  if (!isRecord(normalizer) || normalizer.type !== 'BertNormalizer') {
    const type = isRecord(normalizer) ? normalizer.type : normalizer;
    throw new Error(`${source}: unsupported normalizer ${JSON.stringify(type)} (only BertNormalizer)`);
  }
  const lowercase = setting(normalizer, 'lowercase', 'boolean', true, source);
  return {
    lowercase,
    stripAccents: setting(normalizer, 'strip_accents', 'boolean', lowercase, source),
    cleanText: setting(normalizer, 'clean_text', 'boolean', true, source),
    handleChineseChars: setting(normalizer, 'handle_chinese_chars', 'boolean', true, source),
  };
}

function setting<T extends string | number | boolean>(
  obj: Record<string, unknown>,
  key: string,
  type: 'string' | 'number' | 'boolean',
  fallback: T,
  source: string,
): T {
  const value = obj[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== type) throw new Error(`${source}: ${key} must be a ${type}, got ${JSON.stringify(value)}`);
  return value as T;
}

function vocabFromJson(raw: unknown, source: string): Map<string, number> {
  if (!isRecord(raw)) throw new Error(`${source}: model.vocab must be an object of token → id`);
  const vocab = new Map<string, number>();
  const tokenOf = new Map<number, string>();
  for (const [token, id] of Object.entries(raw)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new Error(`${source}: model.vocab[${JSON.stringify(token)}] must be a non-negative integer id`);
    }
    const other = tokenOf.get(id);
    if (other !== undefined) throw new Error(`${source}: tokens ${JSON.stringify(other)} and ${JSON.stringify(token)} share id ${id}`);
    tokenOf.set(id, token);
    vocab.set(token, id);
  }
  if (vocab.size === 0) throw new Error(`${source}: vocabulary is empty`);
  return vocab;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function listProblems(problems: readonly string[], max = 10): string {
  const more = problems.length > max ? `; …and ${problems.length - max} more` : '';
  return problems.slice(0, max).join('; ') + more;
}
