// The README's quickstart for real: `npm start`'s sandbox is started as its own process, the
// commands of the README's "Usage" section run against it as written, and after Ctrl-C (SIGINT)
// nothing the sandbox started is left running.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authServerUnavailable, testBinaries } from '../support/binaries.ts';
import { writeOciImage } from '../support/oci-image.ts';
import { delay, run } from '../support/processes.ts';
import { readmeCommands } from '../support/readme.ts';
import { realSkopeo } from '../sandbox/skopeo-wrapper.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const test = suite('README usage in the npm start sandbox');

const commands = readmeCommands('usage');
// A registry pod is only Ready, credentials are only confirmed (Ready push/pull secrets), and a
// push or pull only authorized, with a running docker_auth.
const usesDockerAuth = (command: string) => /skopeo (copy|inspect)|condition=Ready image(registry|pushsecret|pullsecret)\//.test(command);
// What the waits for Ready push/pull secrets are there for: their Secrets and their status (the
// rotation). Without docker_auth those waits are skipped, and the reconcile Job writes the Secrets
// only once it gives up waiting for a ready pod (OPERATOR_ROLLOUT_TIMEOUT): a step that reads them,
// or counts rotations from the first one, would race with that Job.
const readsReadyImageSecret = (command: string) => /secret \S+-image-(push|pull)-secret\b|image(push|pull)secret \S+ -o jsonpath='\{\.status\./.test(command);
/** The steps that need a running docker_auth, or a step before them that does. */
const needsAuthServer = (command: string) => usesDockerAuth(command) || readsReadyImageSecret(command);
const authMissing = authServerUnavailable(await testBinaries());

interface Started {
  child: ChildProcess;
  output: () => string;
  env: NodeJS.ProcessEnv;
  dataDir: string;
  workDir: string;
}
let started: Promise<Started> | undefined;

/** Starts the sandbox exactly as `npm start -- --data <dir>` does and reads the export line it prints. */
function sandbox(): Promise<Started> {
  started ??= (async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'iro-readme-sandbox-'));
    const child = spawn('sh', [join(root, 'test/with-node.sh'), join(root, 'test/sandbox/start.ts'), '--data', dataDir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    // building the bundles, the control plane and the install (bootstrap Job, webhook rollout)
    const deadline = Date.now() + 300_000;
    while (!output.includes('sandbox ready')) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stopUnready(child, dataDir);
        throw new Error(`npm start did not come up:\n${output}`);
      }
      await delay(200);
    }
    const exportLine = /^\s*export (.*)$/m.exec(output)?.[1] ?? '';
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const assignment of exportLine.split(' ')) {
      const [key, value] = assignment.split('=') as [string, string];
      env[key] = value.replace('$PATH', process.env.PATH ?? '');
    }
    // the commands write config.json and ca.crt into the working directory: keep them out of the repo
    const workDir = mkdtempSync(join(tmpdir(), 'iro-readme-work-'));
    symlinkSync(join(root, 'kustomize'), join(workDir, 'kustomize'));
    return { child, output: () => output, env, dataDir, workDir };
  })();
  return started;
}

/**
 * Ctrl-C for a sandbox that did not come up in time: left running, it would outlive this file (and
 * its pipes would keep this process from ending).
 */
async function stopUnready(child: ChildProcess, dataDir: string): Promise<void> {
  if (child.exitCode === null) process.kill(-child.pid!, 'SIGINT');
  const deadline = Date.now() + 60_000;
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await delay(200);
  rmSync(dataDir, { recursive: true, force: true });
}

test('npm start prints the export line and the next commands', async () => {
  const s = await sandbox();
  assert.match(s.output(), 'export KUBECONFIG=');
  assert.ok(s.env.KUBECONFIG && s.env.IRO_SANDBOX, 'KUBECONFIG and IRO_SANDBOX exported');
  assert.ok(commands.length >= 8, `the README has its usage commands (${commands.length})`);
});

