// Entry point `node /app/dist/webhook.js`: the hono app served over TLS.
//
// - Certificate and key come from files mounted from the Secret the bootstrap Job maintains; they
//   are reloaded (without a restart) when the kubelet swaps the files, and re-checked periodically.
// - The Kubernetes client (@kubernetes/client-node, ~200 ms to load) is imported lazily: the
//   server listens without it and warms it up in the background, so neither cold start nor the
//   first admission pays for it.
// - HTTP/2 (HTTP/1.1 too, for probes and other clients): the API server then speaks HTTP/2 to us,
//   and a shutdown can say "no more requests on this connection" (GOAWAY), which HTTP/1.1 cannot.
// - SIGTERM: stop accepting connections, send GOAWAY on every HTTP/2 connection (the API server
//   sends its next admissions elsewhere, and retries any it had sent past the GOAWAY), let
//   in-flight admissions finish, exit. The Deployment's preStop sleep keeps the pod serving until
//   the Service has stopped sending it new connections.
import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from 'node:http2';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { serve } from '@hono/node-server';
import { errorMessage, logLine, type Logger } from '../functions/log-line.ts';
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { GROUP_VERSION, type OperatorConfig } from '../functions/types.ts';
import type { Kube } from '../cronjobs/kube.ts';
import { createApp } from './app.ts';
import { reconcileEnqueuer, type EnqueueResult } from './enqueue.ts';
import { webhookServerConfigFromEnv, type WebhookServerConfig } from './server-config.ts';

// One JSON line per event, written in batches: stdout writes are synchronous in Node on Linux (files
// and pipes), so under load every admission's line would cost a write syscall; the lines of one turn
// of the event loop go out in one write instead. Flushed at exit, so no line is lost.
let pendingLines: string[] = [];
function flushLog(): void {
  if (pendingLines.length === 0) return;
  const text = pendingLines.join('');
  pendingLines = [];
  process.stdout.write(text);
}
process.on('exit', flushLog);

const log: Logger = (level, msg, fields) => {
  if (pendingLines.length === 0) setImmediate(flushLog);
  pendingLines.push(`${logLine(new Date(), level, msg, fields)}\n`);
};

/** The client, connected on first use; a failed load is retried by the next caller. */
function lazyKube(): () => Promise<Kube & { isConflict: (error: unknown) => boolean }> {
  let kube: Promise<Kube & { isConflict: (error: unknown) => boolean }> | undefined;
  return () => {
    kube ??= import('../cronjobs/kube.ts').then((module) => ({ ...module.connectKube(), isConflict: module.isConflict }));
    kube.catch(() => (kube = undefined));
    return kube;
  };
}

