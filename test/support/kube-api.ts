// A tiny JSON client for the test control plane's REST API, for test infrastructure that polls
// (the LoadBalancer stand-in, the volume provisioner): one keep-alive HTTPS agent instead of a kubectl process per call.
// Also writes kubeconfigs that authenticate as a ServiceAccount (TokenRequest API), so processes
// run by the tests get exactly the permissions our RBAC grants.
import { Agent, request } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { load } from 'js-yaml';

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
}

export interface KubeApi {
  server: string;
  caPem: string;
  /** JSON in and out; never throws for HTTP errors (look at status) */
  request<T = unknown>(method: string, path: string, body?: unknown, contentType?: string): Promise<ApiResponse<T>>;
  /** a watch (`path` with `?watch=1`): each event as it arrives; error() says why it failed or ended */
  watch<T = unknown>(path: string, onEvent: (event: { type: string; object: T }) => void): { error(): string; stop(): void };
  close(): void;
}

interface KubeconfigFile {
  clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  users: { user: { 'client-certificate-data'?: string; 'client-key-data'?: string; token?: string } }[];
}

const decode = (b64: string | undefined) => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : undefined);

/** A client for the first cluster and user of a kubeconfig (client certificate or token). */
export function kubeApi(kubeconfig: string, options: { maxSockets?: number } = {}): KubeApi {
  const config = load(readFileSync(kubeconfig, 'utf8')) as KubeconfigFile;
  const cluster = config.clusters[0]?.cluster;
  const user = config.users[0]?.user ?? {};
  if (!cluster) throw new Error(`${kubeconfig}: no cluster`);
  const caPem = decode(cluster['certificate-authority-data']) ?? '';
  const agent = new Agent({
    keepAlive: true,
    maxSockets: options.maxSockets ?? 8,
    ca: caPem,
    ...(user['client-certificate-data'] ? { cert: decode(user['client-certificate-data']), key: decode(user['client-key-data']) } : {}),
  });
  const headers: Record<string, string> = { accept: 'application/json', ...(user.token ? { authorization: `Bearer ${user.token}` } : {}) };
  return {
    server: cluster.server,
    caPem,
    request: <T>(method: string, path: string, body?: unknown, contentType = 'application/json') =>
      new Promise<ApiResponse<T>>((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = request(`${cluster.server}${path}`, {
          method,
          agent,
          timeout: 30_000,
          headers: { ...headers, ...(payload !== undefined ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}) },
        }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
          res.on('end', () => {
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON: keep the text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
        });
        req.on('error', reject).on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
        req.end(payload);
      }),
    watch: <T>(path: string, onEvent: (event: { type: string; object: T }) => void) => {
      let failure = '';
      let pending = '';
      // its own connection (no agent): a watch holds it for as long as it runs
      const req = request(`${cluster.server}${path}`, { ca: caPem, cert: agent.options.cert, key: agent.options.key, headers }, (res) => {
        if (res.statusCode !== 200) failure = `watch ${path}: HTTP ${res.statusCode}`;
        res.setEncoding('utf8').on('data', (chunk: string) => {
          pending += chunk;
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) if (line.trim()) onEvent(JSON.parse(line) as { type: string; object: T });
        });
        res.on('end', () => void (failure ||= `watch ${path} ended`));
      });
      req.on('error', (error) => void (failure ||= `watch ${path}: ${error.message}`));
      req.end();
      return { error: () => failure, stop: () => void req.destroy() };
    },
    close: () => agent.destroy(),
  };
}

/** The API server's message of an error response. */
export function apiMessage(response: ApiResponse): string {
  const body = response.body as { message?: string } | string | undefined;
  return typeof body === 'object' && body?.message ? body.message : `HTTP ${response.status} ${typeof body === 'string' ? body : ''}`.trim();
}

/**
 * Requests a token for the ServiceAccount (what `kubectl create token <sa> -n <ns>` does) and
 * writes a kubeconfig that uses it. Throws when the ServiceAccount does not exist.
 */
export async function serviceAccountKubeconfig(
  api: KubeApi,
  { namespace, serviceAccount, file, expirationSeconds = 3600 }: { namespace: string; serviceAccount: string; file: string; expirationSeconds?: number },
): Promise<string> {
  const path = `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`;
  const response = await api.request<{ status?: { token?: string } }>('POST', path, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds },
  });
  const token = response.body?.status?.token;
  if (response.status !== 201 || !token) throw new Error(`token for ServiceAccount ${namespace}/${serviceAccount}: ${apiMessage(response)}`);
  const yaml = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: local',
    '  cluster:',
    `    server: ${api.server}`,
    `    certificate-authority-data: ${Buffer.from(api.caPem).toString('base64')}`,
    'users:',
    `- name: ${serviceAccount}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: local',
    `  context: {cluster: local, user: ${serviceAccount}, namespace: ${namespace}}`,
    'current-context: local',
    '',
  ].join('\n');
  writeFileSync(file, yaml, { mode: 0o600 });
  return file;
}
