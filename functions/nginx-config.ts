// nginx.conf for the registry pod: the TLS front (/v2/ → registry, /auth/token → docker_auth) and a
// plain-HTTP metrics port (GET /metrics → the registry's debug server).
// Written for an unprivileged nginx on a read-only root file system: everything it writes is in /tmp.
// Works with the deployed nginx:1.30.0-alpine and the tests' Debian nginx-light 1.22: stock modules
// only (core, ssl, proxy, map, limit_req, auth_request).
import { DEFAULT_AUTH_ADDRESS, REAL_IP_HEADER } from './docker-auth-config.ts';
import { MAINTENANCE_DIR, nginxFreezeLines, nginxFreezeSlotMap, nginxMaintenanceLocation } from './maintenance.ts';
import { DEFAULT_REGISTRY_ADDRESS, DEFAULT_REGISTRY_METRICS_ADDRESS, REGISTRY_METRICS_PATH } from './registry-config.ts';

export const NGINX_CONFIG_PATH = '/etc/nginx/nginx.conf';
/** The same config listening on IPv4 only, for a kernel without IPv6 (see NGINX_COMMAND). */
export const NGINX_IPV4_CONFIG_PATH = '/etc/nginx/nginx-ipv4.conf';
/** Their keys in the `<r>-nginx` ConfigMap (nginxConfigFiles). */
export const NGINX_CONFIG_FILE = 'nginx.conf';
export const NGINX_IPV4_CONFIG_FILE = 'nginx-ipv4.conf';
export const NGINX_TLS_DIR = '/etc/nginx/tls';
export const NGINX_PORT = 8443;
/**
 * Both stacks, as two sockets (`[::]` is IPv6-only in nginx by default): on an IPv6-only or
 * IPv6-first cluster the pod IP the kubelet probes and the Service forwards to is an IPv6 address,
 * which `listen 8443` (0.0.0.0) never receives.
 */
export const NGINX_DUAL_STACK_LISTEN: readonly string[] = [String(NGINX_PORT), `[::]:${NGINX_PORT}`];
/** For a kernel booted with ipv6.disable=1: it has no AF_INET6, and nginx refuses to start on `[::]`. */
export const NGINX_IPV4_LISTEN: readonly string[] = [String(NGINX_PORT)];
/**
 * The pod's metrics port (named `metrics`): plain HTTP, `GET /metrics` passed on to the registry's
 * debug server and nothing else — no credentials, no image data, no write. What Prometheus scrapes
 * (kustomize/monitoring's PodMonitor) and what garbage collection reads the writes in flight from.
 */
export const METRICS_PORT = 5080;
export const METRICS_DUAL_STACK_LISTEN: readonly string[] = [String(METRICS_PORT), `[::]:${METRICS_PORT}`];
export const METRICS_IPV4_LISTEN: readonly string[] = [String(METRICS_PORT)];
/**
 * A file that exists exactly when the kernel has IPv6 (the check of the nginx image's own
 * 10-listen-on-ipv6-by-default.sh).
 */
export const KERNEL_IPV6_FILE = '/proc/net/if_inet6';
/**
 * The nginx container's command. Which stacks nginx can listen on depends on the node's kernel,
 * which no Job knows when it writes the config (the pod may run on any node), so the choice is made
 * at start: the ConfigMap carries two complete configs, and this picks one by KERNEL_IPV6_FILE.
 * A file choice rather than an `include` of a listen snippet copied into /tmp: nothing is written,
 * and each file is a whole config that `nginx -t` can check alone. `exec` leaves nginx as PID 1,
 * so the stop signal (SIGQUIT, the image's STOPSIGNAL) and SIGTERM reach it, as they did when the
 * container ran nginx directly. Not the image's entrypoint: its scripts edit files on the read-only
 * root. Needs only a POSIX sh (busybox in the alpine image). The paths are arguments, not part of
 * the script, so a test can run the same script with its own files.
 */
