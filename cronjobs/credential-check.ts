// Confirms that every ready registry pod's docker_auth accepts a credential, before the Job hands
// it out: touches the pods (an annotation update makes the kubelet sync their Secret volumes now,
// not at its next periodic sync), then asks each pod — by its IP, not through the Service, which
// balances between pods — for a token with the credential, until all accept it or time runs out.
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import { AUTH_CONFIG_VERSION_ANNOTATION, readyRegistryPods, tokenProbePath, type CredentialCheckOutcome, type PodLike } from '../functions/credential-check.ts';
import { registryLabelSelector } from '../functions/names.ts';
import { NGINX_PORT } from '../functions/nginx-config.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import type { Kube } from './kube.ts';
import { errorMessage, log } from './log.ts';

export interface CredentialProbe {
  hostname: string;
  /** the CA that verifies the registry's serving certificate */
  caPem: string;
  username: string;
  password: string;
  /** the auth config Secret's resourceVersion: the pods are annotated with it */
  authConfigVersion: string;
  timeoutMs: number;
}

const RETRY_MS = 250;

export async function confirmCredentials(kube: Kube, key: RegistryKey, probe: CredentialProbe): Promise<CredentialCheckOutcome> {
  const selector = registryLabelSelector(key.name);
  const started = Date.now();
  const pods = await kube.list<PodLike & { metadata: { name: string } }>('v1', 'Pod', key.namespace, selector);
  await touchPods(kube, key.namespace, pods.map((p) => p.metadata.name), probe.authConfigVersion);
  const ready = readyRegistryPods(pods);
  if (ready.length === 0) return { outcome: 'no-ready-pod' };
  const waiting = new Set(ready.map((p) => p.name));
  for (;;) {
    await Promise.all(ready.filter((p) => waiting.has(p.name)).map(async (pod) => {
      if (await accepts(pod.ip, probe)) waiting.delete(pod.name);
    }));
    if (waiting.size === 0) {
      log('info', 'credentials confirmed by every ready registry pod', { registry: `${key.namespace}/${key.name}`, pods: ready.length, ms: Date.now() - started });
      return { outcome: 'confirmed', pods: ready.map((p) => p.name) };
    }
    if (Date.now() - started >= probe.timeoutMs) {
      return { outcome: 'timeout', pods: ready.map((p) => p.name), refusing: [...waiting], waitedSeconds: Math.round((Date.now() - started) / 1000) };
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

/** Annotates the pods (server-side apply of one annotation); a pod deleted meanwhile is skipped. */
async function touchPods(kube: Kube, namespace: string, names: string[], version: string): Promise<void> {
  await Promise.all(names.map(async (name) => {
    try {
      await kube.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, annotations: { [AUTH_CONFIG_VERSION_ANNOTATION]: version } } });
    } catch (error) {
      log('warn', 'cannot annotate registry pod; its kubelet syncs the new config at its next periodic sync', { pod: `${namespace}/${name}`, error: errorMessage(error) });
    }
  }));
}

/** One token request through the pod's nginx, verified with the registry CA under its hostname. */
function accepts(ip: string, probe: CredentialProbe): Promise<boolean> {
  const authorization = `Basic ${Buffer.from(`${probe.username}:${probe.password}`).toString('base64')}`;
  return new Promise((resolve) => {
    const req = request({
      host: ip,
      port: NGINX_PORT,
      servername: probe.hostname,
      ca: [probe.caPem, ...rootCertificates],
      path: tokenProbePath(probe.hostname, probe.username),
      headers: { authorization, host: probe.hostname },
      agent: false,
      timeout: 5_000,
    }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}
