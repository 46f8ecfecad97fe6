// A registry outside the cluster, as Docker Hub or an in-house Harbor is one, for the pull-through
// cache tests: the real `registry` binary (the same build the registry pods run) serving TLS under
// UPSTREAM_REGISTRY_HOST with a CA of its own, accounts in an htpasswd file (Basic auth, as a
// private upstream asks for), data in a directory. It listens where the cluster's CoreDNS says that
// name is (the root end of the node's veth); its JSON log tells what it served.
// The benchmark (test/bench/pull-through-cache.ts) runs one on a loopback address instead: `host`
// an IP address (the certificate then names it), another `port`, its own `name` and bcrypt cost.
import bcrypt from 'bcryptjs';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { UPSTREAM_REGISTRY_HOST } from './node/cluster-dns.ts';
import { issueTestCertificate } from './pki.ts';
import { delay, exitedMessage, startProcess, type ManagedProcess } from './processes.ts';

export interface UpstreamRegistry {
  host: string;
  /** https://<host> */
  url: string;
  caPem: string;
  /** the account its htpasswd file holds */
  username: string;
  password: string;
  logFile: string;
  /** a directory with ca.crt, for clients' --cert-dir */
  certDir: string;
  /** how often it answered GET of this blob (status 200) */
  blobGets(repository: string, digest: string): number;
  /** a new password for the account (the registry re-reads its htpasswd file when it changes) */
  setPassword(password: string): void;
  /** every request it logged, as method + uri */
  requests(): { method: string; uri: string; status: number }[];
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startUpstreamRegistry(options: {
  assetsDir: string;
  workDir: string;
  address: string;
  /** the name clients use (default UPSTREAM_REGISTRY_HOST); an IP address: the certificate names the address */
  host?: string;
  /** default 443 */
  port?: number;
  /** its directory under workDir and its process name (default upstream-registry) */
  name?: string;
  /** of the account's htpasswd hash (default 10) */
  bcryptCost?: number;
}): Promise<UpstreamRegistry> {
  const host = options.host ?? UPSTREAM_REGISTRY_HOST;
  const port = options.port ?? 443;
  const name = options.name ?? 'upstream-registry';
  const dir = join(options.workDir, name);
  mkdirSync(join(dir, 'data'), { recursive: true });
  mkdirSync(join(dir, 'certs'), { recursive: true });
  const ca = issueTestCertificate({ commonName: 'upstream test CA', isCa: true });
  const serving = issueTestCertificate({ commonName: host, ...(isIP(host) ? { ipAddresses: [host] } : { dnsNames: [host] }), usage: 'server', issuer: ca });
  writeFileSync(join(dir, 'tls.crt'), serving.certPem + ca.certPem);
  writeFileSync(join(dir, 'tls.key'), serving.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'certs', 'ca.crt'), ca.certPem);
  const username = 'mirror-bot';
  const writePassword = (secret: string) => writeFileSync(join(dir, 'htpasswd'), `${username}:${bcrypt.hashSync(secret, options.bcryptCost ?? 10)}\n`);
  const password = randomBytes(18).toString('base64url');
  writePassword(password);
  const config = {
    version: '0.1',
    log: { level: 'info', formatter: 'json', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: true } },
    http: { addr: `${options.address}:${port}`, secret: randomBytes(16).toString('hex'), tls: { certificate: join(dir, 'tls.crt'), key: join(dir, 'tls.key') } },
    auth: { htpasswd: { realm: 'upstream', path: join(dir, 'htpasswd') } },
  };
  writeFileSync(join(dir, 'config.yml'), dump(config));
  const logFile = join(dir, 'registry.log');
  let process: ManagedProcess | undefined;
  const start = async () => {
    process = startProcess(name, join(options.assetsDir, 'registry'), ['serve', join(dir, 'config.yml')], logFile, {
      env: { PATH: '/usr/bin:/bin', OTEL_TRACES_EXPORTER: 'none' },
    });
    const deadline = Date.now() + 15_000;
    while (!(await acceptsTls(options.address, port, host, ca.certPem))) {
      const exited = exitedMessage(process, logFile);
      if (exited || Date.now() > deadline) throw new Error(`the upstream registry did not start: ${exited ?? 'no TLS answer in 15 s'}`);
      await delay(100);
    }
  };
  await start();
  const requests = () => {
    if (!existsSync(logFile)) return [];
    return readFileSync(logFile, 'utf8').split('\n').flatMap((line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry['msg'] !== 'response completed') return [];
        return [{ method: String(entry['http.request.method']), uri: String(entry['http.request.uri']), status: Number(entry['http.response.status']) }];
      } catch {
        return [];
      }
    });
  };
  const upstream: UpstreamRegistry = {
    host: port === 443 ? host : `${host}:${port}`,
    url: `https://${host}${port === 443 ? '' : `:${port}`}`,
    caPem: ca.certPem,
    username,
    password,
    logFile,
    certDir: join(dir, 'certs'),
    requests,
    blobGets: (repository, digest) => requests().filter((r) => r.method === 'GET' && r.status === 200 && r.uri === `/v2/${repository}/blobs/${digest}`).length,
    stop: async () => {
      await process?.stop();
      process = undefined;
    },
    start,
    setPassword: (next) => {
      writePassword(next);
      upstream.password = next;
    },
  };
  return upstream;
}

function acceptsTls(address: string, port: number, host: string, caPem: string): Promise<boolean> {
  return new Promise((resolve) => {
    // no SNI for an IP address (node refuses one); the certificate is checked against it all the same
    const socket = connect({ host: address, port, ...(isIP(host) ? {} : { servername: host }), ca: caPem, timeout: 1_000 });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