for (const [i, command] of commands.entries()) {
  const skip = needsAuthServer(command) && authMissing;
  if (skip && i === commands.findIndex(needsAuthServer)) console.log(`SKIP README steps that need docker_auth: auth_server could not be built: ${authMissing}`);
  (skip ? test.skip : test)(`README step ${i + 1}: ${command}`, async () => {
    const s = await sandbox();
    const result = await run('bash', ['-o', 'pipefail', '-c', command], { env: s.env, cwd: s.workDir, timeoutMs: 240_000 });
    assert.is(result.code, 0, `${command}\n${result.stdout}\n${result.stderr}`);
    if (command.includes('{.status.rotation}') && result.stdout.trim() !== '2') {
      // what rotated, and when: the CR's Events and the operator's Jobs and pods
      const why = await run('bash', ['-c', 'kubectl get events -A -o custom-columns=TIME:.lastTimestamp,OBJ:.involvedObject.name,REASON:.reason,MSG:.message --sort-by=.lastTimestamp | grep -i "rotat\\|example\\|credential" ; kubectl -n image-registry-operator get jobs,pods -o wide'], { env: s.env, cwd: s.workDir });
      assert.is(result.stdout.trim(), '2', `the forced rotation incremented the rotation once\n${why.stdout}${why.stderr}`);
    }
    if (command.startsWith('skopeo inspect')) assert.match(result.stdout, /"Digest": "sha256:/, 'the pull secret reads the pushed image');
    if (command.includes('config\\.json')) {
      const config = JSON.parse(readFileSync(join(s.workDir, 'config.json'), 'utf8'));
      assert.equal(Object.keys(config.auths), ['registry.default.svc.example.org']);
    }
  });
}

const PULLS = 200;
const IMAGE = 'registry.default.svc.example.org/default/layers:v1';

/** `count` pulls of the image, `parallel` at a time, each into a fresh directory; what failed, and how. */
async function pulls(count: number, parallel: number, pull: (dest: string) => Promise<{ code: number; stderr: string }>, digest: string, dir: string): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const dest = join(dir, `pull-${i}`);
      const result = await pull(dest);
      const pulled = result.code === 0 ? readFileSync(`${dest}.digest`, 'utf8').trim() : '';
      if (result.code !== 0 || pulled !== digest) failures.push(`pull ${i}: ${result.code !== 0 ? result.stderr.trim().split('\n').at(-1) : `digest ${pulled}`}`);
      rmSync(dest, { recursive: true, force: true });
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return failures;
}

(authMissing ? test.skip : test)(`every byte arrives: ${PULLS} skopeo pulls of a 3-layer image through the load balancer, ${PULLS} through the ClusterIP, 0 failures`, async () => {
  const s = await sandbox();
  // three layers of ~600 KiB each (base64 text of random bytes stays that large gzipped)
  const layers = [0, 1, 2].map((i) => ({ [`layer-${i}.txt`]: randomBytes(600 * 1024).toString('base64') }));
  const image = writeOciImage(join(s.workDir, 'layers-oci'), 'v1', layers);
  assert.ok(image.layers.every((layer) => layer.size >= 512 * 1024), JSON.stringify(image.layers));
  const push = await run('skopeo', ['copy', '--authfile', 'config.json', '--dest-cert-dir', '.', '--digestfile', 'pushed.digest', image.reference, `docker://${IMAGE}`], { env: s.env, cwd: s.workDir, timeoutMs: 120_000 });
  assert.is(push.code, 0, push.stderr);
  const digest = readFileSync(join(s.workDir, 'pushed.digest'), 'utf8').trim();
  const pullArgs = (dest: string) => ['copy', '--authfile', 'pull.json', '--src-cert-dir', '.', '--digestfile', `${dest}.digest`, `docker://${IMAGE}`, `dir:${dest}`];
  const viaLoadBalancer = await pulls(PULLS, 4, (dest) => run('skopeo', pullArgs(dest), { env: s.env, cwd: s.workDir, timeoutMs: 120_000 }), digest, s.workDir);
  assert.equal(viaLoadBalancer, [], `${viaLoadBalancer.length} of ${PULLS} pulls through the load balancer failed:\n${viaLoadBalancer.join('\n')}`);
  // the same hostname resolved to the Service's ClusterIP (as a pod or node in the cluster would reach it)
  const clusterIp = await run('kubectl', ['get', 'service', 'registry', '-o', 'jsonpath={.spec.clusterIP}'], { env: s.env });
  assert.match(clusterIp.stdout, /^\d+\.\d+\.\d+\.\d+$/);
  const hosts = join(s.workDir, 'hosts-cluster-ip');
  writeFileSync(hosts, `127.0.0.1\tlocalhost\n${clusterIp.stdout}\tregistry.default.svc.example.org\n`);
  const skopeo = realSkopeo(join(s.dataDir, 'bin'));
  const viaClusterIp = await pulls(PULLS, 4, (dest) => run('bwrap', ['--dev-bind', '/', '/', '--ro-bind', hosts, '/etc/hosts', '--chdir', s.workDir, skopeo, ...pullArgs(dest)], { env: s.env, cwd: s.workDir, timeoutMs: 120_000 }), digest, s.workDir);
  assert.equal(viaClusterIp, [], `${viaClusterIp.length} of ${PULLS} pulls through the ClusterIP failed:\n${viaClusterIp.join('\n')}`);
});

test('after Ctrl-C (SIGINT) no process the sandbox started is still running', async () => {
  const s = await sandbox();
  process.kill(-s.child.pid!, 'SIGINT');
  const deadline = Date.now() + 60_000;
  while (s.child.exitCode === null && Date.now() < deadline) await delay(200);
  assert.is(s.child.exitCode, 0, s.output().slice(-2000));
  const left = await run('pgrep', ['-af', s.dataDir]);
  assert.is(left.stdout.trim(), '', `processes left behind:\n${left.stdout}`);
  let groupAlive = true;
  try {
    process.kill(-s.child.pid!, 0);
  } catch {
    groupAlive = false;
  }
  assert.not.ok(groupAlive, 'the sandbox process group is gone');
  rmSync(s.dataDir, { recursive: true, force: true });
  rmSync(s.workDir, { recursive: true, force: true });
});

test.run();
