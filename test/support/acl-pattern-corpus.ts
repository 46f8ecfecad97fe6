// The ACL pattern corpus of the parity test (test/unit/acl-pattern-parity.test.ts): hand-picked edge cases of
// Go's regexp syntax and of path.Match globs, patterns at Go's limits, and deterministic mutations
// of all of them. Every entry is judged both as a regexp and as a glob.

/** Hand-picked: what ACLs use, and where regexp dialects and their ports disagree. */
export const HAND_PICKED: readonly string[] = [
  // what ACLs use
  '', 'a', '.*', '.+', '^team-a/.+$', '^${labels:namespace}/.+$', '${labels:namespace}/*', '${account}', '^${account}$', '${account}/*',
  'team-?/*', 'team-[ab]/*', 'team-[!a]/*', 'team-[^a]/*', '*', '*/*', '**', 'a/**/b', '^(a|b)$', '^(team-a|team-b)/(app|web)$',
  'push\\..*', '^pull\\.[a-z0-9-]+\\.', '^[a-z0-9]([-a-z0-9]*[a-z0-9])?/.+$', 'registry', 'repository', 'catalog', '10.0.0.0/8',
  '(?i)^Team-A/', '^ci-.*$', '^(?:[^/]+/){2,}[^/]+$', '/', '//', '///', '/a/', 'a/', '/a',
  // character classes
  '[a]', '[^a]', '[]a]', '[^]a]', '[]', '[^]', '[a-]', '[-a]', '[a-b-c]', '[z-a]', '[a-a]', '[\\d-z]', '[a-\\d]', '[\\w-]', '[-\\w]',
  '[a-\\x{10FFFF}]', '[\\x00-\\x{10FFFF}]', '[\\b]', '[\\A]', '[\\z]', '[\\Q]\\E]', '[\\pL-z]', '[\\p{Foo}]', '[a&&b]', '[[a]]', '[a[]',
  '[\\]]', '[\\-]', '[\\^]', '[^\\^]', '[\\[]', '[a\\-z]', '[\\.]', '[.]', '[*]', '[\\\\]', '[\\]', '[a', 'a]', '[^', '[^-]', '[--]', '[---]',
  '[a-z0-9_.-]', '[\\n-\\r]', '[\\t]', '[\\f\\v]', '[\\a]', '[\\e]', '[\\cA]', '[\\0]', '[\\01]', '[\\8]', '[\\x41-\\x5A]', '[\\x{41}-Z]',
  '[[:alpha:]]', '[[:foo:]]', '[[:^alpha:]]', '[:alpha:]', '[[:word:]]', '[[:alnum:][:punct:]]', '[[=a=]]', '[[.a.]]', '[[:ALPHA:]]',
  '[[:alpha:]-z]', '[a-[:alpha:]]', '[[:blank:]]', '[[:cntrl:]]', '[[:graph:]]', '[[:print:]]', '[[:xdigit:]]', '[[:ascii:]]', '[[:upper:]]',
  '[:]', '[[:]', '[[:]]', '[a[:]', '[[:]:]]', '[[:]a:]]', '[[::]]', '[[:alpha:]:]]', '[\\d-z[:]', '[[:alpha]', '[[:alpha:]', '[\\d\\D]', '[\\s\\S]', '[\\w\\W]', '[^\\d]', '\\d', '\\D', '\\s', '\\S', '\\w', '\\W', '[é-ü]', '[ü-é]', '[😀-😂]', '[😂-😀]',
  // Unicode classes
  '\\pL', '\\PL', '\\p{L}', '\\P{L}', '\\p{^L}', '\\P{^L}', '\\p{Greek}', '\\p{Han}', '\\pN', '\\p{Any}', '\\p{^Any}', '\\p{ASCII}', '\\p{Ascii}',
  '\\p{Cs}', '\\p{Lu}', '\\p{L&}', '\\pZ', '\\p{Zs}', '\\p{Braille}', '\\p{Latin}', '\\p{latin}', '\\p{LATIN}', '\\p{IsLatin}', '\\p{Script=Latin}',
  '\\p{Letter}', '\\p{letter}', '\\p{LC}', '\\p{Lc}', '\\p{Cn}', '\\p{Assigned}', '\\p{Old_Italic}', '\\p{OldItalic}', '\\p{Old Italic}',
  '\\p{Nag_Mundari}', '\\p{Garay}', '\\p{Todhri}', '\\p{Kawi}', '\\p{Unknown}', '\\p{Zzzz}', '\\p{Common}', '\\p{Inherited}', '\\p{Hrkt}',
  '\\p{ Latin }', '\\p{Lu }', '\\p{}', '\\p{', '\\p{L', '\\p', '\\P', '\\pé', '\\p{^}', '\\p{^^L}', '\\pX', '\\pl', '\\p{l}', '\\p{lu}', '\\p{LU}',
  '[\\p]', '[\\pL\\pN]', '[^\\P{L}]', '(?i)\\p{Lu}', '(?i)[\\p{Greek}]', '\\p{Greek}+\\P{Greek}*', '\\p{Sc}', '\\p{Sm}', '\\p{Pd}', '\\p{Co}',
  // escapes
  '\\Q*\\E', '\\Qa', '\\E', '\\Q\\E*', '\\Q\\E', '\\Qa\\E+', '\\Q\\\\E', '\\z', '\\Z', '\\A', '\\b', '\\B', '\\G', '\\C', '\\R', '\\X', '\\h', '\\v',
  '\\V', '\\K', '\\e', '\\a', '\\f', '\\t', '\\n', '\\r', '\\cA', '\\0', '\\00', '\\000', '\\07', '\\08', '\\8', '\\1', '\\x41', '\\x{41}',
  '\\x{110000}', '\\x{10FFFF}', '\\x{D800}', '\\x4', '\\x{}', '\\xg', '\\x{41', '\\x{0000041}', '\\u0041', '\\N{A}', '\\o{1}', 'é', '\\é', '\\-', '\\/',
  '\\ ', '\\_', '\\~', '\\`', '\\@', '\\%', '\\!', '\\"', "\\'", '\\<', '\\>', '\\:', '\\#', '\\&', '\\=', '\\,', '\\$', '\\.', '\\*', '\\{', '\\}',
  '\\', 'a\\', '\\\\', 'a\\\\', '\\\\\\', '\\😀', 'x\\\u0000', '\u0000', 'a\u0000b', '\t', '\n',
  // groups, flags, named groups
  '(?<n>a)', '(?P<n>a)', '(?P<n>a)(?P<n>b)', '(?<n>a)(?<n>b)', '(?P<n>a)|(?<n>b)', '(?<1n>a)', '(?<n1>a)', '(?<_>a)', '(?<n', '(?P<n', '(?<', '(?P<',
  '(?P=n)', '(?P>n)', "(?'n'a)", '(?<>a)', '(?<n-x>a)', '(?<é>a)', '(?P<_x9>a)', '(?<n>)', '(?<n>a', '(?P<n>a)\\k<n>', '(?<a b>x)',
  '(?i)a', '(?i:a)', '(?smiU)a', '(?-i)a', '(?i-s:a)', '(?-)a', '(?)', '(?i-)a', '(?x)a', '(?U)a+', '(?m)^a$', '(?i)(?-i)a', '(?--i)a', '(?i-i)a',
  '(?s).', '(?i)(?s)(?m)(?U)', '(?:)', '(?:a)', '(?:a', '(?a)', '(?^i)', '(?#c)', '(?|a)', '(?=a)', '(?!a)', '(?<=a)', '(?<!a)', '(?>a)', '(?', '(?:',
  '()', '(|)', '(a)', '((a))', '(a))', '((a)', '(', ')', 'a)', '(a', ')(', '(a|', '(|a)', '((((((((((a))))))))))',
  // repetition
  'a{1000}', 'a{1001}', 'a{0,1000}', 'a{1000,}', 'a{1001,}', 'a{2,1}', 'a{0}', 'a{0,0}', 'a{1}', 'a{1,}', 'a{,5}', 'a{ 1}', 'a{1 }', 'a{01}',
  'a{0001}', 'a{1,01000}', 'a{99999999999}', 'a{2147483648}', '(a{100}){10}', '(a{100}){11}', '((a{10}){10}){10}', '((a{10}){10}){11}',
  '(a{2}){500}', '(a{2}){501}', '(a*){1000}', '(a+){1000}', '(a?){1001}', '(a{0}){1001}', '(a{0,0}){1000}', 'a{2}{3}', 'a{2}*', 'x{1000}{1}',
  'a**', 'a*+', 'a+?', 'a??', 'a*?', 'a*??', 'a+*', '(?:a*)*', '**', '*', '+a', '?a', '{1}a', 'a|*', 'a||b', '|', '||', 'a{', 'a{1', 'a{1,',
  '{', '}', '{}', '{1}', '^{1}', '${1}', '$*', '^*', '\\b*', '(?:)*', '()+', 'x{2}{,3}', 'a{1,2}{3}', '(?U)a{2,3}?', '.{1000}', '[^/]{1,1000}',
  // anchors and misc
  '^', '$', '^$', '$a', 'a$', 'a^', '^^', '$$', '\\A\\z', '.', '..', '...', '.*?', '|a', 'a|', 'a||', 'é+', '日本', '😀+', '(😀|🙂)', 'ä{2}',
  // globs: path.Match's rules
  '?', '[!]', '[!a]', '[!-]', '[a-z', '[a-z]', '[a-z]*', '[\\a-z]', '[a-\\z]', '[a\\]', '[\\', '*[', '*\\', 'a*b*c*', '*[a-', '[ab][', '[a]b[',
  '[^a-]', '[!a-]', '[]-]', '[]]', '[]-a]', '[--a]', '[a--]', '[a-b-]', '[é]', '[é-ë]', '[😀]', 'a/[b', '\\*/a', 'a\\/b', '[\\-a]', '[a\\-]',
];

