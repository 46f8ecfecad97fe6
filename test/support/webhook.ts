// Test helpers around the real webhook server process (dist/webhook.js) and the installation
// rendered from kustomize/: build the bundles, start/stop the server with a test certificate,
// point the rendered webhook configurations at it (the envtest way: clientConfig.service → url).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAll } from 'js-yaml';
import type { TestCluster } from './cluster.ts';
import { issueTestCertificate, type KeyPairPem } from './pki.ts';
import { freePort, installExitHandlers, startProcess, waitFor, type ManagedProcess } from './processes.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/** The bundles the operator image's pods run (dist/<name>.js). */
export const OPERATOR_ENTRY_POINTS = ['webhook', 'reconcile', 'rotate', 'resync', 'bootstrap', 'upload-cleanup', 'bcrypt-worker'];

export type Obj = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
};

/**
 * Builds the named entry points into dist/ with the project's own build script — unless the test
 * runner built every bundle before starting the files (IRO_BUNDLES_BUILT): files that run side by
 * side must not rewrite dist/ while another copies it into an image or runs it.
 */
export function buildBundles(names: string[]): Promise<void> {
  if (process.env.IRO_BUNDLES_BUILT === '1') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, join(repoRoot, 'test/build.ts'), ...names], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`building ${names.join(', ')}: ${stderr}`))));
  });
}

/** The objects `kubectl kustomize kustomize/` renders: what `kubectl apply -k kustomize` installs. */
export async function renderInstall(cluster: TestCluster): Promise<Obj[]> {
  const rendered = await cluster.kubectl(['kustomize', join(repoRoot, 'kustomize')]);
  if (rendered.code !== 0) throw new Error(`kubectl kustomize kustomize/: ${rendered.stderr}`);
  return loadAll(rendered.stdout) as Obj[];
}

/** The operator's configuration env, as the rendered ConfigMap holds it. */
export function configEnv(objects: Obj[]): Record<string, string> {
  const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('image-registry-operator-config'));
  if (!config) throw new Error('the rendered installation has no image-registry-operator-config ConfigMap');
  return { ...(config.data as Record<string, string>) };
}

export const isWebhookConfiguration = (o: Obj) => o.kind === 'MutatingWebhookConfiguration' || o.kind === 'ValidatingWebhookConfiguration';

/** The webhook configurations with each clientConfig.service replaced by `https://<host:port><path>` and caBundle. */
export function pointWebhooksAt(objects: Obj[], hostPort: string, caPem: string): Obj[] {
  return objects.filter(isWebhookConfiguration).map((configuration) => ({
    ...configuration,
    webhooks: (configuration.webhooks as { clientConfig: { service: { path: string } } }[]).map((webhook) => ({
      ...webhook,
      clientConfig: { url: `https://${hostPort}${webhook.clientConfig.service.path}`, caBundle: Buffer.from(caPem).toString('base64') },
    })),
  }));
}

/**
 * Replaces our webhook configurations with these (created fresh: an apply would merge them with
 * fields another manager set before, e.g. a service next to the url).
 */
export async function createWebhookConfigurations(cluster: TestCluster, configurations: Obj[]): Promise<void> {
  await deleteWebhookConfigurations(cluster);
  const created = await cluster.kubectl(['create', '-f', '-'], { input: configurations.map((o) => JSON.stringify(o)).join('\n') });
  if (created.code !== 0) throw new Error(`creating the webhook configurations: ${created.stderr}`);
}

export async function deleteWebhookConfigurations(cluster: TestCluster): Promise<void> {
  await cluster.kubectl(['delete', '--ignore-not-found', '--wait=false', 'mutatingwebhookconfiguration/image-registry-operator', 'validatingwebhookconfiguration/image-registry-operator']);
}

export interface TestTls {
  ca: KeyPairPem;
  dir: string;
  certFile: string;
  keyFile: string;
}

