// The alerts and the dashboard of kustomize/monitoring, checked with the real promtool (built from
// the Prometheus Go module by test/binaries/build.sh):
// - `promtool check rules` accepts the PrometheusRule's groups;
// - `promtool test rules test/monitoring/alerts.test.yaml`: every alert fires on the series that
//   should fire it and stays quiet on a healthy one; a rule changed in a way its test must notice
//   fails the same tests (so they can fail);
// - every alert links to a heading of the README;
// - every dashboard query parses (as a recording rule for `promtool check rules`).
// Which metrics exist and what they hold is tested against real processes in test/e2e/monitoring.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump, load } from 'js-yaml';
import { testBinaries } from '../support/binaries.ts';
import { dashboardQueries, shippedRuleGroups, withGrafanaVariables } from '../support/monitoring.ts';
import { run } from '../support/processes.ts';

const assets = await testBinaries();
const promtool = join(assets, 'promtool');
const testsFile = fileURLToPath(new URL('../monitoring/alerts.test.yaml', import.meta.url));
const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const workDir = mkdtempSync(join(tmpdir(), 'iro-monitoring-rules-'));
process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));

/** promtool test rules on the shipped rules, or on `groups` instead. */
async function promtoolTest(groups = shippedRuleGroups(), dir = workDir): Promise<{ code: number; output: string }> {
  writeFileSync(join(dir, 'rules.yaml'), dump(groups, { lineWidth: -1 }));
  copyFileSync(testsFile, join(dir, 'alerts.test.yaml'));
  const result = await run(promtool, ['test', 'rules', join(dir, 'alerts.test.yaml')], { timeoutMs: 300_000 });
  return { code: result.code, output: `${result.stdout}\n${result.stderr}` };
}

test('promtool check rules accepts the PrometheusRule\'s groups', async () => {
  const file = join(workDir, 'check.yaml');
  writeFileSync(file, dump(shippedRuleGroups(), { lineWidth: -1 }));
  const checked = await run(promtool, ['check', 'rules', file]);
  assert.is(checked.code, 0, checked.stdout + checked.stderr);
  assert.match(checked.stdout, new RegExp(`SUCCESS: ${shippedRuleGroups().groups[0]?.rules.length} rules found`));
});

test('promtool test rules: every alert fires where it should and stays quiet where it should not', async () => {
  const result = await promtoolTest();
  assert.is(result.code, 0, result.output);
  assert.match(result.output, /SUCCESS/);
});

test('every alert has a case where it fires and one where it stays quiet', () => {
  const tests = (load(readFileSync(testsFile, 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests;
  const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
  for (const rule of shippedRuleGroups().groups.flatMap((g) => g.rules)) {
    const mine = cases.filter((c) => c.alertname === rule.alert);
    assert.ok(mine.some((c) => c.exp_alerts.length > 0), `${rule.alert} fires in a test`);
    assert.ok(mine.some((c) => c.exp_alerts.length === 0), `${rule.alert} stays quiet in a test`);
  }
});

test('the tests notice a changed rule: a threshold, a duration or a join taken out fails them', async () => {
  const mutations: [string, (rule: { alert: string; expr: string; for?: string }) => void][] = [
    ['ImageRegistryVolumeFilling', (rule) => { rule.expr = rule.expr.replace('> 0.85', '> 0.95'); }],
    ['ImageRegistryNotReady', (rule) => { rule.for = '1m'; }],
    ['ImageRegistryNoReadyReplica', (rule) => { rule.expr = rule.expr.replace(/\s+and on \(namespace, registry\) image_registry_info/, ''); }],
    ['ImageRegistryCredentialsNotRotating', (rule) => { rule.expr = rule.expr.replace('0.25', '0.5'); }],
    ['ImageRegistryGarbageCollectionNotSucceeding', (rule) => { rule.expr = rule.expr.replace(/\s+unless on \(namespace, cronjob\) \(kube_cronjob_spec_suspend == 1\)/, ''); }],
  ];
  for (const [alert, mutate] of mutations) {
    const groups = shippedRuleGroups();
    const rule = groups.groups.flatMap((g) => g.rules).find((r) => r.alert === alert);
    assert.ok(rule, alert);
    const before = JSON.stringify(rule);
    mutate(rule!);
    assert.not.equal(JSON.stringify(rule), before, `the mutation of ${alert} changed it`);
    const dir = mkdtempSync(join(workDir, 'mutated-'));
    const result = await promtoolTest(groups, dir);
    assert.is.not(result.code, 0, `${alert} changed, and its tests still pass:\n${result.output}`);
    assert.match(result.output, new RegExp(`alertname: ${alert}`), `the failure names ${alert}`);
  }
});

test('every alert links to a heading of the README', () => {
  // GitHub's heading anchors: lower case, punctuation but '-' dropped, spaces as '-'
  const anchors = new Set([...readme.matchAll(/^#{1,6} (.+)$/gm)].map((m) => (m[1] ?? '').trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')));
  for (const rule of shippedRuleGroups().groups.flatMap((g) => g.rules)) {
    const url = rule.annotations?.runbook_url ?? '';
    const anchor = url.split('#')[1] ?? '';
    assert.ok(url.includes('README.md#') && anchors.has(anchor), `${rule.alert}: runbook_url ${url} names a README heading`);
    assert.is(anchor, rule.alert.toLowerCase(), `${rule.alert}: its own heading`);
  }
});

test('every dashboard query parses (promtool check rules, each query a recording rule)', async () => {
  const queries = dashboardQueries();
  assert.ok(queries.length >= 15, `${queries.length} queries`);
  const file = join(workDir, 'dashboard-rules.yaml');
  writeFileSync(file, dump({ groups: [{ name: 'dashboard', rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: withGrafanaVariables(q.expr) })) }] }, { lineWidth: -1 }));
  const checked = await run(promtool, ['check', 'rules', file]);
  assert.is(checked.code, 0, checked.stdout + checked.stderr);
  // and the check can fail: a query with a typo does not parse
  writeFileSync(file, dump({ groups: [{ name: 'dashboard', rules: [{ record: 'dashboard:broken', expr: 'sum by (registry (rate(registry_http_requests_total[5m]))' }] }] }));
  assert.is.not((await run(promtool, ['check', 'rules', file])).code, 0);
});

test.run();
