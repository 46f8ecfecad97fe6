// Whether Go's regexp.Compile accepts a pattern — docker_auth compiles the ACL patterns written
// between slashes with it and refuses its whole configuration when one does not compile.
//
// The syntax check is re2js's parser (a JavaScript port of RE2/J, itself a port of Go's
// regexp/syntax). test/unit/acl-pattern-parity.test.ts holds it against Go's own verdicts. re2js
// needs five corrections to give them, made once when this module loads:
//   1. Parse only. RE2JS.compile() also builds the matching program: a 900-character pattern costs
//      seconds and hundreds of MB there. Go's verdict is its parser's (syntax.Compile never fails),
//      so the parser alone is run, which is linear in the pattern.
//   2. Size limit. re2js refuses programs over 1,398,101 instructions (128 MiB at 96 bytes each);
//      Go over 3,355,443 (128 MiB at 40 bytes each). The parser computes sizes without building
//      the program, so Go's limit costs nothing here.
//   3. Named groups. Go accepts two groups of the same name; re2js refuses them.
//   4. Unicode class names (\p{Name}). docker_auth 1.14.0's image is built with Go 1.24, which
//      looks names up exactly; Go 1.25+ looks them up case-insensitively and ignoring `_`, `-` and
//      spaces (and so no longer finds `Old_Italic`); re2js has newer Unicode tables (`Garay`). Only
//      the names every one of them accepts are allowed: GO_UNICODE_CLASS_NAMES.
//   5. POSIX classes. Go looks for the `:]` that ends `[:name:]` after the `[:`; re2js from the
//      `[`, so it takes `[:]` for a class name where Go reads the characters `[`, `:`.
// re2js does not export its parser; its class is taken from the one parser instance a compile of
// `x` creates. Every assumption is checked here, so another re2js version fails loudly at load.
import { RE2JS, RE2JSSyntaxException } from 're2js';

/** Go's limit on the compiled size of a regexp, in instructions: 128 MiB / 40 bytes. */
export const GO_MAX_REGEXP_SIZE = Math.floor((128 << 20) / 40);

/**
 * The Unicode class names (`\p{Name}`, `\pL`) that Go 1.24 (docker_auth 1.14.0's image) and
 * Go 1.25+ (the toolchain that builds the test binaries) both accept: the Unicode 15.0 categories
 * and scripts whose names Go 1.25+ still finds (no `_`, one leading capital), and `Any`. Go 1.24
 * lacks `Cn`, `LC`, `ASCII`, `Assigned` and the long aliases (`Letter`); the parity test derives
 * this list from Go's tables again.
 */
export const GO_UNICODE_CLASS_NAMES: ReadonlySet<string> = new Set(
  (
    'Adlam Ahom Any Arabic Armenian Avestan Balinese Bamum Batak Bengali Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid ' +
    'C Carian Cc Cf Chakma Cham Cherokee Chorasmian Co Common Coptic Cs Cuneiform Cypriot Cyrillic Deseret Devanagari Dogra ' +
    'Duployan Elbasan Elymaic Ethiopic Georgian Glagolitic Gothic Grantha Greek Gujarati Gurmukhi Han Hangul Hanunoo Hatran ' +
    'Hebrew Hiragana Inherited Javanese Kaithi Kannada Katakana Kawi Kharoshthi Khmer Khojki Khudawadi L Lao Latin Lepcha ' +
    'Limbu Lisu Ll Lm Lo Lt Lu Lycian Lydian M Mahajani Makasar Malayalam Mandaic Manichaean Marchen Mc Me Medefaidrin Miao ' +
    'Mn Modi Mongolian Mro Multani Myanmar N Nabataean Nandinagari Nd Newa Nko Nl No Nushu Ogham Oriya Osage Osmanya P ' +
    'Palmyrene Pc Pd Pe Pf Phoenician Pi Po Ps Rejang Runic S Samaritan Saurashtra Sc Sharada Shavian Siddham Sinhala Sk Sm ' +
    'So Sogdian Soyombo Sundanese Syriac Tagalog Tagbanwa Takri Tamil Tangsa Tangut Telugu Thaana Thai Tibetan Tifinagh ' +
    'Tirhuta Toto Ugaritic Vai Vithkuqi Wancho Yezidi Yi Z Zl Zp Zs'
  ).split(' '),
);

interface Re2jsParser {
  flags: number;
  namedGroups: Record<string, number>;
  numCap: number;
  parseInternal(): unknown;
}

interface Re2jsStringIterator {
  rest(): string;
}

interface Re2jsParserClass {
  new (pattern: string, flags: number): Re2jsParser;
  prototype: Re2jsParser & { parseNamedClass(t: Re2jsStringIterator, cc: unknown): boolean };
  MAX_SIZE: number;
  MAX_HEIGHT: number;
  MAX_RUNES: number;
  ERR_LARGE: string;
  ERR_INVALID_CHAR_RANGE: string;
  ERR_DUPLICATE_NAMED_CAPTURE: string;
  unicodeTable(name: string): unknown;
}

