// The kubelet stand-in's TCP forwarders, with real sockets on loopback and no control plane: the
// LoadBalancer and ClusterIP proxy (service-proxy.ts, given a fake API with one Service and one
// ready pod; a ClusterIP also as a pod dials it, through its bridge), the pod-IP forwarder (pod-network.ts's forward(), TCP to a Unix socket) and the pod's bridge
// (BRIDGE_SCRIPT, Unix socket to 127.0.0.1:<port>, run here outside a namespace), each alone and
// chained the way a pull through a LoadBalancer goes. Every byte an end sends must reach the other
// end, half-closes included, and closing either end must close the other.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { connect, createServer, type NetConnectOpts, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeApi } from '../support/kube-api.ts';
import { BRIDGE_SCRIPT, forward } from '../support/pod-network.ts';
import { freePort, installExitHandlers, startProcess, waitFor } from '../support/processes.ts';
import { startServiceProxy } from '../support/service-proxy.ts';

const LB_ADDRESS = '127.211.0.1';
const POD_IP = '127.211.1.1';
const CLUSTER_IP = '127.211.3.1';
/** ClusterIP as a pod in its own network namespace dials it (its bridge listens there; here on the host) */
const CLUSTER_IP_IN_POD = '127.211.2.1';
const BODY = randomBytes(4 * 1024 * 1024);
/** Body sizes of the connections of a test: whether bytes are still queued for the client when the FIN comes depends on how the last ones fall. */
const SIZES = Array.from({ length: 40 }, (_, i) => 96 * 1024 + i * 28_687);
const request = (size: number) => `GET /v2/blob/${size} HTTP/1.1\r\nConnection: close\r\n\r\n`;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

installExitHandlers();
const workDir = mkdtempSync(join(tmpdir(), 'iro-forwarders-'));
const servicesDir = join(workDir, 'services');
test.after(() => rmSync(workDir, { recursive: true, force: true }));

type Behaviour = 'respond-then-close' | 'respond-after-half-close' | 'stream-until-closed';

/** The far end (nginx's part): allowHalfOpen, so it sees a client's half-close as a half-close. */
async function upstream(behaviour: Behaviour, port: number): Promise<{ closed: Promise<void>; stop(): Promise<void> }> {
  let markClosed = () => undefined as void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined).on('close', markClosed);
    let request = '';
    let body = BODY;
    socket.on('data', (chunk: Buffer) => {
      request += chunk.toString('latin1');
      if (!request.endsWith('\r\n\r\n')) return;
      body = BODY.subarray(0, Number(/\/blob\/(\d+)/.exec(request)?.[1]));
      if (behaviour === 'respond-then-close') {
        // as nginx answers `Connection: close`: the body in the pieces its writes reach a forwarder in, then the FIN
        let sent = 0;
        const next = () => {
          if (sent >= body.length) return socket.end();
          socket.write(body.subarray(sent, (sent += 4096)));
          setImmediate(next);
        };
        next();
      }
      if (behaviour === 'stream-until-closed') {
        const more = () => {
          while (!socket.destroyed && socket.write(BODY.subarray(0, 64 * 1024)));
        };
        socket.on('drain', more);
        more();
      }
    });
    socket.on('end', () => {
      if (behaviour === 'respond-after-half-close') socket.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { closed, stop: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

interface Received {
  bytes: number;
  sha256: string;
  ended: boolean;
  error?: string;
}

/** A client that reads its answer only 50 ms after sending the request, so that the forwarders have it queued. */
function slowClient(entry: NetConnectOpts, size: number, options: { halfClose?: boolean; abortAfterFirstChunk?: boolean } = {}): Promise<Received> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    const result: Received = { bytes: 0, sha256: '', ended: false };
    const socket: Socket = connect({ ...entry, allowHalfOpen: true }, () => {
      socket.write(request(size));
      if (options.halfClose) socket.end();
      socket.pause();
      setTimeout(() => socket.resume(), 50);
    });
    socket.on('data', (chunk: Buffer) => {
      result.bytes += chunk.length;
      hash.update(chunk);
      if (options.abortAfterFirstChunk) socket.destroy();
    });
    socket.on('end', () => {
      result.ended = true;
      if (!socket.writableEnded) socket.end();
    });
    socket.on('error', (error) => (result.error = error.message));
    socket.on('close', () => resolve({ ...result, sha256: hash.digest('hex') }));
  });
}

