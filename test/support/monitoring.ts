// What the monitoring tests share: the shipped rules and dashboard of kustomize/monitoring, and the
// metric names a PromQL expression reads.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';

export const MONITORING_DIR = fileURLToPath(new URL('../../kustomize/monitoring/', import.meta.url));

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The PrometheusRule's spec: a Prometheus rules file's content (`groups:`). */
export function shippedRuleGroups(): { groups: { name: string; rules: AlertRule[] }[] } {
  const rule = load(readFileSync(`${MONITORING_DIR}prometheusrule.yaml`, 'utf8')) as { spec: { groups: { name: string; rules: AlertRule[] }[] } };
  return rule.spec;
}

export interface DashboardQuery {
  panel: string;
  expr: string;
}

/** Every panel target's expression of the shipped dashboard. */
export function dashboardQueries(): DashboardQuery[] {
  const dashboard = JSON.parse(readFileSync(`${MONITORING_DIR}dashboard.json`, 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));
}

/** A dashboard expression as Prometheus gets it from Grafana with "All" selected. */
export function withGrafanaVariables(expr: string, rateInterval = '5m'): string {
  return expr.replaceAll('$__rate_interval', rateInterval).replace(/\$(namespace|registry)\b/g, '.*');
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names an expression selects: identifiers that are not functions, keywords, label
 * names (in braces or in by/on/… lists), strings, durations or numbers.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings (label values, regexes, label_replace arguments)
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // label lists
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = match[0];
    const after = stripped.slice((match.index ?? 0) + word.length).trimStart();
    if (after.startsWith('(') || PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}