const EXPECTED_RE2JS = { MAX_SIZE: 1398101, MAX_HEIGHT: 1000, MAX_RUNES: (128 << 20) / 4, PERL_FLAGS: 212 };

/** re2js's parser class and the flags RE2JS.compile() gives it (RE2Flags.PERL, as Go's regexp.Compile uses). */
function re2jsParser(): { Parser: Re2jsParserClass; flags: number } {
  // The parser's constructor assigns `this.wholeRegexp`; a setter on Object.prototype sees the
  // instance, for this one synchronous compile only.
  const key = 'wholeRegexp';
  let instance: Re2jsParser | undefined;
  Object.defineProperty(Object.prototype, key, {
    configurable: true,
    set(this: Re2jsParser, value: unknown) {
      instance ??= this;
      Object.defineProperty(this, key, { value, writable: true, enumerable: true, configurable: true });
    },
  });
  try {
    RE2JS.compile('x');
  } finally {
    delete (Object.prototype as Record<string, unknown>)[key];
  }
  const Parser = instance?.constructor as Re2jsParserClass | undefined;
  const expected =
    Parser !== undefined &&
    typeof Parser.prototype.parseInternal === 'function' &&
    typeof Parser.unicodeTable === 'function' &&
    typeof Parser.prototype.parseNamedClass === 'function' &&
    Parser.ERR_INVALID_CHAR_RANGE === 'invalid character class range' &&
    Parser.MAX_SIZE === EXPECTED_RE2JS.MAX_SIZE &&
    Parser.MAX_HEIGHT === EXPECTED_RE2JS.MAX_HEIGHT &&
    Parser.MAX_RUNES === EXPECTED_RE2JS.MAX_RUNES &&
    Parser.ERR_LARGE === 'expression too large' &&
    instance?.flags === EXPECTED_RE2JS.PERL_FLAGS;
  if (!expected || instance === undefined) throw new Error('re2js is not the version functions/go-regexp.ts was written for (its parser changed); check the ACL pattern parity test');
  return { Parser, flags: instance.flags };
}

const { Parser, flags: PERL_FLAGS } = re2jsParser();
Parser.MAX_SIZE = GO_MAX_REGEXP_SIZE;
const re2jsUnicodeTable = Parser.unicodeTable.bind(Parser);
Parser.unicodeTable = (name: string) => (GO_UNICODE_CLASS_NAMES.has(name) ? re2jsUnicodeTable(name) : null);

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

const re2jsParseNamedClass = Parser.prototype.parseNamedClass;
Parser.prototype.parseNamedClass = function parseNamedClass(this: Re2jsParser, t: Re2jsStringIterator, cc: unknown): boolean {
  const rest = t.rest();
  if (rest.startsWith('[:') && rest.indexOf(':]') === 1) {
    // `[:]…`: Go's class name ends at the next `:]`, which names no POSIX class, or there is none
    const end = rest.indexOf(':]', 2);
    if (end < 0) return false;
    throw new RE2JSSyntaxException(Parser.ERR_INVALID_CHAR_RANGE, rest.slice(0, end + 2));
  }
  return re2jsParseNamedClass.call(this, t, cc);
};

// Never holds a name: Go does not refuse a capture group name seen before.
const forgetfulNames = new Proxy(Object.create(null) as Record<string, number>, {
  get: () => undefined,
  set: () => true,
});

/**
 * Why Go's regexp.Compile refuses `source`, in Go's words (`invalid escape sequence: \8`), or
 * undefined when it compiles.
 */
export function goRegexpProblem(source: string): string | undefined {
  // Go reads patterns as UTF-8; a lone surrogate has no UTF-8 form.
  if (LONE_SURROGATE.test(source)) return 'invalid UTF-8';
  const parser = new Parser(source, PERL_FLAGS);
  parser.namedGroups = forgetfulNames;
  try {
    parser.parseInternal();
    return undefined;
  } catch (error) {
    // anything but a syntax error is a bug here, not a verdict on the pattern
    const prefix = 'error parsing regexp: ';
    if (!(error instanceof Error) || !error.message.startsWith(prefix)) throw error;
    return error.message.slice(prefix.length);
  }
}

/** The number of capture groups of `source` (Go's Regexp.NumSubexp), or undefined when it does not compile. */
export function goRegexpCaptureCount(source: string): number | undefined {
  if (goRegexpProblem(source) !== undefined) return undefined;
  const parser = new Parser(source, PERL_FLAGS);
  parser.namedGroups = forgetfulNames;
  parser.parseInternal();
  return parser.numCap;
}