interface Chain {
  name: string;
  /** starts the forwarder(s) in front of an upstream on 127.0.0.1:upstreamPort; resolves with where clients connect */
  start(upstreamPort: number): Promise<{ entry: NetConnectOpts; stop(): Promise<void> }>;
}

/** The service proxy with a fake API of one Service (a LoadBalancer, or a ClusterIP one) and one ready pod. */
async function serviceProxyTo(podIp: string, targetPort: number, type: 'LoadBalancer' | 'ClusterIP' = 'LoadBalancer'): Promise<{ entry: NetConnectOpts; stop(): Promise<void> }> {
  const address = type === 'LoadBalancer' ? LB_ADDRESS : CLUSTER_IP;
  const port = await freePort(address);
  const svc = { metadata: { name: 'registry', namespace: 'test', uid: 'uid-1' }, spec: { type, ...(type === 'ClusterIP' ? { clusterIP: CLUSTER_IP } : {}), selector: { app: 'registry' }, ports: [{ port, targetPort }] } };
  const pod = { metadata: { name: 'registry-0', namespace: 'test' }, spec: { containers: [] }, status: { podIP: podIp, conditions: [{ type: 'Ready', status: 'True' }] } };
  let patched = false;
  const api = {
    request: async (method: string, path: string) => {
      if (method === 'GET' && path === '/api/v1/services') return { status: 200, body: { items: [svc] } };
      if (method === 'GET' && path.startsWith('/api/v1/namespaces/test/pods?')) return { status: 200, body: { items: [pod] } };
      if (method === 'PATCH') patched = true;
      return { status: 200, body: {} };
    },
  } as unknown as KubeApi;
  const hostsFile = join(workDir, 'hosts');
  rmSync(hostsFile, { force: true });
  const proxy = startServiceProxy({ api, hostsFile, socketDir: servicesDir, loadBalancerAddress: () => LB_ADDRESS, apiServer: { host: '127.0.0.1', port: 1 }, log: (line) => console.log(line) });
  if (type === 'LoadBalancer') await waitFor('the LoadBalancer address', async () => patched, 5_000);
  else await waitFor('the ClusterIP in the hosts file', async () => existsSync(hostsFile) && readFileSync(hostsFile, 'utf8').includes(`${CLUSTER_IP}\tregistry.test.svc `), 5_000);
  return { entry: { host: address, port }, stop: proxy.stop };
}

async function podIpForwarderTo(socketPath: string): Promise<{ entry: NetConnectOpts; stop(): Promise<void> }> {
  const port = await freePort(POD_IP);
  const forwarder = await forward(POD_IP, port, socketPath);
  return { entry: { host: POD_IP, port }, stop: forwarder.close };
}

/**
 * The services directory the bridges read: `<CLUSTER_IP_IN_POD>:<port>.sock` links to the service
 * proxy's socket of CLUSTER_IP (the proxy's own host listener has that address and port taken here,
 * where a pod's namespace would have it free).
 */
const podServicesDir = join(workDir, 'pod-services');
let bridges = 0;
async function bridgeTo(upstreamPort: number): Promise<{ entry: NetConnectOpts; socketPath: string; stop(): Promise<void> }> {
  const dir = join(workDir, `bridge-${++bridges}`);
  const socketPath = join(dir, `${upstreamPort}.sock`);
  mkdirSync(dir);
  const bridge = startProcess('bridge', process.execPath, ['-e', BRIDGE_SCRIPT, dir, podServicesDir, String(upstreamPort)], `${dir}.log`);
  await waitFor('the bridge socket', async () => existsSync(socketPath), 5_000);
  return { entry: { path: socketPath }, socketPath, stop: () => bridge.stop(1_000) };
}

