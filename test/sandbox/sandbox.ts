// The local sandbox behind `npm start`: a real control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) with the toolkit installed by the README's install lines
// (`kubectl apply -k ./kustomize` and its waits: the bootstrap Job, the webhook Deployment behind
// its Service), on a real node (test/support/node/: kubelet, kube-proxy, containerd, runc, CNI;
// every pod from its image). The one stand-in is what hands out LoadBalancer addresses.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startClusterOnRealNode, type RealNodeCluster } from '../support/cluster.ts';
import { writeOciImage } from '../support/oci-image.ts';
import { installExitHandlers, run } from '../support/processes.ts';
import { readmeCommands } from '../support/readme.ts';
import { buildBundles, OPERATOR_ENTRY_POINTS, repoRoot } from '../support/webhook.ts';
import { startS3Server, type S3Identity, type S3Server } from '../support/s3-server.ts';
import { realSkopeo, skopeoWrapper } from './skopeo-wrapper.ts';

export interface Sandbox {
  dataDir: string;
  kubeconfig: string;
  /** the shell lines that make kubectl and skopeo talk to the sandbox */
  envLines: string[];
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startSandbox(options: { dataDir?: string; log?: (line: string) => void; s3?: boolean } = {}): Promise<Sandbox> {
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
    await buildBundles(OPERATOR_ENTRY_POINTS);
    log('starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a node (kubelet, kube-proxy, containerd)…');
    const running: RealNodeCluster = await startClusterOnRealNode({ workDir: join(dataDir, 'control-plane'), keepWorkDir: true });
    stops.push(() => running.stop());
    const { plane } = running;
    Object.assign(process.env, running.env);
    const env = writeClientTools(dataDir, plane.kubeconfig, plane.assetsDir, join(running.node.workDir, 'resolv.conf'));
    log(`kube-apiserver ${plane.version}, up in ${(plane.startupMs / 1000).toFixed(1)} s; installing as the README says:`);
    for (const command of readmeCommands('install')) {
      log(`  ${command}`);
      const result = await run('bash', ['-o', 'pipefail', '-c', command], { env: { ...process.env, ...env }, cwd: repoRoot, timeoutMs: 300_000 });
      if (result.code !== 0) throw new Error(`${command}: ${result.stderr || result.stdout}`);
    }
    writeOciImage(join(dataDir, 'hello-oci'), 'v1', { 'hello.txt': 'hello from image-registry-operator\n' });
    const envLines = [`export KUBECONFIG=${env.KUBECONFIG} IRO_SANDBOX=${dataDir} PATH=${join(dataDir, 'bin')}:$PATH`];
    if (options.s3) {
      // a kept data dir keeps the server's address and keys, so registries made before still reach it
      const identityFile = join(dataDir, 's3-identity.json');
      const identity = existsSync(identityFile) ? (JSON.parse(readFileSync(identityFile, 'utf8')) as S3Identity) : undefined;
      // on the node's veth: the pods reach it by the node's routes, and the host too
      const s3 = await startS3Server({ assetsDir: plane.assetsDir, workDir: dataDir, address: running.network.hostAddress, ...(identity?.address === running.network.hostAddress ? { identity } : {}) });
      stops.push(() => s3.close());
      writeFileSync(identityFile, JSON.stringify({ address: s3.address, port: s3.port, accessKey: s3.accessKey, secretKey: s3.secretKey }), { mode: 0o600 });
      if (!existsSync(join(s3.dataDir, SANDBOX_BUCKET))) s3.createBucket(SANDBOX_BUCKET);
      writeFileSync(join(dataDir, 'bucket-registry.yaml'), bucketRegistryManifest(s3), { mode: 0o600 });
      log(`S3 server (versitygw) at ${s3.endpoint}, bucket ${SANDBOX_BUCKET}; a registry on it: kubectl apply -f ${join(dataDir, 'bucket-registry.yaml')}`);
    }
    return { dataDir, kubeconfig: plane.kubeconfig, env, envLines, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

const SANDBOX_BUCKET = 'registry';

/** A credentials Secret and a two-replica ImageRegistry on the sandbox's bucket, as a user would write them. */
function bucketRegistryManifest(s3: S3Server): string {
  return `apiVersion: v1
kind: Secret
metadata: {name: bucket-registry-s3}
stringData: {AWS_ACCESS_KEY_ID: ${s3.accessKey}, AWS_SECRET_ACCESS_KEY: ${s3.secretKey}}
---
apiVersion: registry.mgoltzsche.github.com/v1alpha1
kind: ImageRegistry
metadata: {name: bucket-registry}
spec:
  replicas: 2
  storage:
    s3:
      bucket: ${SANDBOX_BUCKET}
      endpoint: ${s3.endpoint}
      credentialsSecret: {name: bucket-registry-s3}
`;
}

/**
 * `<data>/bin` holds kubectl and a skopeo wrapper that resolves names through the node's resolver
 * (the cluster's CoreDNS: registry hostnames → their LoadBalancer addresses, routed into the node),
 * so the README's commands work unchanged. Returns the environment to export.
 */
function writeClientTools(dataDir: string, kubeconfig: string, assetsDir: string, resolvConf: string): Record<string, string> {
  const bin = join(dataDir, 'bin');
  mkdirSync(bin, { recursive: true });
  const kubectl = join(bin, 'kubectl');
  if (!existsSync(kubectl)) symlinkSync(join(assetsDir, 'kubectl'), kubectl);
  const skopeo = join(bin, 'skopeo');
  writeFileSync(skopeo, skopeoWrapper(resolvConf, realSkopeo(bin)));
  chmodSync(skopeo, 0o755);
  return { KUBECONFIG: kubeconfig, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, IRO_SANDBOX: dataDir };
}
