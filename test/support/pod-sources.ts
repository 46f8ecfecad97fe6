// What a pod's spec refers to, read the way the kubelet reads it: Secret and ConfigMap data from the
// API (for env, envFrom and volumes alike) and the downward API's fields. Part of the kubelet
// stand-in's pod sandbox (test/support/pod-sandbox.ts).
import type { V1Pod } from '@kubernetes/client-node';
import type { KubeApi } from './kube-api.ts';

/** The pod whose references are resolved, and where. */
export interface PodSources {
  api: KubeApi;
  pod: V1Pod;
  namespace: string;
  /** the pod's IP (status.podIP) */
  podIp: string;
}

async function getObject<T>(api: KubeApi, path: string): Promise<T | undefined> {
  const response = await api.request<T>('GET', path);
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`GET ${path}: HTTP ${response.status}`);
  return response.body;
}

const decodeAll = (data: Record<string, string> | undefined) => Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));

/** The Secret's data; a missing Secret that is not optional keeps the pod from starting. */
export async function secretData(sources: PodSources, name: string, optional: boolean | undefined, what: string): Promise<Record<string, Buffer>> {
  const secret = await getObject<{ data?: Record<string, string> }>(sources.api, `/api/v1/namespaces/${sources.namespace}/secrets/${name}`);
  if (!secret && !optional) throw new Error(`${what}: Secret ${sources.namespace}/${name} not found (the kubelet keeps the pod in ContainerCreating)`);
  return decodeAll(secret?.data);
}

/** The ConfigMap's data and binaryData; a missing ConfigMap that is not optional keeps the pod from starting. */
export async function configMapData(sources: PodSources, name: string, optional: boolean | undefined, what: string): Promise<Record<string, Buffer>> {
  const configMap = await getObject<{ data?: Record<string, string>; binaryData?: Record<string, string> }>(sources.api, `/api/v1/namespaces/${sources.namespace}/configmaps/${name}`);
  if (!configMap && !optional) throw new Error(`${what}: ConfigMap ${sources.namespace}/${name} not found (the kubelet keeps the pod in ContainerCreating)`);
  return {
    ...Object.fromEntries(Object.entries(configMap?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'utf8')])),
    ...decodeAll(configMap?.binaryData),
  };
}

/** The downward API's fields as the kubelet resolves them. */
export function fieldValue(pod: V1Pod, fieldPath: string, podIp: string): string {
  const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (label) return (label[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations)?.[label[2] as string] ?? '';
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.nodeName': pod.spec?.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName ?? 'default',
    'status.podIP': podIp,
    'status.hostIP': '127.0.0.1',
  };
  const value = fields[fieldPath];
  if (value === undefined) throw new Error(`fieldRef ${fieldPath} is not supported by the kubelet stand-in`);
  return value;
}
