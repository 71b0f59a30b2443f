import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { WordPieceTokenizer } from '../../shared/text/wordpiece';
import { CIFAR10_CAPTIONS, CIFAR10_CAPTION_SET_NAME } from '../../shared/text/cifar10-captions';
import { checkCaptionText, parseCaptionFile } from '../../shared/text/caption-file';
import { CIFAR10_CLASSES } from '../../shared/data/cifar';
import { BERT_VOCAB, skipWithout } from '../support/prerequisites';

const VOCAB_PATH = BERT_VOCAB.path;
const WITHOUT_VOCAB = skipWithout(BERT_VOCAB);

const [PAD, UNK, CLS, SEP] = [0, 100, 101, 102];

/** A tiny vocabulary: specials first, then the tokens the mechanics tests need. */
const TINY = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', 'un', '##aff', '##able', 'a', '##a', 'don', "'", 't', '中', '!', 'hi'];
const tiny = () => WordPieceTokenizer.fromVocab(`${TINY.join('\n')}\n`, 'tiny.txt');

describe('WordPieceTokenizer mechanics (tiny vocabulary)', () => {
  it('splits greedily, longest match first, with ## continuations', () => {
    expect(tiny().tokenize('unaffable')).toEqual(['un', '##aff', '##able']);
    expect(tiny().tokenize('aaa')).toEqual(['a', '##a', '##a']);
  });

  it('maps a word with any unmatchable part to a single [UNK]', () => {
    expect(tiny().tokenize('unaffablex hi')).toEqual(['[UNK]', 'hi']);
  });

  it('cleans control characters, pads CJK characters and splits punctuation', () => {
    expect(tiny().tokenize('HI\u0000\u200b!\tdon\u2019t中hi')).toEqual(['hi', '!', 'don', '[UNK]', 't', '中', 'hi']);
    expect(tiny().tokenize("don't")).toEqual(['don', "'", 't']);
  });

  it('reads CRLF vocabularies and reports its special ids', () => {
    const t = WordPieceTokenizer.fromVocab(TINY.join('\r\n'), 'crlf.txt');
    expect([t.size, t.padId, t.unkId, t.clsId, t.sepId]).toEqual([TINY.length, 0, 1, 2, 3]);
    expect(t.tokenize('hi!')).toEqual(['hi', '!']);
  });

  it('rejects bad vocabularies, naming the file', () => {
    expect(() => WordPieceTokenizer.fromVocab('', 'v.txt')).toThrow('v.txt: vocabulary is empty');
    expect(() => WordPieceTokenizer.fromVocab([...TINY, 'hi'].join('\n'), 'v.txt')).toThrow(
      'v.txt: duplicate token "hi" on lines 15 and 16',
    );
    expect(() => WordPieceTokenizer.fromVocab(TINY.filter((t) => t !== '[CLS]').join('\n'), 'v.txt')).toThrow(
      'v.txt: vocabulary lacks special token(s) [CLS]',
    );
    expect(() => WordPieceTokenizer.fromVocab(['a', '', ...TINY].join('\n'), 'v.txt')).toThrow('v.txt: line 2 is blank');
  });

  it('checks maxLength and empty texts', () => {
    for (const bad of [1, 513, 2.5]) expect(() => tiny().encode('hi', bad)).toThrow('maxLength must be an integer in 2..512');
    expect(tiny().encode('hi hi', 2)).toEqual([2, 3]);
    expect(() => tiny().encodeBatch(['hi', '  \n'])).toThrow('encodeBatch: text 1 is empty');
    expect(() => tiny().encodeBatch([])).toThrow('no texts');
  });

  it('rejects a tokenizer.json that is not WordPiece', () => {
    expect(() => WordPieceTokenizer.fromTokenizerJson({ model: { type: 'BPE', vocab: {} } }, 'tok.json')).toThrow(
      'tok.json: not a WordPiece tokenizer.json (model.type is "BPE")',
    );
    expect(() => WordPieceTokenizer.fromTokenizerJson([], 'tok.json')).toThrow('tok.json: not a WordPiece');
    const vocab = Object.fromEntries(TINY.map((t, i) => [t, i]));
    expect(() =>
      WordPieceTokenizer.fromTokenizerJson({ normalizer: { type: 'NFKC' }, model: { type: 'WordPiece', vocab } }, 'tok.json'),
    ).toThrow('tok.json: unsupported normalizer "NFKC"');
  });

  it('honours tokenizer.json settings: cased normalizer, unk token, prefix, word length', () => {
    const vocab = { '<pad>': 0, '<?>': 1, '[CLS]': 2, '[SEP]': 3, '[PAD]': 4, Hi: 5, é: 6, '@@i': 7, h: 8 };
    const t = WordPieceTokenizer.fromTokenizerJson(
      {
        normalizer: { type: 'BertNormalizer', lowercase: false, strip_accents: null, clean_text: true, handle_chinese_chars: true },
        pre_tokenizer: { type: 'BertPreTokenizer' },
        model: { type: 'WordPiece', unk_token: '<?>', continuing_subword_prefix: '@@', max_input_chars_per_word: 2, vocab },
      },
      'cased.json',
    );
    expect(t.unkId).toBe(1);
    expect(t.tokenize('Hi hi é hhh')).toEqual(['Hi', 'h', '@@i', 'é', '<?>']);
  });
});