function webhookDeps(config: OperatorConfig, kube: ReturnType<typeof lazyKube>, ready: () => boolean) {
  const createJob = async (job: object): Promise<'created' | 'exists'> => {
    const client = await kube();
    return client.create(job).then(() => 'created' as const, (error: unknown) => {
      if (client.isConflict(error)) return 'exists';
      throw error;
    });
  };
  const enqueue = reconcileEnqueuer({ config, createJob });
  const registryRef = (registry: RegistryKey) => ({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', ...registry });
  return {
    config,
    log,
    ready,
    enqueueReconcile: (registry: RegistryKey): Promise<EnqueueResult> => enqueue(registry),
    registryExists: async (registry: RegistryKey) => (await (await kube()).read(registryRef(registry))) !== undefined,
    listRegistries: async (namespace: string) =>
      (await (await kube()).list<{ metadata?: { name?: string } }>(GROUP_VERSION, 'ImageRegistry', namespace)).map((registry) => registry.metadata?.name ?? '').filter(Boolean),
  };
}

interface Tls {
  cert: Buffer;
  key: Buffer;
}

function readTls(settings: WebhookServerConfig): Tls {
  return { cert: readFileSync(settings.certFile), key: readFileSync(settings.keyFile) };
}

/** Swaps the server's certificate when the files changed; a half-written pair is retried later. */
function watchTls(server: Http2SecureServer, settings: WebhookServerConfig, loaded: Tls): () => void {
  let current = loaded;
  let timer: NodeJS.Timeout | undefined;
  const reload = () => {
    try {
      const next = readTls(settings);
      if (next.cert.equals(current.cert) && next.key.equals(current.key)) return;
      server.setSecureContext({ ...next, minVersion: 'TLSv1.2' });
      current = next;
      log('info', 'TLS certificate reloaded', { certFile: settings.certFile });
    } catch (error) {
      log('warn', 'TLS certificate not reloaded; keeping the current one', { error: errorMessage(error) });
    }
  };
  // the kubelet replaces a Secret volume's files by swapping a symlink in the directory
  const debounced = () => {
    clearTimeout(timer);
    timer = setTimeout(reload, 200);
  };
  const watchers: FSWatcher[] = [...new Set([dirname(settings.certFile), dirname(settings.keyFile)])].flatMap((dir) => {
    try {
      return [watch(dir, debounced).on('error', () => {})];
    } catch {
      return [];
    }
  });
  const interval = setInterval(reload, settings.reloadIntervalMs);
  interval.unref();
  return () => {
    clearInterval(interval);
    clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
  };
}

/** With allowHTTP1, Node serves HTTP/1.1 with http.Server's machinery: these are its settings, untyped on Http2SecureServer. */
type WebhookServer = Http2SecureServer & Pick<import('node:https').Server, 'requestTimeout' | 'headersTimeout' | 'keepAliveTimeout' | 'closeIdleConnections'>;

function main(): void {
  let settings: WebhookServerConfig;
  let config: OperatorConfig;
  let tls: Tls;
  try {
    settings = webhookServerConfigFromEnv(process.env);
    config = operatorConfigFromEnv(process.env);
    tls = readTls(settings);
  } catch (error) {
    log('error', 'webhook cannot start', { error: errorMessage(error) });
    process.exit(1);
  }
  const kube = lazyKube();
  // Ready (/readyz) once the client validation needs has loaded, so that no admission waits for
  // it; not ready once a shutdown began, so the kubelet's probe agrees with the Service.
  const state = { clientLoaded: false, shuttingDown: false };
  const app = createApp(webhookDeps(config, kube, () => state.clientLoaded && !state.shuttingDown));
  const server = serve(
    {
      fetch: app.fetch,
      port: settings.port,
      ...(settings.host ? { hostname: settings.host } : {}),
      createServer: createSecureServer,
      serverOptions: { ...tls, minVersion: 'TLSv1.2', allowHTTP1: true },
    },
    (info) => {
      log('info', 'webhook listening', { address: info.address, port: info.port, namespace: config.namespace, startupMs: Math.round(performance.now()) });
      // warm the client up off the request path
      const warmUp = () => kube().then(
        () => (state.clientLoaded = true),
        (error: unknown) => {
          log('warn', 'Kubernetes client not ready; retrying in 1 s', { error: errorMessage(error) });
          setTimeout(warmUp, 1_000).unref();
        },
      );
      setImmediate(warmUp);
    },
  ) as WebhookServer;
  // HTTP/1.1 connections (probes, other clients)
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  // An HTTP/1.1 client's idle connection closed by us just as it sends a request fails with EOF
  // (a POST is not retried); so the client always closes first, and only a shutdown closes idle ones.
  server.keepAliveTimeout = 100_000;
  server.on('error', (error) => {
    log('error', 'webhook server failed', { error: errorMessage(error) });
    process.exit(1);
  });
  // a client that fails the handshake (port scanner, wrong CA) is not our error
  server.on('tlsClientError', () => {});
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    // rare (the API server keeps one connection per pod) and tells which protocol it speaks
    log('info', 'HTTP/2 connection opened', { open: sessions.size + 1 });
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  const stopWatching = watchTls(server, settings, tls);

  const shutdown = (signal: string) => {
    log('info', 'webhook shutting down', { signal, http2Connections: sessions.size });
    state.shuttingDown = true;
    stopWatching();
    server.close(() => process.exit(0));
    // GOAWAY: requests already sent finish here, later ones go to a new connection (another pod)
    for (const session of sessions) session.close();
    server.closeIdleConnections();
    setTimeout(() => {
      for (const session of sessions) session.destroy();
      process.exit(0);
    }, settings.shutdownTimeoutMs).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main();