/** Patterns at Go's limits: nesting depth 1000, program size 3,355,443, 32 Mi class runes, repeat products 1000. */
export function atTheLimits(): string[] {
  const nested = (n: number, open = '(', close = ')') => open.repeat(n) + 'a' + close.repeat(n);
  return [
    nested(998), nested(999), nested(1000), nested(1001), nested(999, '(?:'), nested(1000, '(?:'), nested(1001, '(?:'),
    '('.repeat(1000) + ')'.repeat(1000), '('.repeat(999) + ')'.repeat(999), 'a'.repeat(1000) + '|b'.repeat(999),
    `(?:${'a*'.repeat(450)}){1000}`, `(?:${'a*'.repeat(500)}){1000}`, `(?:${'a*'.repeat(1118)}){1000}`, `(?:${'a*'.repeat(1119)}){1000}`,
    `(?:${'b'.repeat(3355)}){1000}`, `(?:${'b'.repeat(3356)}){1000}`, `(?:${'b'.repeat(1398)}){1000}`, `(?:${'b'.repeat(1399)}){1000}`,
    `(?:${'b'.repeat(2000)}){1000}`, `(?:${'(b)'.repeat(700)}){1000}`, `(?:${'b|'.repeat(1200)}c){1000}`, `((?:${'b'.repeat(300)}){10}){100}`,
    `[${'\\pL'.repeat(20)}]{1000}`, '\\pL'.repeat(2000), `(?:\\pL|\\pN){1000}`, 'x'.repeat(100_000),
  ];
}