describe.skipIf(WITHOUT_VOCAB)('WordPieceTokenizer with the real bert-base-uncased vocabulary', () => {
  let tok: WordPieceTokenizer;
  beforeAll(() => {
    tok = WordPieceTokenizer.fromVocab(readFileSync(VOCAB_PATH, 'utf8'), VOCAB_PATH);
  });

  it('has the bert-base-uncased special ids', () => {
    expect([tok.size, tok.padId, tok.unkId, tok.clsId, tok.sepId]).toEqual([30522, PAD, UNK, CLS, SEP]);
  });

  // Ids looked up in vocab.txt (id = line number − 1).
  it.each([
    ['i like strawberries', [CLS, 1045, 2066, 13137, 20968, SEP]], // straw ##berries
    ['Hello, world!', [CLS, 7592, 1010, 2088, 999, SEP]],
    ['The quick brown fox jumps over the lazy dog.', [CLS, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, SEP]],
    ["John Johanson's house", [CLS, 2198, 13093, 3385, 1005, 1055, 2160, SEP]], // john johan ##son ' s house
    ['unaffable', [CLS, 14477, 20961, 3468, SEP]], // una ##ffa ##ble, not the README's un ##aff ##able
    ["don't", [CLS, 2123, 1005, 1056, SEP]], // don ' t
    ['$5.00 + 3^2 = `x`', [CLS, 1002, 1019, 1012, 4002, 1009, 1017, 1034, 1016, 1027, 1036, 1060, 1036, SEP]],
    ['中国人', [CLS, 1746, 1799, 1756, SEP]],
  ])('encodes %j', (text, ids) => {
    expect(tok.encode(text)).toEqual(ids);
  });

  it('strips accents after lower-casing', () => {
    expect(tok.encode('Café naïve résumé')).toEqual([CLS, 7668, 15743, 13746, SEP]);
    expect(tok.encode('CAFÉ NAÏVE RÉSUMÉ')).toEqual(tok.encode('cafe naive resume'));
  });

  it('maps unmatchable words to [UNK], whole', () => {
    expect(tok.encode('🤗🤗 hello')).toEqual([CLS, UNK, 7592, SEP]);
    expect(tok.encode('snow☃man')).toEqual([CLS, UNK, SEP]); // ☃ is a symbol, not punctuation: the word stays whole
    expect(tok.encode('a'.repeat(101))).toEqual([CLS, UNK, SEP]);
    expect(tok.encode('a'.repeat(100))).not.toContain(UNK);
  });

  it('truncates over-long input to exactly maxLength ids ending in [SEP]', () => {
    const ids = tok.encode('hello world '.repeat(400));
    expect(ids).toHaveLength(512);
    expect([ids[0], ids[1], ids[510], ids[511]]).toEqual([CLS, 7592, 2088, SEP]);
    expect(tok.encode('hello world '.repeat(400), 4)).toEqual([CLS, 7592, 2088, SEP]);
  });

  it('encodes a batch padded to its longest sequence', () => {
    const b = tok.encodeBatch(['Hello, world!', "don't", 'i like strawberries']);
    expect([b.batch, b.length]).toEqual([3, 6]);
    expect(Array.from(b.inputIds, Number)).toEqual([
      ...[CLS, 7592, 1010, 2088, 999, SEP],
      ...[CLS, 2123, 1005, 1056, SEP, PAD],
      ...[CLS, 1045, 2066, 13137, 20968, SEP],
    ]);
    expect(Array.from(b.attentionMask, Number)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]);
    expect(b.tokenTypeIds).toEqual(new BigInt64Array(18));
  });

  it('gives the same ids from an equivalent tokenizer.json', () => {
    const tokens = readFileSync(VOCAB_PATH, 'utf8').split('\n').filter((t) => t !== '');
    const json = JSON.parse(
      JSON.stringify({
        version: '1.0',
        normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
        pre_tokenizer: { type: 'BertPreTokenizer' },
        model: {
          type: 'WordPiece',
          unk_token: '[UNK]',
          continuing_subword_prefix: '##',
          max_input_chars_per_word: 100,
          vocab: Object.fromEntries(tokens.map((t, i) => [t, i])),
        },
      }),
    );
    const fromJson = WordPieceTokenizer.fromTokenizerJson(json, 'tokenizer.json');
    expect(fromJson.size).toBe(tok.size);
    for (const text of ['Café naïve résumé', "John Johanson's house", '中国人 🤗', 'a'.repeat(101), ...CIFAR10_CAPTIONS[3]]) {
      expect(fromJson.encode(text)).toEqual(tok.encode(text));
    }
  });
});

