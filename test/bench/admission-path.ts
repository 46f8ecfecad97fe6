// Benchmark 9: an admission through the webhook's Service — the API server dials the ClusterIP,
// the real node's kube-proxy (iptables) rewrites it to a pod IP, the packets cross the veth into
// the node's network namespace and its bridge, and the webhook runs as its Deployment's pod from
// the operator image — next to the same admission with the configurations pointed straight at a
// webhook process by URL on loopback (how the tests ran before the real install). Same webhook
// bundle, same API server, same client: dry-run ImageRegistry creates (both webhooks, nothing
// enqueued) at 1 and 16 in flight, the two paths interleaved round by round. The ratio is what
// the in-cluster path costs next to a process beside the API server, i.e. how far the other
// webhook figures (measured by URL) are from what a cluster's API server sees.
import { GROUP_VERSION } from '../../functions/types.ts';
import type { TestCluster } from '../support/cluster.ts';
import { kubeApi, type KubeApi } from '../support/kube-api.ts';
import { installOperator, uninstallWebhook } from '../support/operator.ts';
import { waitFor } from '../support/processes.ts';
import { buildBundles, configEnv, createWebhookConfigurations, isWebhookConfiguration, OPERATOR_ENTRY_POINTS, pointWebhooksAt, renderInstall, startWebhook, testServingTls, type Obj } from '../support/webhook.ts';
import type { Row, SectionResult } from './report.ts';
import { median, ms, percentile, ratio } from './stats.ts';

export const IN_FLIGHT = [1, 16];
type Path = 'service' | 'url';

export interface AdmissionPathContext {
  cluster: TestCluster;
  rounds: number;
  /** admissions per round and in-flight level */
  requests: number;
}

export async function admissionPathSection(context: AdmissionPathContext): Promise<SectionResult> {
  const started = Date.now();
  const { cluster } = context;
  await buildBundles(OPERATOR_ENTRY_POINTS);
  await installOperator(cluster);
  const viaService = await installedConfigurations(cluster);
  const objects = await renderInstall(cluster);
  const tls = testServingTls();
  const local = await startWebhook({ tls, env: configEnv(objects), kubeconfig: cluster.kubeconfig });
  const viaUrl = pointWebhooksAt(objects.filter(isWebhookConfiguration), `127.0.0.1:${local.port}`, tls.ca.certPem);
  const api = kubeApi(cluster.kubeconfig, { maxSockets: Math.max(...IN_FLIGHT) });
  const namespace = await cluster.createNamespace('bench-admission-path');
  // per path and in-flight level: each round's p50 and p99
  const figures = new Map<string, { p50: number[]; p99: number[] }>();
  try {
    for (let round = 0; round < context.rounds; round++) {
      const order: Path[] = round % 2 === 0 ? ['service', 'url'] : ['url', 'service'];
      for (const path of order) {
        await createWebhookConfigurations(cluster, path === 'service' ? viaService : viaUrl);
        await servedBy(path, api, namespace, () => local.logs());
        for (const inFlight of IN_FLIGHT) {
          const latencies = await admissions(api, namespace, context.requests, inFlight);
          const entry = figures.get(`${path}/${inFlight}`) ?? { p50: [], p99: [] };
          entry.p50.push(percentile(latencies, 50));
          entry.p99.push(percentile(latencies, 99));
          figures.set(`${path}/${inFlight}`, entry);
        }
      }
    }
  } finally {
    api.close();
    await uninstallWebhook(cluster);
    await local.stop();
  }
  return report(context, figures, Date.now() - started);
}

/** The configurations as installed (the bootstrap Job injected their caBundle), ready to be created again. */
async function installedConfigurations(cluster: TestCluster): Promise<Obj[]> {
  const got = await cluster.kubectl(['get', 'mutatingwebhookconfiguration/image-registry-operator', 'validatingwebhookconfiguration/image-registry-operator', '-o', 'json']);
  if (got.code !== 0) throw new Error(`reading the installed webhook configurations: ${got.stderr}`);
  return (JSON.parse(got.stdout) as { items: Obj[] }).items.map((o) => {
    const { name, labels } = o.metadata;
    return { ...o, metadata: { name, ...(labels ? { labels } : {}) } };
  });
}

/** Waits until the API server calls the path just configured (it picks configurations up asynchronously). */
async function servedBy(path: Path, api: KubeApi, namespace: string, localLogs: () => string): Promise<void> {
  let n = 0;
  await waitFor(`admissions through the ${path}`, async () => {
    const name = `probe-${path}-${Date.now()}-${n++}`;
    const answer = await create(api, namespace, name);
    if (answer !== 201) return false;
    return localLogs().includes(`"name":"${name}"`) === (path === 'url');
  }, 30_000);
}

async function create(api: KubeApi, namespace: string, name?: string): Promise<number> {
  const body = { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: name ? { name } : { generateName: 'bench-' }, spec: {} };
  return (await api.request('POST', `/apis/${GROUP_VERSION}/namespaces/${namespace}/imageregistries?dryRun=All`, body)).status;
}

/** `requests` dry-run creates, `inFlight` at a time; each one's latency in ms (a failure throws). */
async function admissions(api: KubeApi, namespace: string, requests: number, inFlight: number): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next++ < requests) {
      const t0 = performance.now();
      const status = await create(api, namespace);
      if (status !== 201) throw new Error(`a dry-run create answered ${status}`);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return latencies;
}

function report(context: AdmissionPathContext, figures: Map<string, { p50: number[]; p99: number[] }>, durationMs: number): SectionResult {
  const rows: Row[] = [];
  const details = [
    `${context.rounds} interleaved rounds; per round, path and in-flight level ${context.requests} dry-run ImageRegistry creates through the API server (mutate + validate). Medians of the rounds' percentiles; the baseline is the configuration pointed at a webhook process by URL.`,
    '',
    '| path | in flight | p50 per round (ms) | p99 per round (ms) |',
    '|---|---|---|---|',
  ];
  for (const inFlight of IN_FLIGHT) {
    const service = figures.get(`service/${inFlight}`) ?? { p50: [], p99: [] };
    const url = figures.get(`url/${inFlight}`) ?? { p50: [], p99: [] };
    for (const q of ['p50', 'p99'] as const) {
      rows.push({
        figure: `admission ${q}, ${inFlight} in flight, through the Service`,
        result: ms(median(service[q])),
        baseline: ms(median(url[q])),
        ratio: ratio(median(service[q]), median(url[q])),
        target: '–',
        limit: 'API server + webhook; the Service path adds kube-proxy\'s DNAT, the veth into the node\'s namespace and the pod\'s bridge, and its two pods run in the node\'s cgroups with the CPU weight of their 50m request, where the URL\'s one process runs beside the API server',
      });
    }
    for (const [path, entry] of [['Service', service], ['URL', url]] as const) {
      details.push(`| ${path} | ${inFlight} | ${entry.p50.map((v) => v.toFixed(1)).join(', ')} | ${entry.p99.map((v) => v.toFixed(1)).join(', ')} |`);
    }
  }
  return { title: '9. Admission through the Service vs a direct URL', rows, details, durationMs };
}
