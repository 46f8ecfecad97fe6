// The registry pod's three processes started directly on loopback addresses — Debian's nginx with
// the generated nginx.conf, the registry with the generated config.yml, docker_auth with the
// generated auth_config.yml — for process-level tests and benchmarks of the nginx front. The
// configs are exactly what functions/ produces; only the container paths in them (token
// certificate, data directory) are mapped to this machine's temporary directories.
// Config and TLS directories are written the kubelet's way (test/support/atomic-writer.ts), so
// docker_auth's reload and nginx's per-handshake certificate loading behave as in a pod.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashSync } from 'bcryptjs';
import { AUTH_CONFIG_FILE, TOKEN_CERT_FILE, TOKEN_CERT_PATH, TOKEN_KEY_FILE, TOKEN_KEY_PATH, dockerAuthConfig } from '../../functions/docker-auth-config.ts';
import { AUTH_RETRY_PORT, METRICS_PORT, nginxConfig, type NginxConfigInput } from '../../functions/nginx-config.ts';
import { REGISTRY_DATA_PATH, REGISTRY_METRICS_PORT, TRUSTED_TOKEN_KEYS_PATH, registryConfig } from '../../functions/registry-config.ts';
import { ACCESS_KEY_ENV, SECRET_KEY_ENV, registryStorage, volumeStorageConfig } from '../../functions/registry-storage.ts';
import { trustedTokenKey, trustedTokenKeysDocument } from '../../functions/token-keys.ts';
import { GROUP_VERSION, type ImageRegistry, type ImageRegistryAccount } from '../../functions/types.ts';
import { writeAtomic } from './atomic-writer.ts';
import { issueTestCertificate, type KeyPairPem } from './pki.ts';
import { exitedMessage, httpOk, startProcess, waitFor, type ManagedProcess } from './processes.ts';

export const NGINX = '/usr/sbin/nginx';

export interface Account {
  name: string;
  password: string;
}

export interface TestPki {
  ca: KeyPairPem;
  /** serving certificate for the given IP addresses, signed by ca */
  serving: KeyPairPem;
  /** docker_auth's token-signing pair (the registry trusts its certificate) */
  token: KeyPairPem;
}

export function testPki(ipAddresses: string[]): TestPki {
  const ca = issueTestCertificate({ commonName: 'front test CA', isCa: true });
  return {
    ca,
    serving: issueTestCertificate({ commonName: ipAddresses[0] ?? 'front', ipAddresses, usage: 'server', issuer: ca }),
    token: issueTestCertificate({ commonName: 'front test token signer' }),
  };
}

/** Another serving certificate for the same addresses, as a renewal would issue (new key, new serial). */
export function renewedServing(pki: TestPki, ipAddresses: string[]): KeyPairPem {
  return issueTestCertificate({ commonName: ipAddresses[0] ?? 'front', ipAddresses, usage: 'server', issuer: pki.ca });
}

export function testRegistry(name = 'registry', namespace = 'front-test'): ImageRegistry {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name, namespace, uid: 'uid-1' }, spec: {} } as ImageRegistry;
}

/**
 * An account as the operator creates it: bcrypt hash (cost 4, as cronjobs/passwords.ts), labels
 * (the default ACL lets a push account push `<its namespace>/…` only, a pull account pull all).
 */
export function testAccount(registry: ImageRegistry, account: Account, accessMode: 'push' | 'pull'): ImageRegistryAccount {
  return {
    apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
    kind: 'ImageRegistryAccount',
    metadata: { name: account.name, namespace: registry.metadata.namespace, creationTimestamp: new Date(Date.now() - 60_000).toISOString() },
    spec: { password: hashSync(account.password, 4), labels: { accessMode: [accessMode], namespace: [registry.metadata.namespace ?? ''], name: ['app'] } },
  } as ImageRegistryAccount;
}

export interface DockerAuth {
  address: string;
  process: ManagedProcess;
  logFile: string;
  configDir: string;
  /** writes a new auth_config.yml the kubelet's way (docker_auth reloads ~2 s later) */
  writeConfig(accounts: readonly ImageRegistryAccount[]): void;
  /** the config text dockerAuthConfig() made for these accounts, with paths mapped */
  configText(accounts: readonly ImageRegistryAccount[]): string;
}

