// HTTP(S) clients for the nginx front's process tests and benchmarks: one request with its status
// or connection error, and a closed-loop load of N concurrent clients that counts every answer.
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { performance } from 'node:perf_hooks';
import type { PeerCertificate } from 'node:tls';

export interface Answer {
  /** HTTP status, or undefined when the connection failed */
  status?: number;
  /** connection-level error code (ECONNRESET, ECONNREFUSED, …) */
  error?: string;
  ms: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** the server certificate's serial number (TLS only) */
  serial?: string;
}

export interface RequestOptions {
  /** CA certificate (PEM) for https URLs */
  ca?: string;
  /** keep-alive agent, or false for a new connection per request */
  agent?: HttpAgent | false;
  headers?: Record<string, string>;
  method?: string;
  timeoutMs?: number;
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** One request; never throws: connection failures come back as `error`. */
export function fetchAnswer(url: string, options: RequestOptions = {}): Promise<Answer> {
  const started = performance.now();
  const https = url.startsWith('https:');
  return new Promise((resolve) => {
    let settled = false;
    const done = (answer: Omit<Answer, 'ms'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...answer, ms: performance.now() - started });
    };
    const requestOptions = {
      method: options.method ?? 'GET',
      headers: options.headers ?? {},
      agent: options.agent ?? false,
      timeout: options.timeoutMs ?? 30_000,
      ...(https ? { ca: options.ca } : {}),
    };
    const req = (https ? httpsRequest : httpRequest)(url, requestOptions, (res) => {
      const chunks: Buffer[] = [];
      const socket = res.socket as { getPeerCertificate?: () => PeerCertificate };
      const serial = socket.getPeerCertificate?.().serialNumber;
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => done({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers, ...(serial ? { serial } : {}) }));
      res.on('error', (error: NodeJS.ErrnoException) => done({ error: error.code ?? error.message, body: '', headers: {} }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => done({ error: error.code ?? error.message, body: '', headers: {} }));
    req.end();
  });
}

export interface LoadResult {
  /** answers by status ("200", "401", …) and connection errors by code ("ECONNRESET", …) */
  counts: Record<string, number>;
  latenciesMs: number[];
  durationMs: number;
  /** a few unexpected answers, for the failure message */
  samples: string[];
}

/**
 * `clients` concurrent closed-loop clients, each sending its next request when the previous one
 * answered, until stop() resolves. `request(i, n)` makes client i's n-th request.
 */
export async function closedLoop(clients: number, request: (client: number, n: number) => Promise<Answer>, until: Promise<void>, expected: (answer: Answer) => boolean = () => true): Promise<LoadResult> {
  let stopped = false;
  void until.then(() => (stopped = true));
  const counts: Record<string, number> = {};
  const latenciesMs: number[] = [];
  const samples: string[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let n = 0; !stopped; n++) {
        const answer = await request(client, n);
        const key = answer.error ?? String(answer.status);
        counts[key] = (counts[key] ?? 0) + 1;
        latenciesMs.push(answer.ms);
        if (!expected(answer) && samples.length < 5) samples.push(`${key} ${answer.body.slice(0, 200)}`);
      }
    }),
  );
  return { counts, latenciesMs, durationMs: performance.now() - started, samples };
}

export function keepAliveAgent(https: boolean): HttpAgent {
  return https ? new HttpsAgent({ keepAlive: true, maxSockets: 1 }) : new HttpAgent({ keepAlive: true, maxSockets: 1 });
}
