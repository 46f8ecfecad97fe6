// Benchmark 14: what "in use" costs a retention run (cronjobs/workload-images.ts): listing the
// images of every workload of a cluster with 5,000 Pods (and their Deployments, ReplicaSets and a
// few StatefulSets, DaemonSets, Jobs and CronJobs), paged 500 at a time, against the real API server
// of a control plane without a node (the Pods stay Pending: only their specs matter). Baseline in
// the same rounds: one unpaged LIST of the Pods alone, the least any reader of the Pods' images can do.
// The figures: LIST requests per run (bounded: one per 500 objects per kind, whatever the number of
// registries), wall time, and the registry's references found (in-use.ts).
import { KubeConfig } from '@kubernetes/client-node';
import { inUseOf, inUseSummary } from '../../functions/retention/in-use.ts';
import { connectKube } from '../../cronjobs/kube.ts';
import { workloadImages } from '../../cronjobs/workload-images.ts';
import type { TestCluster } from '../support/cluster.ts';
import { kubeApi } from '../support/kube-api.ts';
import type { SectionResult } from './report.ts';
import { createObject, parallel } from './rotation.ts';
import { median, ms, ratio } from './stats.ts';

export interface WorkloadImagesOptions {
  cluster: Pick<TestCluster, 'kubeconfig' | 'createNamespace'>;
  pods: number;
  namespaces: number;
  runs: number;
  progress: (message: string) => void;
}

const HOST = 'registry.apps.svc.example.org';

/** A pod spec with an app container of this registry (tag i) and a sidecar from Docker Hub. */
const podSpec = (i: number) => ({
  containers: [
    { name: 'app', image: i % 10 === 0 ? `${HOST}/team-${i % 7}/app@sha256:${(i % 16).toString(16).repeat(64)}` : `${HOST}/team-${i % 7}/app:build-${i % 300}` },
    { name: 'proxy', image: 'envoyproxy/envoy:v1.31.0' },
  ],
});

export async function workloadImagesSection(options: WorkloadImagesOptions): Promise<SectionResult> {
  const started = Date.now();
  const api = kubeApi(options.cluster.kubeconfig, { maxSockets: 16 });
  const namespaces = await Promise.all(Array.from({ length: options.namespaces }, (_, i) => options.cluster.createNamespace(`bench-workloads-${i}`)));
  const objects: { path: string; body: unknown }[] = [];
  for (let i = 0; i < options.pods; i++) {
    const namespace = namespaces[i % namespaces.length] as string;
    objects.push({ path: `/api/v1/namespaces/${namespace}/pods`, body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: `p-${i}` }, spec: podSpec(i) } });
  }
  // one Deployment (replicas 0) and one ReplicaSet (replicas 0) per 10 Pods, as a cluster's controllers would have them
  for (let i = 0; i < options.pods / 10; i++) {
    const namespace = namespaces[i % namespaces.length] as string;
    const template = { metadata: { labels: { app: `a-${i}` } }, spec: podSpec(i) };
    objects.push({ path: `/apis/apps/v1/namespaces/${namespace}/deployments`, body: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: `d-${i}` }, spec: { replicas: 0, selector: { matchLabels: { app: `a-${i}` } }, template } } });
    objects.push({ path: `/apis/apps/v1/namespaces/${namespace}/replicasets`, body: { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: `r-${i}` }, spec: { replicas: 0, selector: { matchLabels: { app: `a-${i}` } }, template } } });
  }
  for (let i = 0; i < 20; i++) {
    const namespace = namespaces[i % namespaces.length] as string;
    objects.push({ path: `/apis/batch/v1/namespaces/${namespace}/cronjobs`, body: { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: `c-${i}` }, spec: { schedule: '0 0 1 1 *', suspend: true, jobTemplate: { spec: { template: { spec: { ...podSpec(i), restartPolicy: 'Never' } } } } } } });
  }
  options.progress(`creating ${objects.length} workload objects in ${namespaces.length} namespaces`);
  const createStarted = Date.now();
  await parallel(objects, 16, (o) => createObject(api, o.path, o.body));
  const createMs = Date.now() - createStarted;

  const config = new KubeConfig();
  config.loadFromFile(options.cluster.kubeconfig);
  const kube = connectKube(config);
  const paged: number[] = [];
  const unpaged: number[] = [];
  let requests = 0;
  let images = 0;
  let summary = { count: 0, examples: [] as string[] };
  for (let run = 0; run < options.runs; run++) {
    // alternate which goes first
    const order = run % 2 === 0 ? ['paged', 'unpaged'] : ['unpaged', 'paged'];
    for (const kind of order) {
      const t0 = performance.now();
      if (kind === 'paged') {
        const read = await workloadImages(kube);
        paged.push(performance.now() - t0);
        requests = read.requests;
        images = read.images.size;
        summary = inUseSummary(inUseOf(read.images, HOST));
      } else {
        const response = await api.request<{ items: unknown[] }>('GET', '/api/v1/pods');
        if (response.status !== 200) throw new Error(`GET /api/v1/pods: HTTP ${response.status}`);
        unpaged.push(performance.now() - t0);
      }
    }
  }
  api.close();
  const kinds = 8;
  return {
    title: '14. Images in use: the workloads of a 5,000-Pod cluster',
    rows: [
      {
        figure: `images of every workload (${options.pods} Pods, ${options.pods / 10} Deployments + ${options.pods / 10} ReplicaSets, 20 CronJobs; 8 kinds), paged 500 a page`,
        result: ms(median(paged)),
        baseline: `${ms(median(unpaged))} one unpaged LIST of the Pods alone`,
        ratio: ratio(median(unpaged), median(paged)),
        target: '–',
        limit: `${requests} LIST requests (${kinds} kinds; ⌈objects / 500⌉ each), the same for any number of registries; the API server encoding ${options.pods} Pods`,
      },
    ],
    details: [
      `${objects.length} objects created in ${(createMs / 1000).toFixed(1)} s (16 at a time) on a control plane without a node; ${options.runs} runs, the paged read and the baseline alternating first.`,
      `Per run: ${requests} LIST requests; ${images} distinct image references; of registry ${HOST}: ${summary.count} references (tags and digests), e.g. ${summary.examples.join(', ')}.`,
      `Paged reads (ms): ${paged.map((v) => v.toFixed(0)).join(', ')}; unpaged LIST of the Pods (ms): ${unpaged.map((v) => v.toFixed(0)).join(', ')}.`,
    ],
    durationMs: Date.now() - started,
  };
}