export async function startDockerAuth(options: {
  binary: string;
  dir: string;
  address: string;
  hostname: string;
  registry: ImageRegistry;
  accounts: readonly ImageRegistryAccount[];
  token: KeyPairPem;
}): Promise<DockerAuth> {
  // as the pod's <r>-auth-config volume: the config and the token-signing pair in one directory
  const configDir = join(options.dir, 'auth-config');
  const configText = (accounts: readonly ImageRegistryAccount[]) =>
    dockerAuthConfig({ registry: options.registry, accounts, hostname: options.hostname, now: new Date(), address: options.address })
      .replaceAll(TOKEN_CERT_PATH, join(configDir, TOKEN_CERT_FILE))
      .replaceAll(TOKEN_KEY_PATH, join(configDir, TOKEN_KEY_FILE));
  const writeConfig = (accounts: readonly ImageRegistryAccount[]) =>
    void writeAtomic(configDir, { [AUTH_CONFIG_FILE]: configText(accounts), [TOKEN_CERT_FILE]: options.token.certPem, [TOKEN_KEY_FILE]: options.token.keyPem }, { mode: 0o600 });
  writeConfig(options.accounts);
  const logFile = join(options.dir, 'docker_auth.log');
  // as in the pod: `-logtostderr <config>`; the config path goes through the `..data` symlink
  const process = startProcess('docker_auth', options.binary, ['-logtostderr', join(configDir, AUTH_CONFIG_FILE)], logFile);
  await waitFor(`docker_auth on ${options.address}`, () => httpOk(`http://${options.address}/`), 20_000, () => exitedMessage(process, logFile));
  return { address: options.address, process, logFile, configDir, writeConfig, configText };
}

export interface Registry {
  address: string;
  process: ManagedProcess;
  dataDir: string;
  /** its config.yml (what `registry garbage-collect` reads too) */
  configFile: string;
}

/**
 * The distribution registry with the generated config.yml: token auth (its trusted keys = the token
 * certificate's key, as a JWKS) when tokenCertPem is given; TLS on its own port when `tls` is given (the "registry serving
 * TLS itself" baseline), plain HTTP otherwise.
 */
export async function startRegistry(options: {
  binary: string;
  dir: string;
  address: string;
  hostname: string;
  tokenCertPem?: string;
  tls?: KeyPairPem;
  name?: string;
  /** the data in this bucket (as a bucket registry keeps it) instead of a directory */
  bucket?: { endpoint: string; bucket: string; accessKey: string; secretKey: string };
  /**
   * `storage.cache.blobdescriptor: inmemory`, which the generated config had until garbage
   * collection in another process made it answer HEAD 200 for deleted blobs: for benchmarks of its cost
   */
  blobDescriptorCache?: boolean;
}): Promise<Registry> {
  const name = options.name ?? 'registry';
  const base = join(options.dir, name);
  const dataDir = join(base, 'data');
  mkdirSync(dataDir, { recursive: true });
  const bucket = options.bucket;
  const generated = bucket
    ? registryStorage({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name, namespace: 'front-test' }, spec: { storage: { s3: { bucket: bucket.bucket, endpoint: bucket.endpoint } } } })
    : volumeStorageConfig();
  const storage = options.blobDescriptorCache ? { ...generated, config: { ...generated.config, cache: { blobdescriptor: 'inmemory' } } } : generated;
  // every registry started here shares one http.secret, as the replicas of a registry do
  let config = registryConfig({ hostname: options.hostname, httpSecret: 'front-test-http-secret', address: options.address, storage }).replaceAll(`rootdirectory: ${REGISTRY_DATA_PATH}`, `rootdirectory: ${dataDir}`);
  if (options.tokenCertPem) {
    writeFileSync(join(base, 'trusted-token-keys.jwks'), trustedTokenKeysDocument([trustedTokenKey(options.tokenCertPem)]));
    config = config.replaceAll(TRUSTED_TOKEN_KEYS_PATH, join(base, 'trusted-token-keys.jwks'));
  } else {
    config = withoutAuth(config);
  }
  if (options.tls) {
    writeFileSync(join(base, 'tls.crt'), options.tls.certPem);
    writeFileSync(join(base, 'tls.key'), options.tls.keyPem, { mode: 0o600 });
    config = config.replace(/^http:\n/m, `http:\n  tls:\n    certificate: ${join(base, 'tls.crt')}\n    key: ${join(base, 'tls.key')}\n`);
  }
  const configFile = join(base, 'config.yml');
  writeFileSync(configFile, config);
  const logFile = join(base, 'registry.log');
  const credentials = bucket ? { [ACCESS_KEY_ENV]: bucket.accessKey, [SECRET_KEY_ENV]: bucket.secretKey } : {};
  const process = startProcess(name, options.binary, ['serve', configFile], logFile, { env: { ...globalThis.process.env, OTEL_TRACES_EXPORTER: 'none', ...credentials } });
  const scheme = options.tls ? 'https' : 'http';
  await waitFor(`${name} on ${options.address}`, () => tcpHttpAnswers(`${scheme}://${options.address}/v2/`), 20_000, () => exitedMessage(process, logFile));
  return { address: options.address, process, dataDir, configFile };
}

