// The control plane a test file talks to: the one the test runner started (IRO_KUBECONFIG),
// or one started for this process alone when a test file is run by itself.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from './control-plane.ts';
import { run } from './processes.ts';
import { testBinaries } from './binaries.ts';

export interface TestCluster {
  kubeconfig: string;
  assetsDir: string;
  /** runs the real kubectl with the admin kubeconfig; never throws */
  kubectl(args: string[], opts?: { input?: string; namespace?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** creates a namespace with a unique name starting with prefix */
  createNamespace(prefix: string, labels?: Record<string, string>): Promise<string>;
  /** renders a kustomize directory of the repo (e.g. 'kustomize/crds') and server-side applies it; throws on failure */
  applyKustomize(dir: string): Promise<string>;
  /** the CRDs of kustomize/crds, applied and Established (once per process) */
  installCrds(): Promise<void>;
}

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
let cluster: Promise<TestCluster> | undefined;

export function testCluster(): Promise<TestCluster> {
  cluster ??= connect();
  return cluster;
}

async function connect(): Promise<TestCluster> {
  let kubeconfig = process.env.IRO_KUBECONFIG;
  const assetsDir = await testBinaries();
  if (!kubeconfig) {
    const plane = await startControlPlane();
    process.once('beforeExit', () => void plane.stop());
    kubeconfig = plane.kubeconfig;
  }
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  const kubectl: TestCluster['kubectl'] = (args, opts = {}) =>
    run(join(assetsDir, 'kubectl'), [...(opts.namespace ? ['-n', opts.namespace] : []), ...args], { input: opts.input, env });
  const createNamespace = async (prefix: string, labels: Record<string, string> = {}) => {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
    const result = await kubectl(['create', '-f', '-'], { input: manifest });
    if (result.code !== 0) throw new Error(`creating namespace ${name}: ${result.stderr}`);
    return name;
  };
  const applyKustomize = async (dir: string) => {
    const rendered = await kubectl(['kustomize', join(repoRoot, dir)]);
    if (rendered.code !== 0) throw new Error(`kubectl kustomize ${dir}: ${rendered.stderr}`);
    const applied = await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=tests', '-f', '-'], { input: rendered.stdout });
    if (applied.code !== 0) throw new Error(`applying ${dir}: ${applied.stderr}`);
    return rendered.stdout;
  };
  let crds: Promise<void> | undefined;
  const installCrds = () => {
    crds ??= applyKustomize('kustomize/crds').then(async () => {
      const waited = await kubectl(['wait', '--for', 'condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=image-registry-operator']);
      if (waited.code !== 0) throw new Error(`waiting for the CRDs: ${waited.stderr}`);
    });
    return crds;
  };
  return { kubeconfig, assetsDir, kubectl, createNamespace, applyKustomize, installCrds };
}
