// Entry point `node /app/dist/webhook.js`: the hono app served over TLS.
//
// - Certificate and key come from files mounted from the Secret the bootstrap Job maintains; they
//   are reloaded (without a restart) when the kubelet swaps the files, and re-checked periodically.
// - The Kubernetes client (@kubernetes/client-node, ~200 ms to load) is imported lazily: the
//   server listens without it and warms it up in the background, so neither cold start nor the
//   first admission pays for it.
// - SIGTERM (after the Deployment's preStop sleep, while the Service stopped sending us new
//   connections): stop accepting connections, answer every further request with
//   `Connection: close`, and exit once the API server has closed every connection — never close a
//   kept-alive one ourselves. The API server speaks HTTP/1.1 to webhooks (it turns HTTP/2 off so
//   that its requests spread over the pods), keeps idle connections for 90 s and does not retry an
//   admission: a connection we close just as it sends a request on it fails that admission with
//   `EOF`. After a `Connection: close` answer it does not reuse the connection; an idle one it
//   closes itself within 90 s. WEBHOOK_SHUTDOWN_TIMEOUT_SECONDS (95 in the Deployment) bounds it.
import { createServer, type Server } from 'node:https';
import { Server as NetServer } from 'node:net';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { serve } from '@hono/node-server';
import { errorMessage, logLine, type Logger } from '../functions/log-line.ts';
import { operatorConfigFromEnv } from '../functions/operator-config.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { GROUP_VERSION, type ImageSecret, type OperatorConfig } from '../functions/types.ts';
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
    listImagePullSecrets: async (namespace: string) => (await kube()).list<ImageSecret>(GROUP_VERSION, 'ImagePullSecret', namespace),
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
function watchTls(server: Server, settings: WebhookServerConfig, loaded: Tls): () => void {
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
      createServer,
      serverOptions: { ...tls, minVersion: 'TLSv1.2' },
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
  ) as Server;
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  // The API server's client keeps idle connections for 90 s: were ours to close them first (Node's
  // default is 5 s), an admission sent just as we close fails with EOF; so the client always closes first.
  server.keepAliveTimeout = 100_000;
  server.on('error', (error) => {
    log('error', 'webhook server failed', { error: errorMessage(error) });
    process.exit(1);
  });
  // a client that fails the handshake (port scanner, wrong CA) is not our error
  server.on('tlsClientError', () => {});
  // draining: the client closes the connection after this answer instead of sending another request on it
  server.prependListener('request', (_request, response) => {
    if (state.shuttingDown) response.setHeader('Connection', 'close');
  });
  const stopWatching = watchTls(server, settings, tls);

  const shutdown = (signal: string) => {
    log('info', 'webhook shutting down', { signal });
    state.shuttingDown = true;
    stopWatching();
    // net.Server's close, not http.Server's: that one also closes idle kept-alive connections,
    // the race described at the top. Exits when the last connection is gone.
    NetServer.prototype.close.call(server, () => {
      log('info', 'webhook drained: every connection closed');
      process.exit(0);
    });
    setTimeout(() => {
      log('warn', 'webhook shutdown timeout: closing the connections left', { timeoutSeconds: settings.shutdownTimeoutMs / 1000 });
      server.closeAllConnections();
      process.exit(0);
    }, settings.shutdownTimeoutMs).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main();