export const NGINX_START_SCRIPT = [
  'if [ -f "$1" ]; then conf="$2"; else conf="$3";',
  `printf '{"level":"warn","msg":"the kernel has no IPv6 (%s is missing): nginx listens on IPv4 only","config":"%s"}\\n' "$1" "$3" >&2; fi;`,
  `exec nginx -e stderr -c "$conf" -g 'daemon off;'`,
].join(' ');
export const NGINX_COMMAND: readonly string[] = ['sh', '-c', NGINX_START_SCRIPT, 'nginx-start', KERNEL_IPV6_FILE, NGINX_CONFIG_PATH, NGINX_IPV4_CONFIG_PATH];
/**
 * The pacing server of token retries (see AUTH_RETRIES) listens here, on the pod's loopback. TCP,
 * not a unix socket in /tmp: /tmp is an emptyDir that outlives a container restart, and after a
 * SIGKILL (an OOM kill, a liveness failure past its grace period) the socket file stays behind;
 * the restarted nginx then fails `bind() … (98: Address already in use)` and exits, a crash loop
 * until the pod is deleted. A TCP port is released with the process (nginx binds with
 * SO_REUSEADDR). The port is used by nothing else in the pod: nginx 8443 and METRICS_PORT, the
 * registry 5000 (DEFAULT_REGISTRY_ADDRESS) and its debug server 5002, docker_auth 5001
 * (DEFAULT_AUTH_ADDRESS). Loopback only: nothing outside the pod reaches it.
 */
export const AUTH_RETRY_PORT = 8081;
export const AUTH_RETRY_ADDRESS = `127.0.0.1:${AUTH_RETRY_PORT}`;
/** Paths nginx serves for the kubelet's probes (see registry-objects.ts). */
export const HEALTH_PATH = '/health';
export const REGISTRY_HEALTH_PATH = '/health/registry';
export const AUTH_HEALTH_PATH = '/health/auth';

/**
 * /v2/ responses are read from the registry in pieces of this size, and each piece is written to
 * the client as it came (proxy_buffering off). nginx's default, 4 KiB, made every piece its own TLS
 * record: ~132,000 writes per 512 MiB pull, pulls at 84.6 MB/s against 117.4 MB/s from the registry
 * serving TLS itself. 64 KiB fills four 16 KiB records per read (TLS's largest): pulls at 0.95× of
 * the registry's own TLS and half the nginx CPU per GiB (test/bench/RESULTS.md, section 6). It is
 * allocated once per /v2/ request: 1,000 concurrent pulls hold 64 MiB of the container's 128Mi.
 */
export const V2_PROXY_BUFFER_SIZE = '64k';
/**
 * Uploads are read from the client in pieces of this size and passed on at once (never to disk:
 * proxy_request_buffering off). The default, 16 KiB, costs ~15 % more nginx CPU per GiB pushed;
 * push throughput did not change with any size tried (16k–512k): on 2 shared cores it is bound by the
 * CPU skopeo, nginx and the registry share (RESULTS.md, section 6). Allocated once per /v2/ request
 * with a body, like V2_PROXY_BUFFER_SIZE.
 */
export const V2_CLIENT_BODY_BUFFER_SIZE = '64k';
/**
 * docker_auth 1.14 reloads its config (accounts rotate, CRs change) by closing its listener and
 * every open connection, then listening again: for 0.1–130 ms (measured on 2 shared cores, most
 * under 10 ms; RESULTS.md section 7) connections are refused or reset. A token request that meets
 * that gap is retried up to AUTH_RETRIES times, the first at once and each further one
 * AUTH_RETRY_DELAY_MS later, so the retries span ~0.9 s: 7× the longest gap measured. When
 * docker_auth is down for longer (crashed, not reloading), the client gets nginx's 502 after that.
 */
export const AUTH_RETRIES = 10;
export const AUTH_RETRY_DELAY_MS = 100;

