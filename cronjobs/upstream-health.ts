// Asks a pull-through cache's upstream for its API root (`/v2/`), from the reconcile Job, with
// the CA the cache trusts: the answer is the cache's UpstreamAvailable condition
// (functions/pull-through-cache.ts). No credentials are sent: 401 is an answer too.
import { request } from 'node:https';
import { request as plainRequest } from 'node:http';
import { rootCertificates } from 'node:tls';
import type { UpstreamAnswer } from '../functions/pull-through-cache.ts';

const TIMEOUT_MS = 10_000;

/** Never throws: no answer within TIMEOUT_MS is an error. */
export function probeUpstream(remoteURL: string, caPem: string | undefined): Promise<UpstreamAnswer> {
  const url = new URL('/v2/', remoteURL);
  const send = url.protocol === 'http:' ? plainRequest : request;
  return new Promise((resolve) => {
    const req = send(url, { method: 'GET', agent: false, timeout: TIMEOUT_MS, ...(caPem ? { ca: [caPem, ...rootCertificates] } : {}) }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (error) => resolve({ error: error.message }));
    req.end();
  });
}
