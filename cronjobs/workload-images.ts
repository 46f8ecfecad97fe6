// The image references of every workload in the cluster, for retention (functions/retention/in-use.ts):
// Pods, and the pod templates of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs
// and ReplicationControllers, in every namespace — a bounded number of paged LIST calls (500 a page),
// whatever the number of registries. Read-only (the Jobs' ClusterRole lists these kinds).
import { podSpecImages, type PodSpecImages } from '../functions/retention/in-use.ts';
import type { Kube } from './kube.ts';

const PAGE_SIZE = 500;

type Template = { spec?: { template?: { spec?: PodSpecImages } } };
type CronJobTemplate = { spec?: { jobTemplate?: { spec?: { template?: { spec?: PodSpecImages } } } } };

const KINDS: { apiVersion: string; kind: string; images: (item: object) => string[] }[] = [
  { apiVersion: 'v1', kind: 'Pod', images: (item) => podSpecImages((item as { spec?: PodSpecImages }).spec) },
  ...['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet'].map((kind) => ({ apiVersion: 'apps/v1', kind, images: (item: object) => podSpecImages((item as Template).spec?.template?.spec) })),
  { apiVersion: 'batch/v1', kind: 'Job', images: (item) => podSpecImages((item as Template).spec?.template?.spec) },
  { apiVersion: 'batch/v1', kind: 'CronJob', images: (item) => podSpecImages((item as CronJobTemplate).spec?.jobTemplate?.spec?.template?.spec) },
  { apiVersion: 'v1', kind: 'ReplicationController', images: (item) => podSpecImages((item as Template).spec?.template?.spec) },
];

/** Every distinct image reference the workloads name, and how many LIST requests it took. */
export async function workloadImages(kube: Kube): Promise<{ images: Set<string>; requests: number }> {
  const images = new Set<string>();
  let requests = 0;
  for (const { apiVersion, kind, images: of } of KINDS) {
    const listed = await kube.listPaged<object>(apiVersion, kind, PAGE_SIZE, (items) => {
      for (const item of items) for (const image of of(item)) images.add(image);
    });
    requests += listed.requests;
  }
  return { images, requests };
}