export interface NginxConfigInput {
  /** `listen` addresses, default NGINX_DUAL_STACK_LISTEN; e.g. ["127.0.0.2:443"] for a test on loopback */
  listen?: readonly string[];
  /** `listen` addresses of the metrics port, default METRICS_DUAL_STACK_LISTEN */
  metricsListen?: readonly string[];
  registryAddress?: string;
  /** the registry's debug server, default DEFAULT_REGISTRY_METRICS_ADDRESS */
  registryMetricsAddress?: string;
  authAddress?: string;
  tlsCertPath?: string;
  tlsKeyPath?: string;
  /** directory for pid file and temp files; must be writable */
  tmpDir?: string;
  /**
   * host:port of the pacing server of token retries, default AUTH_RETRY_ADDRESS; only tests
   * running several nginx on one machine change it (each needs its own)
   */
  authRetryAddress?: string;
  workerProcesses?: number;
  /**
   * Access log target, default /dev/stdout (a pipe in a container). Opening /dev/stdout fails with
   * ENXIO when stdout is a socket (Node's default child stdio); tests may pass a file or "off".
   */
  accessLog?: string;
  /** where the maintenance ConfigMap is mounted (functions/maintenance.ts); default MAINTENANCE_DIR */
  maintenanceDir?: string;
  /** a pull-through cache: the answer to every /v2/ request but GET and HEAD (pull-through-cache.ts pushRefusal) */
  pushRefusal?: { status: number; body: string };
}

/**
 * The `<r>-nginx` ConfigMap's files: NGINX_CONFIG_FILE listening on both stacks and
 * NGINX_IPV4_CONFIG_FILE on IPv4 only, otherwise the same (NGINX_COMMAND starts one of them).
 */
export function nginxConfigFiles(input: Omit<NginxConfigInput, 'listen' | 'metricsListen'> = {}): Record<string, string> {
  return {
    [NGINX_CONFIG_FILE]: nginxConfig({ ...input, listen: NGINX_DUAL_STACK_LISTEN, metricsListen: METRICS_DUAL_STACK_LISTEN }),
    [NGINX_IPV4_CONFIG_FILE]: nginxConfig({ ...input, listen: NGINX_IPV4_LISTEN, metricsListen: METRICS_IPV4_LISTEN }),
  };
}

