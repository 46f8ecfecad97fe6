// Confirms a write freeze (functions/maintenance.ts) on every registry pod the way a client sees
// it: a write to FREEZE_PROBE_PATH through the pod's nginx, by the pod's IP, TLS verified for the
// registry's hostname. Frozen: nginx answers 503 with this freeze's id. Lifted: the write reaches
// the registry, which refuses it (no token; and no repository can have the probe's name).
import { request } from 'node:https';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { FREEZE_PROBE_PATH, probeVerdict } from '../functions/maintenance.ts';

export interface FreezeTarget {
  /** the pod's IP (or any host:port that reaches its nginx) */
  host: string;
  port: number;
  /** TLS server name and Host header: the registry's hostname */
  hostname: string;
  caPem: string;
}

export type FreezeState = 'frozen' | 'open';

/**
 * Polls every target until each answers as `want` (for the freeze `freezeId`), or the timeout
 * passes; returns the targets that did not, with their last answer.
 */
export async function awaitFreezeState(targets: readonly FreezeTarget[], want: FreezeState, freezeId: string, options: { timeoutMs: number; pollMs?: number }): Promise<{ target: FreezeTarget; last: string }[]> {
  const deadline = Date.now() + options.timeoutMs;
  let pending = targets.map((target) => ({ target, last: 'not asked yet' }));
  for (;;) {
    const answers = await Promise.all(pending.map(async ({ target }) => ({ target, answer: await probe(target) })));
    pending = answers
      .filter(({ answer }) => probeVerdict(answer, freezeId) !== want)
      .map(({ target, answer }) => ({ target, last: answer.status ? `HTTP ${answer.status} ${answer.body.slice(0, 200)}` : `no answer (${answer.body})` }));
    if (pending.length === 0 || Date.now() > deadline) return pending;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 250));
  }
}

function probe(target: FreezeTarget): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({
      host: target.host, port: target.port, ...(isIP(target.hostname) ? {} : { servername: target.hostname }), ca: [target.caPem, ...rootCertificates],
      method: 'POST', path: FREEZE_PROBE_PATH, headers: { host: target.hostname, 'content-length': 0 }, agent: false, timeout: 5_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (error) => resolve({ status: 0, body: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: 0, body: error.message }));
    req.end();
  });
}
