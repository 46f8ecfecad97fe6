// Load generator for the webhook benchmark, run as its own process (bundled to .mjs, started with
// IPC) so it never shares an event loop with the server it measures. Each run: `concurrency`
// workers send the same POST back to back over a keep-alive HTTPS agent with that many sockets;
// requests of the warm-up (new connections, TLS handshakes, JIT) are not counted.
import { Agent, request } from 'node:https';

export interface LoadRun {
  port: number;
  caPem: string;
  path: string;
  body: string;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** status and body of the last answer, to check the server answered what was expected */
  lastStatus: number;
  lastBody: string;
}

function post(agent: Agent, run: LoadRun, payload: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: run.port, path: run.path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': payload.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function nearestRank(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number;
}

export async function runLoad(run: LoadRun): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: run.concurrency, ca: run.caPem });
  const payload = Buffer.from(run.body);
  const started = performance.now();
  const measureFrom = started + run.warmupMs;
  const end = measureFrom + run.durationMs;
  const latencies: number[] = [];
  let errors = 0;
  let last = { status: 0, body: '' };
  const worker = async () => {
    while (performance.now() < end) {
      const sent = performance.now();
      try {
        last = await post(agent, run, payload);
        if (last.status !== 200) errors++;
      } catch {
        errors++;
      }
      const done = performance.now();
      if (sent >= measureFrom && done <= end) latencies.push(done - sent);
    }
  };
  await Promise.all(Array.from({ length: run.concurrency }, worker));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    rps: latencies.length / (run.durationMs / 1000),
    p50Ms: nearestRank(latencies, 50),
    p99Ms: nearestRank(latencies, 99),
    maxMs: latencies.at(-1) ?? NaN,
    lastStatus: last.status,
    lastBody: last.body,
  };
}

// as a child process: one run per message, answered with its result
if (process.send) {
  process.on('message', (message: LoadRun) => {
    void runLoad(message).then((result) => process.send?.(result));
  });
  process.on('disconnect', () => process.exit(0));
}
