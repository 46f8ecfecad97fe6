// A stand-in for the Kubernetes API that only notes when requests arrive: a tiny HTTPS listener on
// loopback that records the moment of each request and answers 503. Cold-start runs point
// KUBECONFIG at it to time "process start → first API request"; the webhook benchmark points the
// webhook at it to show that the measured admissions never reach the API.
import { createServer, type Server } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestTls } from '../support/webhook.ts';

export interface ApiRecorder {
  port: number;
  /** a kubeconfig for https://127.0.0.1:<port> with the test CA and a dummy token */
  kubeconfig: string;
  /** requests seen so far */
  readonly count: number;
  /** resolves with performance.now() of the next request to arrive (rejects after timeoutMs) */
  nextRequest(timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

export async function startApiRecorder(tls: TestTls): Promise<ApiRecorder> {
  let count = 0;
  let waiting: ((at: number) => void) | undefined;
  const server: Server = createServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (req, res) => {
    const at = performance.now();
    count++;
    const resolve = waiting;
    waiting = undefined;
    resolve?.(at);
    req.resume();
    res.writeHead(503, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'benchmark stand-in', reason: 'ServiceUnavailable', code: 503 }));
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const kubeconfig = join(tls.dir, `recorder-${port}.kubeconfig`);
  writeFileSync(kubeconfig, kubeconfigYaml(`https://127.0.0.1:${port}`, tls.ca.certPem), { mode: 0o600 });
  return {
    port,
    kubeconfig,
    get count() {
      return count;
    },
    nextRequest: (timeoutMs = 15_000) =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting = undefined;
          reject(new Error(`no API request within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting = (at) => {
          clearTimeout(timer);
          resolve(at);
        };
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function kubeconfigYaml(server: string, caPem: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: bench',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${Buffer.from(caPem).toString('base64')}`,
    'users:',
    '- name: bench',
    '  user:',
    '    token: benchmark',
    'contexts:',
    '- name: bench',
    '  context: {cluster: bench, user: bench, namespace: default}',
    'current-context: bench',
    '',
  ].join('\n');
}