/** A test CA and a serving certificate for 127.0.0.1/localhost, written to a temporary directory. */
export function testServingTls(): TestTls {
  const ca = issueTestCertificate({ commonName: 'webhook-test-ca', isCa: true });
  const serving = issueTestCertificate({ commonName: 'webhook', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], issuer: ca });
  const dir = mkdtempSync(join(tmpdir(), 'iro-webhook-tls-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  writeFileSync(certFile, serving.certPem);
  writeFileSync(keyFile, serving.keyPem, { mode: 0o600 });
  return { ca, dir, certFile, keyFile };
}

export interface WebhookProcess {
  port: number;
  process: ManagedProcess;
  logFile: string;
  logs(): string;
  /** SIGTERM (graceful) and wait for the exit; resolves with the exit code */
  stop(): Promise<number | string>;
}

export interface StartWebhookOptions {
  tls: TestTls;
  /** operator config env (OPERATOR_*) and anything else; WEBHOOK_* and KUBECONFIG are set from the other options */
  env: Record<string, string>;
  kubeconfig: string;
  port?: number;
  /** dist/webhook.js by default */
  entry?: string;
  /** the name the health check verifies the certificate for (default: the address 127.0.0.1) */
  servername?: string;
}

/** Starts dist/webhook.js on 127.0.0.1 and waits until /healthz answers over TLS. */
export async function startWebhook(options: StartWebhookOptions): Promise<WebhookProcess> {
  installExitHandlers();
  const port = options.port ?? (await freePort());
  const logFile = join(mkdtempSync(join(tmpdir(), 'iro-webhook-')), 'webhook.log');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...options.env,
    KUBECONFIG: options.kubeconfig,
    WEBHOOK_HOST: '127.0.0.1',
    WEBHOOK_PORT: String(port),
    WEBHOOK_TLS_CERT_FILE: options.tls.certFile,
    WEBHOOK_TLS_KEY_FILE: options.tls.keyFile,
    WEBHOOK_SHUTDOWN_TIMEOUT_SECONDS: '5',
  };
  const managed = startProcess('webhook', process.execPath, [options.entry ?? join(repoRoot, 'dist/webhook.js')], logFile, { env });
  const logs = () => readFileSync(logFile, 'utf8');
  const exited = () => (managed.child.exitCode !== null || managed.child.signalCode !== null ? `webhook exited:\n${logs()}` : undefined);
  const health = { port, caPem: options.tls.ca.certPem, path: '/healthz', method: 'GET', ...(options.servername ? { servername: options.servername } : {}) };
  await waitFor('webhook /healthz', async () => (await httpsRequest(health)).status === 200, 20_000, exited);
  return {
    port,
    process: managed,
    logFile,
    logs,
    stop: async () => {
      managed.child.kill('SIGTERM');
      const code = await Promise.race([managed.exited, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 15_000))]);
      await managed.stop();
      return code;
    },
  };
}

export interface HttpsResult {
  status: number;
  body: string;
  /** the serving certificate's fingerprint */
  fingerprint?: string;
}

/** One HTTPS request to 127.0.0.1:<port> trusting only `caPem` (for the certificate name `servername`, if given). */
export function httpsRequest(options: { port: number; caPem: string; path: string; method?: string; body?: string | Buffer; headers?: Record<string, string>; agent?: import('node:https').Agent; servername?: string }): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      ...(options.servername ? { servername: options.servername } : {}),
      port: options.port,
      path: options.path,
      method: options.method ?? 'POST',
      ca: options.caPem,
      agent: options.agent ?? false,
      timeout: 10_000,
      headers: { 'content-type': 'application/json', ...(options.headers ?? {}) },
    }, (res) => {
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate?.()?.fingerprint256;
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(fingerprint ? { fingerprint } : {}) }));
    });
    req.on('error', reject).on('timeout', () => req.destroy(new Error('timeout')));
    req.end(options.body);
  });
}

/**
 * Makes sure the webhook configurations do not outlive this test process, even when it crashes:
 * left behind, they would send every admission of our kinds to a webhook that is gone.
 */
export function deleteWebhookConfigurationsOnExit(cluster: TestCluster): void {
  process.once('exit', () => {
    spawnSync(join(cluster.assetsDir, 'kubectl'), ['delete', '--ignore-not-found', '--wait=false', 'mutatingwebhookconfiguration/image-registry-operator', 'validatingwebhookconfiguration/image-registry-operator'], {
      env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
      stdio: 'ignore',
      timeout: 10_000,
    });
  });
}