const chains: Chain[] = [
  { name: 'LoadBalancer proxy', start: (upstreamPort) => serviceProxyTo('127.0.0.1', upstreamPort) },
  { name: 'ClusterIP proxy', start: (upstreamPort) => serviceProxyTo('127.0.0.1', upstreamPort, 'ClusterIP') },
  {
    name: 'a ClusterIP dialled inside a pod (bridge → the proxy\'s Unix socket → upstream)',
    start: async (upstreamPort) => {
      const service = await serviceProxyTo('127.0.0.1', upstreamPort, 'ClusterIP');
      const { port } = service.entry as { port: number };
      mkdirSync(podServicesDir, { recursive: true });
      const link = join(podServicesDir, `${CLUSTER_IP_IN_POD}:${port}.sock`);
      symlinkSync(join(servicesDir, `${CLUSTER_IP}:${port}.sock`), link);
      const bridge = await bridgeTo(1);
      await waitFor('the bridge listening on the ClusterIP', async () => listening(CLUSTER_IP_IN_POD, port), 5_000);
      return { entry: { host: CLUSTER_IP_IN_POD, port }, stop: async () => { await bridge.stop(); rmSync(link); await service.stop(); } };
    },
  },
  {
    name: 'pod-IP forwarder',
    start: async (upstreamPort) => {
      // forward() connects to a Unix socket: one that relays to the TCP upstream in this process
      const path = join(workDir, `relay-${upstreamPort}.sock`);
      const relay = createServer({ allowHalfOpen: true }, (c) => {
        const u = connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen: true });
        c.pipe(u).pipe(c); // this relay is not under test: pipe() already ends each side on the other's end
        c.on('error', () => u.destroy()).on('close', () => u.destroy());
        u.on('error', () => c.destroy());
      });
      await new Promise<void>((resolve) => relay.listen(path, resolve));
      const forwarder = await podIpForwarderTo(path);
      return { entry: forwarder.entry, stop: async () => { await forwarder.stop(); await new Promise((r) => relay.close(r)); } };
    },
  },
  { name: 'pod bridge', start: bridgeTo },
  {
    name: 'LoadBalancer → pod IP → bridge (a pull through the stand-in)',
    start: async (upstreamPort) => {
      const bridge = await bridgeTo(upstreamPort);
      const pod = await podIpForwarderTo(bridge.socketPath);
      const lb = await serviceProxyTo(POD_IP, (pod.entry as { port: number }).port);
      return { entry: lb.entry, stop: async () => { await lb.stop(); await pod.stop(); await bridge.stop(); } };
    },
  },
];

/** Whether something listens on host:port here (/proc/net/tcp): a probe connection would reach the upstream and stay half-open there. */
function listening(host: string, port: number): boolean {
  const address = `${host.split('.').reverse().map((octet) => Number(octet).toString(16).padStart(2, '0')).join('')}:${port.toString(16).padStart(4, '0')}`.toUpperCase();
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').some((line) => {
    const [, local, , state] = line.trim().split(/\s+/);
    return local === address && state === '0A';
  });
}

async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function scenario(chain: Chain, behaviour: Behaviour, run: (entry: NetConnectOpts, far: Awaited<ReturnType<typeof upstream>>) => Promise<void>): Promise<void> {
  const upstreamPort = await freePort();
  const far = await upstream(behaviour, upstreamPort);
  const forwarder = await chain.start(upstreamPort);
  try {
    await run(forwarder.entry, far);
  } finally {
    await forwarder.stop();
    await far.stop();
  }
}

/** What arrived short or not at all, one line per connection. */
async function shortAnswers(entry: NetConnectOpts, options: { halfClose?: boolean } = {}): Promise<string[]> {
  const short: string[] = [];
  for (const size of SIZES) {
    const received = await within(20_000, `the ${size}-byte answer`, slowClient(entry, size, options));
    const whole = received.bytes === size && received.sha256 === sha256(BODY.subarray(0, size)) && received.ended && !received.error;
    if (!whole) short.push(`${size} bytes sent, ${received.bytes} arrived${received.ended ? ', then FIN' : ''}${received.error ? `, ${received.error}` : ''}`);
  }
  return short;
}

for (const chain of chains) {
  test(`${chain.name}: an answer the upstream writes and then closes on arrives whole, then the connection closes`, () =>
    scenario(chain, 'respond-then-close', async (entry) => {
      const short = await shortAnswers(entry);
      assert.equal(short, [], `${short.length} of ${SIZES.length} connections lost bytes:\n${short.join('\n')}`);
    }));

  test(`${chain.name}: a client that half-closes after its request still gets the whole answer`, () =>
    scenario(chain, 'respond-after-half-close', async (entry) => {
      const short = await shortAnswers(entry, { halfClose: true });
      assert.equal(short, [], `${short.length} of ${SIZES.length} connections lost bytes:\n${short.join('\n')}`);
    }));

  test(`${chain.name}: a client that closes while data is in flight closes the upstream connection`, () =>
    scenario(chain, 'stream-until-closed', async (entry, far) => {
      const received = await within(10_000, 'the client', slowClient(entry, BODY.length, { abortAfterFirstChunk: true }));
      assert.ok(received.bytes > 0);
      await within(5_000, 'the upstream connection closing', far.closed);
    }));
}

test.run();
