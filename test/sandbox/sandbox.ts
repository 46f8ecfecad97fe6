// The local sandbox behind `npm start`: a real control plane with the toolkit installed from
// kustomize/, the real webhook over TLS, and stand-ins only where no real part runs here — the
// kubelet for Jobs (test/support/job-runner.ts) and for registry pods (test/support/pod-runner.ts).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { testCluster, type TestCluster } from '../support/cluster.ts';
import { startJobRunner, type JobRunner } from '../support/job-runner.ts';
import { writeOciImage } from '../support/oci-image.ts';
import { installExitHandlers } from '../support/processes.ts';
import {
  applyObjects,
  buildBundles,
  configEnv,
  createWebhookConfigurations,
  isWebhookConfiguration,
  pointWebhooksAt,
  renderInstall,
  repoRoot,
  startWebhook,
  testServingTls,
  type Obj,
  type WebhookProcess,
} from '../support/webhook.ts';
import { startPodSupervisor, type PodSupervisor } from './pod-supervisor.ts';
import { realSkopeo, skopeoWrapper } from './skopeo-wrapper.ts';

export const ENTRY_POINTS = ['webhook', 'reconcile', 'rotate', 'resync', 'bootstrap', 'bcrypt-worker'];
const OPERATOR_NAMESPACE = 'image-registry-operator';
// in-cluster parts that the sandbox replaces: the webhook runs as a local process with a test
// certificate instead of the Deployment, and its configurations point at it
const REPLACED_KINDS = new Set(['Deployment', 'PodDisruptionBudget', 'Job']);

export interface Sandbox {
  dataDir: string;
  kubeconfig: string;
  /** the shell lines that make kubectl and skopeo talk to the sandbox */
  envLines: string[];
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startSandbox(options: { dataDir?: string; log?: (line: string) => void } = {}): Promise<Sandbox> {
  installExitHandlers();
  const log = options.log ?? ((line: string) => console.log(line));
  const keep = options.dataDir !== undefined;
  const dataDir = resolve(options.dataDir ?? mkdtempSync(join(tmpdir(), 'iro-sandbox-')));
  mkdirSync(dataDir, { recursive: true });
  const stops: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const step of stops.reverse()) await step().catch(() => undefined);
    if (!keep) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    log('building the bundles (dist/)…');
    await buildBundles(ENTRY_POINTS);
    log('starting etcd and kube-apiserver…');
    const plane: ControlPlane = await startControlPlane({ workDir: join(dataDir, 'control-plane'), keepWorkDir: true });
    stops.push(() => plane.stop());
    process.env.IRO_KUBECONFIG = plane.kubeconfig;
    process.env.IRO_ASSETS = plane.assetsDir;
    const cluster = await testCluster();
    log(`kube-apiserver ${plane.version}; installing kustomize/…`);
    const objects = await renderInstall(cluster);
    await applyObjects(cluster, objects.filter((o) => !isWebhookConfiguration(o) && !REPLACED_KINDS.has(o.kind)));
    const webhook = await startLocalWebhook(cluster, objects, dataDir);
    stops.push(() => webhook.stop());
    const jobs: JobRunner = startJobRunner({ kubeconfig: plane.kubeconfig, namespace: OPERATOR_NAMESPACE, repoRoot, env: { OPERATOR_ROLLOUT_TIMEOUT: '20s' } });
    stops.push(() => jobs.stop());
    const pods: PodSupervisor = startPodSupervisor({ kubeconfig: plane.kubeconfig, assetsDir: plane.assetsDir, workDir: join(dataDir, 'pods'), hostsFile: join(dataDir, 'hosts'), log });
    stops.push(() => pods.stop());
    const env = writeClientTools(dataDir, plane);
    writeOciImage(join(dataDir, 'hello-oci'), 'v1', { 'hello.txt': 'hello from image-registry-operator\n' });
    const envLines = [`export KUBECONFIG=${env.KUBECONFIG} IRO_SANDBOX=${dataDir} PATH=${join(dataDir, 'bin')}:$PATH`];
    return { dataDir, kubeconfig: plane.kubeconfig, env, envLines, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startLocalWebhook(cluster: TestCluster, objects: Obj[], dataDir: string): Promise<WebhookProcess> {
  const tls = testServingTls();
  const webhook = await startWebhook({ tls, env: configEnv(objects), kubeconfig: cluster.kubeconfig });
  const configurations = pointWebhooksAt(objects.filter(isWebhookConfiguration), `127.0.0.1:${webhook.port}`, tls.ca.certPem);
  await createWebhookConfigurations(cluster, configurations);
  writeFileSync(join(dataDir, 'webhook.log.path'), webhook.logFile);
  return webhook;
}

/**
 * `<data>/bin` holds kubectl and a skopeo wrapper that sees the sandbox's /etc/hosts (registry
 * hostnames → the loopback addresses their Services are served on), so the README's commands
 * work unchanged. Returns the environment to export.
 */
function writeClientTools(dataDir: string, plane: ControlPlane): Record<string, string> {
  const bin = join(dataDir, 'bin');
  mkdirSync(bin, { recursive: true });
  const kubectl = join(bin, 'kubectl');
  if (!existsSync(kubectl)) symlinkSync(join(plane.assetsDir, 'kubectl'), kubectl);
  const hosts = join(dataDir, 'hosts');
  if (!existsSync(hosts)) writeFileSync(hosts, '127.0.0.1 localhost\n');
  const skopeo = join(bin, 'skopeo');
  writeFileSync(skopeo, skopeoWrapper(hosts, realSkopeo(bin)));
  chmodSync(skopeo, 0o755);
  return { KUBECONFIG: plane.kubeconfig, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, IRO_SANDBOX: dataDir };
}
