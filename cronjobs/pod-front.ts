// One HTTPS request to one registry pod's nginx front, by the pod's IP, TLS verified with the
// registry's CA under its hostname — how the Jobs ask each pod (credentials, storage health, the
// write freeze) instead of going through the load balancer, which would answer for one pod only.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { NGINX_PORT } from '../functions/nginx-config.ts';

export interface PodFront {
  /** the pod's IP (or any address that reaches its nginx) */
  host: string;
  /** default NGINX_PORT */
  port?: number;
  /** TLS server name and Host header: the registry's hostname */
  hostname: string;
  caPem: string;
}

export interface FrontAnswer {
  /** 0 when no answer came; `body` then says why */
  status: number;
  body: string;
}

/** Never throws: a connection failure or a timeout (5 s) is status 0. */
export function podFrontRequest(front: PodFront, options: { method?: string; path: string; headers?: Record<string, string | number> }): Promise<FrontAnswer> {
  return answerOf((onResponse) => request({
    host: front.host, port: front.port ?? NGINX_PORT,
    // a name, not an address, is what TLS may carry as server name (tests reach fronts by IP)
    ...(isIP(front.hostname) ? {} : { servername: front.hostname }),
    ca: [front.caPem, ...rootCertificates],
    method: options.method ?? 'GET', path: options.path, headers: { host: front.hostname, ...options.headers }, agent: false, timeout: 5_000,
  }, onResponse));
}

/** A GET of a pod's plain-HTTP port (its metrics port). Never throws, as podFrontRequest. */
export function podHttpGet(host: string, port: number, path: string): Promise<FrontAnswer> {
  return answerOf((onResponse) => httpRequest({ host, port, path, agent: false, timeout: 2_000 }, onResponse));
}

/** The request `send` makes, answered: its status and body, or status 0 and why none came. */
function answerOf(send: (onResponse: (res: IncomingMessage) => void) => ClientRequest): Promise<FrontAnswer> {
  return new Promise((resolve) => {
    const req = send((res) => {
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
