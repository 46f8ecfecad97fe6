// versitygw (test/binaries/build.sh) as the S3-compatible object storage of bucket registries'
// tests: one process, its buckets directories under dataDir (the posix backend), one root key
// pair. For the registry pods it listens on the root end of the real node's veth
// (NodeNetwork.hostAddress), which the pods reach by the node's routes, as a cluster's pods reach a
// cloud's object storage; for processes on the host alone, on a loopback address of its own.
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { delay, exitedMessage, freePort, startProcess, type ManagedProcess } from './processes.ts';

export interface S3Server {
  /** http://<address>:<port> */
  endpoint: string;
  address: string;
  port: number;
  accessKey: string;
  secretKey: string;
  /** the posix backend's root: one directory per bucket */
  dataDir: string;
  logFile: string;
  createBucket(name: string): void;
  /** stops the process (the endpoint refuses connections) */
  stop(): Promise<void>;
  /** starts it again on the same address, data and keys */
  start(): Promise<void>;
  /** stops it for good */
  close(): Promise<void>;
}

/** Where and with which keys a server listens; kept, a later start serves the same data the same way. */
export interface S3Identity {
  address: string;
  port: number;
  accessKey: string;
  secretKey: string;
}

/** `address`: where to listen instead of a loopback address of its own, e.g. the real node's NodeNetwork.hostAddress. */
export async function startS3Server(options: { assetsDir: string; workDir: string; address?: string; identity?: S3Identity }): Promise<S3Server> {
  // 127.0.<10–99>.x: clear of the pod IPs, load balancers and ClusterIPs of the test cluster
  const address = options.identity?.address ?? options.address ?? `127.0.${randomInt(10, 100)}.${randomInt(2, 250)}`;
  const port = options.identity?.port ?? (await freePort(address));
  const dataDir = join(options.workDir, 's3-data');
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(options.workDir, 'versitygw.log');
  const accessKey = options.identity?.accessKey ?? `AK${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretKey = options.identity?.secretKey ?? randomBytes(24).toString('base64url');
  let process: ManagedProcess | undefined;
  const start = async () => {
    process = startProcess('versitygw', join(options.assetsDir, 'versitygw'), ['--port', `${address}:${port}`, '--quiet', 'posix', dataDir], logFile, {
      env: { PATH: '/usr/bin:/bin', ROOT_ACCESS_KEY_ID: accessKey, ROOT_SECRET_ACCESS_KEY: secretKey },
    });
    const deadline = Date.now() + 10_000;
    while (!(await accepts(address, port))) {
      const exited = exitedMessage(process, logFile);
      if (exited || Date.now() > deadline) throw new Error(`versitygw did not start: ${exited ?? 'no answer in 10 s'}`);
      await delay(50);
    }
  };
  await start();
  return {
    endpoint: `http://${address}:${port}`, address, port, accessKey, secretKey, dataDir, logFile,
    createBucket: (name) => mkdirSync(join(dataDir, name)),
    stop: async () => {
      await process?.stop();
      process = undefined;
    },
    start,
    close: async () => {
      await process?.stop();
    },
  };
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}
