// Parity: the webhook's verdicts on ACL match patterns (functions/acl-patterns.ts regexpProblem and
// globProblem, which the auth config writer shares) against Go's own, from test/go-pattern-check
// built with the Go toolchain here: regexp.Compile for a pattern between slashes, path.Match for a
// glob, as docker_auth 1.14 uses them. Skipped, saying why, where Go is absent.
//
// One intended difference: Unicode class names. docker_auth 1.14.0's image is built with Go 1.24,
// which looks \p{Name} up exactly; Go 1.25+ loosely. The webhook accepts only names both accept, so
// a pattern Go 1.25+ accepts is refused when it names a class Go 1.24's tables lack — checked
// against this Go's tables (Go 1.24 = the same Unicode 15.0 tables, without Cn and LC).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GO_UNICODE_CLASS_NAMES } from '../../functions/go-regexp.ts';
import { globProblem, quoteMeta, regexpProblem } from '../../functions/acl-patterns.ts';
import { atTheLimits, HAND_PICKED, mutations } from '../support/acl-pattern-corpus.ts';
import { goPatternCheck, goUnicodeNames, goVerdicts, type GoVerdict } from '../support/go-pattern-check.ts';

const MUTATIONS = 4000;
const built = goPatternCheck();
const unavailable = 'unavailable' in built ? built.unavailable : undefined;
if (unavailable) console.log(`SKIP ACL pattern parity with Go: ${unavailable}`);
const withGo = unavailable ? test.skip : test;

/** The forms docker_auth matches with once it has replaced the placeholders (as the webhook checks them). */
function substituted(pattern: string): string {
  return pattern
    .replaceAll('${account}', quoteMeta('push.team-a.app.1'))
    .replaceAll('${name}', 'team-a/app')
    .replaceAll('${service}', quoteMeta('registry.default.svc.example.org'))
    .replaceAll('${type}', 'repository')
    .replace(/\$\{labels:[^{}]+\}/g, 'team-a');
}

function corpus(): string[] {
  const base = [...HAND_PICKED, ...atTheLimits()];
  const all = [...base, ...mutations(HAND_PICKED, MUTATIONS)];
  return [...new Set([...all, ...all.filter((p) => p.includes('${')).map(substituted)])];
}

/** The class name a refusal of ours names (`\p{Name}`, `\PL`), without a leading ^. */
function refusedClassName(problem: string | undefined): string | undefined {
  const match = /^invalid character class range: `\\[pP](?:\{\^?([^}]*)\}|(.))`$/.exec(problem ?? '');
  return match ? (match[1] ?? match[2]) : undefined;
}

const show = (p: string) => JSON.stringify(p.length > 80 ? `${p.slice(0, 60)}…(${p.length} chars)` : p);

withGo('every corpus pattern gets the verdict Go gives it, as a regexp and as a glob', () => {
  if (!('binary' in built)) return;
  const patterns = corpus();
  const go = goVerdicts(built.binary, patterns);
  const tables = goUnicodeNames(built.binary);
  const go124Names = new Set(['Any', ...tables.categories.filter((c) => c !== 'Cn' && c !== 'LC'), ...tables.scripts]);
  const disagreements: string[] = [];
  let go124Only = 0;
  let sameMessage = 0;
  let regexpRefused = 0;
  let globRefused = 0;
  patterns.forEach((pattern, i) => {
    const verdict = go[i] as GoVerdict;
    const ours = regexpProblem(pattern);
    const goProblem = verdict.regexp?.replace(/^error parsing regexp: /, '') ?? undefined;
    if (goProblem !== undefined) regexpRefused++;
    if ((ours === undefined) !== (goProblem === undefined)) {
      const name = refusedClassName(ours);
      if (goProblem === undefined && name !== undefined && !go124Names.has(name)) go124Only++;
      else disagreements.push(`regexp ${show(pattern)}: Go ${goProblem ?? 'compiles it'}, ours ${ours ?? 'accepts it'}`);
    } else if (ours === goProblem) sameMessage++;
    const glob = globProblem(pattern);
    if (verdict.glob?.startsWith('inconsistent')) disagreements.push(`glob ${show(pattern)}: ${verdict.glob}`);
    if (verdict.glob !== null) globRefused++;
    if ((glob === undefined) !== (verdict.glob === null)) disagreements.push(`glob ${show(pattern)}: Go ${verdict.glob ?? 'accepts it'}, ours ${glob ?? 'accepts it'}`);
  });
  console.log(
    `    ${built.goVersion}: ${patterns.length} patterns (${HAND_PICKED.length} hand-picked, ${atTheLimits().length} at Go's limits, ${MUTATIONS} mutations, ` +
      `substituted placeholders; duplicates dropped), each as regexp and glob: ${disagreements.length} disagreements; ` +
      `Go refuses ${regexpRefused} as regexps and ${globRefused} as globs; ${go124Only} refused only for Go 1.24's class names; ` +
      `${sameMessage} with Go's exact message`,
  );
  assert.ok(HAND_PICKED.length >= 300, `${HAND_PICKED.length} hand-picked`);
  assert.equal(disagreements.slice(0, 40), [], `${disagreements.length} disagreements`);
});

withGo('Unicode class names: accepted exactly when Go 1.24 and this Go both accept them', () => {
  if (!('binary' in built)) return;
  const tables = goUnicodeNames(built.binary);
  const go124Names = new Set(['Any', ...tables.categories.filter((c) => c !== 'Cn' && c !== 'LC'), ...tables.scripts]);
  const variants = (name: string) => [name, name.toLowerCase(), name.toUpperCase(), name.replaceAll('_', ''), name.replaceAll('_', ' '), ` ${name}`, `${name}_`];
  const names = [...new Set([...tables.categories, ...tables.scripts, ...tables.aliases, 'Any', 'ASCII', 'Ascii', 'Assigned', 'Garay', 'Unknown'].flatMap(variants))];
  const go = goVerdicts(built.binary, names.map((n) => `\\p{${n}}`));
  const both = new Set<string>();
  const disagreements: string[] = [];
  names.forEach((name, i) => {
    const accepted = go[i]?.regexp === null && go124Names.has(name);
    if (accepted) both.add(name);
    const ours = regexpProblem(`\\p{${name}}`) === undefined;
    if (ours !== accepted) disagreements.push(`\\p{${name}}: Go 1.24 ${go124Names.has(name) ? 'accepts' : 'refuses'}, this Go ${go[i]?.regexp === null ? 'accepts' : 'refuses'}, ours ${ours ? 'accepts' : 'refuses'}`);
  });
  console.log(`    Unicode ${tables.version}: ${names.length} class names and spellings, ${both.size} accepted by both Go versions, ${disagreements.length} disagreements`);
  assert.equal(disagreements, []);
  assert.equal([...GO_UNICODE_CLASS_NAMES].sort(), [...both].sort(), 'GO_UNICODE_CLASS_NAMES is what both accept');
});

test('the corpus is deterministic and large enough', () => {
  assert.equal(mutations(HAND_PICKED, 50), mutations(HAND_PICKED, 50));
  assert.ok(corpus().length > 3000);
});

test.run();
