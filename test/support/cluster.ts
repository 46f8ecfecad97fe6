// The control plane a test file talks to: the one the test runner started (IRO_KUBECONFIG),
// or one started for this process alone when a test file is run by itself.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
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
}

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
  return { kubeconfig, assetsDir, kubectl, createNamespace };
}
