// `npm test`: runs every uvu test file in its own process — unit tests first, then the process
// tests (test/process/: real nginx, registry, docker_auth started directly), then the integration
// and end-to-end tests against a real control plane started here with a real node — and ends with exactly one summary line
// `N passed, M failed` counted from the runs.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startClusterOnRealNode, type RealNodeCluster } from './support/cluster.ts';
import { installExitHandlers } from './support/processes.ts';
import { parseUvuTotals } from './support/uvu-totals.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Makes a test registered after its suite's .run() a failure instead of silently never running. */
const uvuGuard = fileURLToPath(new URL('./support/uvu-guard.ts', import.meta.url));
const filters = process.argv.slice(2);
interface FileResult {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  output: string;
}

function testFiles(dir: string): string[] {
  const abs = join(root, 'test', dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs)
    .filter((name) => name.endsWith('.test.ts'))
    .map((name) => join(abs, name))
    .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
    .sort();
}

function runFile(file: string, env: NodeJS.ProcessEnv): Promise<FileResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, '--import', uvuGuard, file], {
      cwd: root,
      env: { ...env, FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('close', (code) => resolve({ file: relative(root, file), ...parseUvuTotals(output, code ?? 1), output }));
  });
}

async function runAll(files: string[], env: NodeJS.ProcessEnv, parallel: number, afterEach?: () => Promise<void>): Promise<FileResult[]> {
  const results: FileResult[] = [];
  const queue = [...files];
  const worker = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      const started = Date.now();
      const result = await runFile(file, env);
      results.push(result);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const skipped = result.skipped ? `, ${result.skipped} skipped` : '';
      console.log(`── ${result.file}: ${result.passed} passed, ${result.failed} failed${skipped} (${seconds}s)`);
      if (result.failed > 0 || process.env.TEST_VERBOSE) console.log(result.output.trimEnd().replace(/^/gm, '   '));
      await afterEach?.();
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return results;
}

/** The tests run the bundles in dist/ as the Jobs do, so build them first. */
function buildBundles(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, join(root, 'test/build.ts')], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`npm run build failed with exit code ${code}`))));
  });
}

/** Files that start a cluster of their own (with other settings: no CRDs, a shorter kubelet sync). */
const OWN_CLUSTER_FILES = ['test/integration/install-for-real.test.ts'];

async function main(): Promise<void> {
  installExitHandlers();
  await buildBundles();
  // every bundle is built: the files leave dist/ alone (test/support/webhook.ts buildBundles)
  process.env.IRO_BUNDLES_BUILT = '1';
  const unit = testFiles('unit');
  const withCluster = [...testFiles('integration'), ...testFiles('e2e')];
  const results = await runAll(unit, process.env, 2);
  // real nginx, registry and docker_auth processes on loopback, no control plane; one at a time
  results.push(...(await runAll(testFiles('process'), process.env, 1)));
  if (withCluster.length > 0) {
    let cluster: RealNodeCluster | undefined;
    try {
      cluster = await startClusterOnRealNode();
      const { plane, node } = cluster;
      console.log(`── control plane: kube-apiserver ${plane.version} at ${plane.server}, controllers and scheduler, up in ${(plane.startupMs / 1000).toFixed(1)}s; real node ${node.nodeName} (kubelet, kube-proxy, containerd) in ${node.network.namespace}`);
      const running = cluster;
      // a file with a cluster of its own runs beside the shared cluster's queue: the two clusters
      // share the machine, not their objects (install-for-real: ~5 min off the run's length)
      const ownCluster = withCluster.filter((file) => OWN_CLUSTER_FILES.some((name) => file.endsWith(name)));
      const shared = withCluster.filter((file) => !ownCluster.includes(file));
      const [own, onShared] = await Promise.all([
        runAll(ownCluster, process.env, 1),
        runAll(shared, { ...process.env, ...running.env }, 1, () => running.deleteTestNamespaces()),
      ]);
      results.push(...onShared, ...own);
    } catch (error) {
      console.log(`── cluster with a real node failed to start: ${(error as Error).message}`);
      results.push({ file: 'cluster with a real node', passed: 0, failed: 1, skipped: 0, output: '' });
    } finally {
      await cluster?.stop();
    }
  }
  const passed = results.reduce((n, r) => n + r.passed, 0);
  const failed = results.reduce((n, r) => n + r.failed, 0);
  const skipped = results.reduce((n, r) => n + r.skipped, 0);
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