describe('CIFAR-10 class captions', () => {
  const all = CIFAR10_CAPTIONS.flat();

  it('has 8 distinct captions for each of the 10 classes', () => {
    expect(CIFAR10_CAPTION_SET_NAME).toBe('cifar10-v1');
    expect(CIFAR10_CAPTIONS.map((c) => c.length)).toEqual(Array(10).fill(8));
    expect(new Set(all.map((c) => c.toLowerCase())).size).toBe(80);
  });

  it('keeps each caption to 6–30 words', () => {
    const outside = all.filter((c) => {
      const words = c.trim().split(/\s+/).length;
      return words < 6 || words > 30;
    });
    expect(outside).toEqual([]);
  });

  it('never names another class', () => {
    const offending = CIFAR10_CAPTIONS.flatMap((captions, label) =>
      captions.flatMap((caption) =>
        CIFAR10_CLASSES.filter((name, other) => other !== label && new RegExp(`\\b${name}(e?s)?\\b`, 'i').test(caption)).map(
          (name) => `${CIFAR10_CLASSES[label]}: "${caption}" names ${name}`,
        ),
      ),
    );
    expect(offending).toEqual([]);
  });

  it.skipIf(WITHOUT_VOCAB)('tokenizes each caption to at most 64 ids, none [UNK]', () => {
    const tok = WordPieceTokenizer.fromVocab(readFileSync(VOCAB_PATH, 'utf8'), VOCAB_PATH);
    for (const caption of all) {
      const ids = tok.encode(caption);
      expect(ids.length, caption).toBeLessThanOrEqual(64);
      expect(ids, caption).not.toContain(UNK);
    }
  });
});

describe('caption files', () => {
  const line = (value: unknown) => JSON.stringify(value);

  it('reads indexed captions, trimmed, skipping blank lines', () => {
    const text = [line({ index: 2, text: '  a red kite  ' }), '', '   ', line({ text: 'a grey cat', index: 0 }), ''].join('\r\n');
    expect(parseCaptionFile(text, 'caps.jsonl', 3)).toEqual(
      new Map([
        [2, 'a red kite'],
        [0, 'a grey cat'],
      ]),
    );
    expect(parseCaptionFile('', 'empty.jsonl', 0)).toEqual(new Map());
  });

  it.each([
    ['{"index": 0, "text": "x"', 'invalid JSON'],
    ['[0, "x"]', 'expected a JSON object, got an array'],
    ['"x"', 'expected a JSON object, got "x"'],
    [line({ text: 'x' }), 'missing "index"'],
    [line({ index: '1', text: 'x' }), '"index" must be an integer, got "1"'],
    [line({ index: 1.5, text: 'x' }), '"index" must be an integer, got 1.5'],
    [line({ index: 3, text: 'x' }), 'index 3 is out of range (0..2)'],
    [line({ index: -1, text: 'x' }), 'index -1 is out of range (0..2)'],
    [line({ index: 1 }), 'missing "text"'],
    [line({ index: 1, text: 7 }), '"text" must be a string, got 7'],
    [line({ index: 1, text: ' \t ' }), 'caption text is empty'],
    [line({ index: 1, text: 'x'.repeat(2001) }), 'caption text has 2001 characters, more than 2000'],
    [line({ index: 1, text: 'x', label: 3, extra: true }), 'unknown field(s) "label", "extra"'],
  ])('reports %s with file:line', (bad, problem) => {
    const text = `${line({ index: 0, text: 'fine' })}\n\n${bad}\n`;
    expect(() => parseCaptionFile(text, 'caps.jsonl', 3)).toThrow(`caps.jsonl:3: ${problem}`);
  });

  it('reports a duplicate index with the earlier line', () => {
    const text = [line({ index: 1, text: 'a' }), line({ index: 0, text: 'b' }), line({ index: 1, text: 'c' })].join('\n');
    expect(() => parseCaptionFile(text, 'caps.jsonl', 3)).toThrow('caps.jsonl:3: duplicate index 1 (first on line 1)');
  });

  it('lists every bad line in one error, at most 20', () => {
    const text = ['{', line({ index: 0, text: 'ok' }), line({ index: 9, text: 'x' }), line({ index: 1, text: '' })].join('\n');
    const message = (() => {
      try {
        parseCaptionFile(text, 'caps.jsonl', 3);
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(message?.split('\n')).toEqual([
      'caps.jsonl: 3 problems in caption file:',
      expect.stringMatching(/^caps\.jsonl:1: invalid JSON/),
      'caps.jsonl:3: index 9 is out of range (0..2)',
      'caps.jsonl:4: caption text is empty',
    ]);
    const many = Array.from({ length: 25 }, () => '{').join('\n');
    expect(() => parseCaptionFile(many, 'many.jsonl', 1)).toThrow(/many\.jsonl:20: invalid JSON.*\n…and 5 more$/);
  });

  it('checkCaptionText trims and bounds a caption', () => {
    expect(checkCaptionText('  a bird on a wire \n', 'cli')).toBe('a bird on a wire');
    expect(() => checkCaptionText('   ', 'cli')).toThrow('cli: caption text is empty');
    expect(checkCaptionText('é'.repeat(2000), 'cli')).toHaveLength(2000);
    expect(() => checkCaptionText('x'.repeat(2001), 'cli')).toThrow('cli: caption text has 2001 characters');
  });
});
