// The containers' environment in the kubelet stand-in's pod sandbox (test/support/pod-sandbox.ts):
// env and envFrom resolved from Secrets, ConfigMaps and the downward API, with Kubernetes' $(VAR)
// expansion, as the kubelet hands them to the container runtime.
import type { V1Container, V1EnvVar } from '@kubernetes/client-node';
import { configMapData, fieldValue, secretData, type PodSources } from './pod-sources.ts';

/** The PATH of a container whose image sets none (a container runtime's default). */
export const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Per container: envFrom, then env (value, secretKeyRef, configMapKeyRef, fieldRef) with $(VAR)
 * expanded, on top of what the kubelet always sets: KUBERNETES_SERVICE_HOST/PORT — the API server
 * as this machine reaches it, where a cluster has the Service IP that kube-proxy translates.
 */
export async function podEnvironment(sources: PodSources, apiServer: { host: string; port: number }): Promise<(c: V1Container) => Record<string, string>> {
  const base = { KUBERNETES_SERVICE_HOST: apiServer.host, KUBERNETES_SERVICE_PORT: String(apiServer.port), KUBERNETES_SERVICE_PORT_HTTPS: String(apiServer.port) };
  const resolved = new Map<string, Record<string, string>>();
  for (const container of sources.pod.spec?.containers ?? []) {
    const env: Record<string, string> = { ...base };
    for (const source of container.envFrom ?? []) {
      const what = `container ${container.name} envFrom`;
      const data = source.configMapRef
        ? await configMapData(sources, source.configMapRef.name ?? '', source.configMapRef.optional, what)
        : source.secretRef ? await secretData(sources, source.secretRef.name ?? '', source.secretRef.optional, what) : {};
      for (const [key, value] of Object.entries(data)) env[`${source.prefix ?? ''}${key}`] = value.toString('utf8');
    }
    for (const variable of container.env ?? []) env[variable.name] = await envValue(variable, env, sources);
    resolved.set(container.name, env);
  }
  return (c) => resolved.get(c.name) ?? {};
}

async function envValue(variable: V1EnvVar, earlier: Record<string, string>, sources: PodSources): Promise<string> {
  if (variable.value !== undefined || !variable.valueFrom) return expandVariables(variable.value ?? '', earlier);
  const from = variable.valueFrom;
  const what = `env ${variable.name}`;
  const keyRef = from.secretKeyRef ?? from.configMapKeyRef;
  if (keyRef) {
    const data = from.secretKeyRef ? await secretData(sources, keyRef.name ?? '', keyRef.optional, what) : await configMapData(sources, keyRef.name ?? '', keyRef.optional, what);
    const value = data[keyRef.key];
    if (value === undefined && !keyRef.optional) throw new Error(`${what}: couldn't find key ${keyRef.key} in ${from.secretKeyRef ? 'Secret' : 'ConfigMap'} ${sources.namespace}/${keyRef.name}`);
    return value?.toString('utf8') ?? '';
  }
  if (from.fieldRef) return fieldValue(sources.pod, from.fieldRef.fieldPath, sources.podIp);
  throw new Error(`${what}: only value, secretKeyRef, configMapKeyRef and fieldRef are supported by the kubelet stand-in`);
}

/** Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, anything else stays. */
export function expandVariables(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && name in env ? (env[name] as string) : match;
  });
}