/** The generated config.yml without its `auth:` section (the plain-HTTP, no-auth baseline). */
function withoutAuth(config: string): string {
  return config.replace(/^auth:\n(?: {2}.*\n)+/m, '');
}

export interface Nginx {
  process: ManagedProcess;
  dir: string;
  confFile: string;
  errorLog: string;
  /** worker process ids (children of the master) */
  workers(): number[];
}

/** Debian's nginx with nginxConfig(input) (optionally transformed, for a baseline): tmp dir and log in dir. */
export async function startNginx(options: { dir: string; input: NginxConfigInput; probe: string; transform?: (conf: string) => string }): Promise<Nginx> {
  mkdirSync(options.dir, { recursive: true });
  const confFile = join(options.dir, 'nginx.conf');
  const conf = nginxConfig({
    tmpDir: options.dir, accessLog: 'off', authRetryAddress: authRetryAddressFor(options.input.listen),
    ...sameHostPort(options.input.listen?.[0], METRICS_PORT, (address) => ({ metricsListen: [address] })),
    ...sameHostPort(options.input.registryAddress, REGISTRY_METRICS_PORT, (address) => ({ registryMetricsAddress: address })),
    ...options.input,
  });
  const changed = options.transform ? options.transform(conf) : conf;
  if (options.transform && changed === conf) throw new Error('startNginx: the transform changed nothing');
  writeFileSync(confFile, changed);
  const errorLog = join(options.dir, 'nginx.log');
  // as the container's command ends (NGINX_COMMAND): `nginx -e stderr -c <conf> -g 'daemon off;'`,
  // with this config rather than the one the kernel's IPv6 picks. In the pod master and workers
  // share one uid (101); a root master would switch its workers to nobody, which could not read
  // the certificate files the workers load per handshake — so as root, the workers stay root.
  const global = globalThis.process.getuid?.() === 0 ? 'daemon off; user root root;' : 'daemon off;';
  const process = startProcess('nginx', NGINX, ['-e', 'stderr', '-c', confFile, '-g', global], errorLog);
  await waitFor(`nginx on ${options.probe}`, () => tcpHttpAnswers(options.probe), 20_000, () => exitedMessage(process, errorLog));
  return { process, dir: options.dir, confFile, errorLog, workers: () => childPids(process.child.pid) };
}

/**
 * The pacing listener of an nginx started here: AUTH_RETRY_PORT on the host of its first
 * listen address. The fronts run side by side on loopback, each on an address of its own (all on
 * 8443), so each gets a pacing address of its own too; the pod's 127.0.0.1 would be one for all.
 */
export function authRetryAddressFor(listen: readonly string[] | undefined): string | undefined {
  return sameHostPort(listen?.[0], AUTH_RETRY_PORT, (address) => address);
}

/**
 * `what(host:port)` for the host of `address` ("host:port" or "[v6]:port"); undefined for a bare
 * port (every address: one such process at a time anyway) or no address. Processes started here
 * run side by side on loopback, each on an address of its own, so each port of one is on its host.
 */
function sameHostPort<T>(address: string | undefined, port: number, what: (address: string) => T): T | undefined {
  const host = address ? /^(\[[^\]]+\]|[^:]+):\d+$/.exec(address)?.[1] : undefined;
  return host ? what(`${host}:${port}`) : undefined;
}

/** Child process ids of pid (e.g. nginx workers), from /proc. */
export function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** CPU seconds (user + system) a process and its reaped children used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields from index 0 = state (field 3); utime 14, stime 15, cutime 16, cstime 17
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
    return ticks / clockTicks();
  } catch {
    return 0;
  }
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

/** True once anything answers HTTP(S) at url (any status; certificates not checked). */
async function tcpHttpAnswers(url: string): Promise<boolean> {
  const { request } = url.startsWith('https:') ? await import('node:https') : await import('node:http');
  return new Promise((resolve) => {
    const req = request(url, { timeout: 2000, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * docker_auth's reloads from its log, each as the time in ms from "Config ok, restarting server"
 * (just before it closes its listener and connections) to the next "Serving on" (listening again):
 * an upper bound of the time connections are refused.
 */
export function reloadGaps(logFile: string): number[] {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  const gaps: number[] = [];
  let restarting: number | undefined;
  for (const line of text.split('\n')) {
    const time = /^[IWEF]\d{4} (\d\d):(\d\d):(\d\d\.\d+)/.exec(line);
    if (!time) continue;
    const ms = (Number(time[1]) * 3600 + Number(time[2]) * 60 + Number(time[3])) * 1000;
    if (line.includes('Config ok, restarting server')) restarting = ms;
    else if (line.includes('Serving on') && restarting !== undefined) {
      gaps.push(ms - restarting);
      restarting = undefined;
    }
  }
  return gaps;
}