/** A small deterministic PRNG (mulberry32), so the corpus is the same on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pieces mutations insert: the characters and tokens regexp and glob syntax give meaning to. */
const PIECES = ['\\', '[', ']', '(', ')', '{', '}', '*', '+', '?', '|', '^', '$', '-', ':', '<', '>', '!', '=', 'P', 'p', 'Q', 'E', 'x', 'd', '1',
  '0', ',', '{2}', '{1001}', '{1,1000}', '(?', '(?i)', '(?P<n>', '(?<n>', '\\p{', '\\pL', '[:', ':]', '[^', '\\Q', '\\E', '\\x{', '/', 'é', '😀'];

/** `count` mutations of the given patterns: a piece inserted, a character deleted, duplicated or swapped, a cut. */
export function mutations(patterns: readonly string[], count: number, seed = 12): string[] {
  const next = random(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T;
  const out: string[] = [];
  const sources = patterns.filter((p) => p.length < 200);
  while (out.length < count) {
    const chars = [...pick(sources)];
    const at = Math.floor(next() * (chars.length + 1));
    switch (Math.floor(next() * 5)) {
      case 0:
        chars.splice(at, 0, pick(PIECES));
        break;
      case 1:
        chars.splice(at, 1);
        break;
      case 2:
        chars.splice(at, 0, chars[at] ?? pick(PIECES));
        break;
      case 3:
        if (at + 1 < chars.length) [chars[at], chars[at + 1]] = [chars[at + 1] as string, chars[at] as string];
        else chars.push(pick(PIECES));
        break;
      default:
        chars.splice(at, chars.length, pick(PIECES));
    }
    out.push(chars.join(''));
  }
  return out;
}