/** The full `nginx.conf` text. */
export function nginxConfig(input: NginxConfigInput = {}): string {
  const listen = input.listen ?? NGINX_DUAL_STACK_LISTEN;
  const metricsListen = input.metricsListen ?? METRICS_DUAL_STACK_LISTEN;
  const registryMetrics = input.registryMetricsAddress ?? DEFAULT_REGISTRY_METRICS_ADDRESS;
  if (listen.length === 0 || metricsListen.length === 0) throw new Error('nginx needs at least one listen address for each server');
  const tmp = (input.tmpDir ?? '/tmp').replace(/\/+$/, '');
  const cert = input.tlsCertPath ?? `${NGINX_TLS_DIR}/tls.crt`;
  const key = input.tlsKeyPath ?? `${NGINX_TLS_DIR}/tls.key`;
  const accessLog = input.accessLog ?? '/dev/stdout';
  const maintenanceDir = (input.maintenanceDir ?? MAINTENANCE_DIR).replace(/\/+$/, '');
  const retryAddress = input.authRetryAddress ?? AUTH_RETRY_ADDRESS;
  for (const value of [...listen, ...metricsListen, registryMetrics, tmp, cert, key, accessLog, maintenanceDir, retryAddress, input.registryAddress ?? '', input.authAddress ?? '']) {
    // These end up inside nginx directives; refuse anything that could end a directive early.
    if (/[\s;{}'"#$\\]/.test(value)) throw new Error(`unsafe value for nginx.conf: ${JSON.stringify(value)}`);
  }
  // inside a single-quoted nginx string: no quote, no escape, no variable
  if (input.pushRefusal && /['\\$\n]/.test(input.pushRefusal.body)) throw new Error(`unsafe push refusal for nginx.conf: ${input.pushRefusal.body}`);
  return `# Generated by image-registry-operator; changes are overwritten.
worker_processes ${input.workerProcesses ?? 2};
pid ${tmp}/nginx.pid;
error_log stderr warn;

events {
  worker_connections 1024;
}

http {
  client_body_temp_path ${tmp}/client_body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;

  log_format json escape=json '{"time":"$time_iso8601","remote":"$remote_addr","method":"$request_method",'
    '"uri":"$request_uri","status":$status,"bytes":$body_bytes_sent,"duration":$request_time,'
    '"agent":"$http_user_agent"}';
  access_log ${accessLog === 'off' ? 'off' : `${accessLog} json`};

  server_tokens off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65s;

  # The registry sends this header itself; add it only where it is missing (e.g. nginx errors).
  map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {
    '' 'registry/2.0';
  }

  # A variable in ssl_certificate makes nginx (>= 1.15.9) read the certificate and key at every
  # TLS handshake instead of once at start: a renewed certificate the kubelet swaps into the
  # mounted Secret (${NGINX_TLS_DIR}) reaches the next handshake, with no restart and no pod roll.
  # Cost: reading and parsing two small files per full handshake (RESULTS.md, section 7).
  map $ssl_server_name $tls_certificate_file {
    default ${cert};
  }
  map $ssl_server_name $tls_certificate_key_file {
    default ${key};
  }

${nginxFreezeSlotMap('  ')}

  upstream registry {
    server ${input.registryAddress ?? DEFAULT_REGISTRY_ADDRESS};
    keepalive 16;
  }

  upstream auth {
    # max_fails=0: a docker_auth reload is not a failure of the peer; never mark it unavailable.
    server ${input.authAddress ?? DEFAULT_AUTH_ADDRESS} max_fails=0;
    keepalive 4;
  }

  # Paces the retries of one token request (keyed by its request id, see @auth_retry_*): the first
  # retry passes at once, each further one waits 1/rate = ${AUTH_RETRY_DELAY_MS} ms. burst leaves room for
  # timer jitter; a delayed retry is logged at notice, below error_log's level.
  limit_req_zone $http_x_auth_retry zone=auth_retry:1m rate=${1000 / AUTH_RETRY_DELAY_MS}r/s;

  server {
${listen.map((address) => `    listen ${address} ssl;`).join('\n')}
    server_name _;

    ssl_certificate $tls_certificate_file;
    ssl_certificate_key $tls_certificate_key_file;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1h;

    # Layers can be gigabytes: no size limit, stream uploads and downloads instead of buffering.
    client_max_body_size 0;
    chunked_transfer_encoding on;

    location /v2/ {
${nginxFreezeLines('      ', maintenanceDir, { everyRequest: input.pushRefusal !== undefined })}
${input.pushRefusal ? pushRefusalLines('      ') : ''}
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      # Uploads stream to the registry as they arrive, never spooled to the 256Mi /tmp volume;
      # downloads stream to the client (no proxy_temp files either).
      proxy_request_buffering off;
      proxy_buffering off;
      # Read size of response data (see V2_PROXY_BUFFER_SIZE): 4 KiB → 64 KiB per TLS write.
      proxy_buffer_size ${V2_PROXY_BUFFER_SIZE};
      # Unused while proxy_buffering is off, but nginx -t requires proxy_busy_buffers_size
      # (default 2 × ${V2_PROXY_BUFFER_SIZE}) to be less than all proxy_buffers minus one: 3 × ${V2_PROXY_BUFFER_SIZE}.
      proxy_buffers 4 ${V2_PROXY_BUFFER_SIZE};
      # Read size of uploads (see V2_CLIENT_BODY_BUFFER_SIZE): 16 KiB → 64 KiB per upstream write.
      client_body_buffer_size ${V2_CLIENT_BODY_BUFFER_SIZE};
      proxy_read_timeout 900s;
      proxy_send_timeout 900s;
      add_header Docker-Distribution-Api-Version $docker_distribution_api_version always;
    }

${nginxMaintenanceLocation('    ', maintenanceDir)}
${input.pushRefusal ? pushRefusalLocation('    ', input.pushRefusal) : ''}
    # Token requests are GETs, safe to repeat: when docker_auth refuses or drops the connection
    # (its config reload), nginx answers 502 internally and the request goes on to @auth_retry_1.
    location = /auth/token {
${authProxy('      ')}
      error_page 502 = @auth_retry_1;
      # without it nginx follows only the first error_page of a request, not those of the retries
      recursive_error_pages on;
    }

${authRetryLocations()}

    # The pacing of the retries (see limit_req_zone auth_retry), asked before each retry.
    location = /auth-retry-wait {
      internal;
      proxy_pass http://${retryAddress}/;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Auth-Retry $request_id;
    }

    location = ${HEALTH_PATH} {
      access_log off;
      default_type text/plain;
      return 200 "ok\\n";
    }

    location = ${REGISTRY_HEALTH_PATH} {
      access_log off;
      proxy_pass http://registry/;
    }

    location = ${AUTH_HEALTH_PATH} {
      access_log off;
      proxy_pass http://auth/;
    }

    location / {
      return 404;
    }
  }

  # The metrics port (METRICS_PORT): the registry's Prometheus metrics, GET only, nothing else of
  # its debug server (pprof, expvar, /debug/health/down stay on the pod's loopback).
  server {
${metricsListen.map((address) => `    listen ${address};`).join('\n')}
    server_name _;
    access_log off;
    location = ${REGISTRY_METRICS_PATH} {
      limit_except GET {
        deny all;
      }
      proxy_pass http://${registryMetrics}${REGISTRY_METRICS_PATH};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location / {
      return 404;
    }
  }

  # Answers after the pacing delay of a token request's retry; on loopback, reachable only inside
  # the pod. TCP, not a unix socket: a socket file left in /tmp by a killed nginx would stop the
  # restarted one (see AUTH_RETRY_ADDRESS).
  server {
    listen ${retryAddress};
    access_log off;
    location / {
      limit_req zone=auth_retry burst=5;
      limit_req_log_level warn;
      # a content handler (a 1x1 GIF from memory, 200): \`return\` would answer in the rewrite
      # phase, before limit_req (preaccess) ever delays the request
      empty_gif;
    }
  }
}
`;
}

/** In /v2/ of a pull-through cache: anything but a pull goes to @push_refused. */
function pushRefusalLines(indent: string): string {
  return [
    '# a pull-through cache: pushes and deletes are refused here, saying why (@push_refused); after',
    '# the freeze, so a frozen cache answers every request 503 and a write probe sees the freeze',
    'if ($request_method !~ ^(GET|HEAD)$) {',
    '  return 405;',
    '}',
    'error_page 405 @push_refused;',
  ].map((line) => indent + line).join('\n') + '\n';
}

/** The refusal, as distribution writes errors (JSON), so clients show the message. */
function pushRefusalLocation(indent: string, refusal: { status: number; body: string }): string {
  return [
    'location @push_refused {',
    '  default_type application/json;',
    '  add_header Docker-Distribution-Api-Version registry/2.0 always;',
    `  return ${refusal.status} '${refusal.body}';`,
    '}',
  ].map((line) => indent + line).join('\n') + '\n';
}

/** The proxy settings of every /auth/token attempt. */
function authProxy(indent: string): string {
  return [
    'proxy_pass http://auth;',
    'proxy_http_version 1.1;',
    'proxy_set_header Connection "";',
    'proxy_set_header Host $http_host;',
    '# docker_auth reads the client address from this header (server.real_ip_header), so ACL',
    '# ip rules see the client; nginx overwrites whatever the client sent.',
    `proxy_set_header ${REAL_IP_HEADER} $remote_addr;`,
    'proxy_set_header X-Forwarded-Proto $scheme;',
  ]
    .map((line) => indent + line)
    .join('\n');
}

/**
 * @auth_retry_1 … @auth_retry_N: each waits its turn (/auth-retry-wait), tries docker_auth again and,
 * on another 502, goes on to the next. The last one's 502 reaches the client: docker_auth has then
 * been unreachable for the whole retry span. Distinct locations rather than one recursive
 * error_page: nginx allows at most 10 internal redirects per request.
 */
function authRetryLocations(): string {
  const blocks: string[] = [];
  for (let i = 1; i <= AUTH_RETRIES; i++) {
    blocks.push(`    location @auth_retry_${i} {
      auth_request /auth-retry-wait;
${authProxy('      ').split('\n').filter((line) => !line.trimStart().startsWith('#')).join('\n')}${i < AUTH_RETRIES ? `\n      error_page 502 = @auth_retry_${i + 1};\n      recursive_error_pages on;` : ''}
    }`);
  }
  return blocks.join('\n');
}
