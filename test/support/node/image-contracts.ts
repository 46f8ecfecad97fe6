// What each image the real node runs promises, written once: the fields of its OCI config and the
// paths in its file system that our pod specs (or its own entrypoint) rely on. Each field mirrors
// the upstream Dockerfile line quoted next to it; images.ts builds the configs from these, and
// test/integration/node-images.test.ts holds the assembled archives to them.
// Upstream sources read (never copied): kubernetes/kubernetes build/pause/Dockerfile,
// distribution/distribution-library-image (Dockerfile and entrypoint.sh as of registry 3.0.0/July
// 2025; the official library builds 3.1.2 from a later commit we could not read),
// nginxinc/docker-nginx stable/alpine{,-slim}/Dockerfile (1.30.0), cesanta/docker_auth
// auth_server/Dockerfile (tag 1.14.0), nodejs/docker-node 24/bookworm-slim/Dockerfile,
// coredns/coredns Dockerfile (v1.15.0), and our own /Dockerfile for the operator.

/** The `config` object of an OCI image config (image-spec config.md), the fields we set. */
export interface ImageConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  StopSignal?: string;
}

/** A path in the image's root file system: its type, permission bits (with sticky) and owner. */
export interface PathContract {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** exact permission bits, e.g. 0o755, 0o1777 */
  mode?: number;
  /** owner and group (default root) */
  uid?: number;
  gid?: number;
}

export interface ImageContract {
  /** as the manifests name it, e.g. registry:3.1.2 */
  name: string;
  /** the Dockerfile the contract mirrors */
  upstream: string;
  config: ImageConfig;
  paths: PathContract[];
}

export type ImageRole = 'pause' | 'registry' | 'nginx' | 'auth' | 'operator' | 'coredns';

/** The PATH every base these images come from has (BuildKit's default for scratch-based images, alpine, debian). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const tmp: PathContract = { path: '/tmp', type: 'dir', mode: 0o1777 };
const shell: PathContract = { path: '/bin/sh', type: 'symlink' };
const caBundle: PathContract = { path: '/etc/ssl/certs/ca-certificates.crt', type: 'file', mode: 0o644 };

export function pauseContract(name: string): ImageContract {
  return {
    name,
    upstream: 'kubernetes/kubernetes build/pause/Dockerfile (FROM scratch)',
    config: {
      Env: [`PATH=${DEFAULT_PATH}`],
      // ADD bin/pause-linux-${ARCH} /pause
      // ENTRYPOINT ["/pause"]
      Entrypoint: ['/pause'],
      // USER 65535:65535
      User: '65535:65535',
    },
    paths: [{ path: '/pause', type: 'file', mode: 0o755 }],
  };
}

export function registryContract(name: string): ImageContract {
  return {
    name,
    upstream: 'distribution/distribution-library-image Dockerfile (FROM alpine, registry 3.1.2)',
    config: {
      // ENV OTEL_TRACES_EXPORTER=none (added to the Dockerfile in July 2025)
      Env: [`PATH=${DEFAULT_PATH}`, 'OTEL_TRACES_EXPORTER=none'],
      // ENTRYPOINT ["/entrypoint.sh"]
      Entrypoint: ['/entrypoint.sh'],
      // CMD ["/etc/distribution/config.yml"]
      Cmd: ['/etc/distribution/config.yml'],
      // EXPOSE 5000
      ExposedPorts: { '5000/tcp': {} },
      // VOLUME ["/var/lib/registry"]
      Volumes: { '/var/lib/registry': {} },
    },
    paths: [
      // COPY entrypoint.sh /entrypoint.sh: `serve …` and `garbage-collect …` become `registry …`
      { path: '/entrypoint.sh', type: 'file', mode: 0o755 },
      // tar --extract … --directory /bin/ registry (the GC Job's `sh -c` finds it on PATH)
      { path: '/bin/registry', type: 'file', mode: 0o755 },
      // COPY ./config-example.yml /etc/distribution/config.yml
      { path: '/etc/distribution/config.yml', type: 'file', mode: 0o644 },
      { path: '/var/lib/registry', type: 'dir', mode: 0o755 },
      // RUN apk add --no-cache ca-certificates
      caBundle,
      // FROM alpine: busybox's sh (the GC Job runs `sh -c`), /tmp
      shell,
      tmp,
    ],
  };
}

export function nginxContract(name: string): ImageContract {
  // ENV NGINX_VERSION 1.30.0: the tag says which (its PKG_RELEASE/NJS_* values are not in the sources we have)
  const version = /:(\d+\.\d+\.\d+)/.exec(name)?.[1] ?? '';
  return {
    name,
    upstream: 'nginxinc/docker-nginx stable/alpine Dockerfile (FROM nginx:<version>-alpine-slim, FROM alpine)',
    config: {
      Env: [`PATH=${DEFAULT_PATH}`, ...(version ? [`NGINX_VERSION=${version}`] : [])],
      // ENTRYPOINT ["/docker-entrypoint.sh"]
      Entrypoint: ['/docker-entrypoint.sh'],
      // CMD ["nginx", "-g", "daemon off;"]
      Cmd: ['nginx', '-g', 'daemon off;'],
      // EXPOSE 80
      ExposedPorts: { '80/tcp': {} },
      // STOPSIGNAL SIGQUIT: the kubelet stops nginx gracefully with it
      StopSignal: 'SIGQUIT',
    },
    paths: [
      // COPY docker-entrypoint.sh /
      { path: '/docker-entrypoint.sh', type: 'file', mode: 0o755 },
      // the pod's `command: [nginx, …]` finds it on PATH, as in the nginx.org package
      { path: '/usr/sbin/nginx', type: 'file', mode: 0o755 },
      // the pod mounts nginx.conf (subPath), tls/ and maintenance/ into /etc/nginx
      { path: '/etc/nginx', type: 'dir', mode: 0o755 },
      { path: '/etc/nginx/mime.types', type: 'file', mode: 0o644 },
      // ln -sf /dev/stdout /var/log/nginx/access.log; ln -sf /dev/stderr /var/log/nginx/error.log
      { path: '/var/log/nginx/access.log', type: 'symlink' },
      { path: '/var/log/nginx/error.log', type: 'symlink' },
      // adduser -S -D -H -u 101 -h /var/cache/nginx … nginx
      { path: '/var/cache/nginx', type: 'dir', mode: 0o755 },
      // && mkdir /docker-entrypoint.d
      { path: '/docker-entrypoint.d', type: 'dir', mode: 0o755 },
      shell,
      tmp,
    ],
  };
}

export function authContract(name: string): ImageContract {
  return {
    name,
    upstream: 'cesanta/docker_auth auth_server/Dockerfile (FROM alpine:3.22)',
    config: {
      Env: [`PATH=${DEFAULT_PATH}`],
      // ENTRYPOINT ["/docker_auth/auth_server"]
      Entrypoint: ['/docker_auth/auth_server'],
      // CMD ["/config/auth_config.yml"]
      Cmd: ['/config/auth_config.yml'],
      // EXPOSE 5001
      ExposedPorts: { '5001/tcp': {} },
    },
    paths: [
      // COPY --from=build /build/auth_server /docker_auth/
      { path: '/docker_auth/auth_server', type: 'file', mode: 0o755 },
      // COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
      caBundle,
      shell,
      tmp,
    ],
  };
}

/** The test cluster's DNS (test/support/node/cluster-dns.ts); the binary is our build of the wrapper module. */
export function corednsContract(name: string): ImageContract {
  return {
    name,
    upstream: 'coredns/coredns Dockerfile (FROM gcr.io/distroless/static-debian12:nonroot)',
    config: {
      Env: [`PATH=${DEFAULT_PATH}`],
      // USER 65532:65532 (numeric, so runAsNonRoot can verify it)
      User: '65532:65532',
      // WORKDIR /
      WorkingDir: '/',
      // EXPOSE 53 53/udp
      ExposedPorts: { '53/tcp': {}, '53/udp': {} },
      // ENTRYPOINT ["/coredns"]
      Entrypoint: ['/coredns'],
    },
    paths: [
      // COPY --from=build /coredns /coredns (after `setcap cap_net_bind_service=+ep`: binds :53 as 65532)
      { path: '/coredns', type: 'file', mode: 0o755 },
      // distroless static: CA certificates and a /tmp
      caBundle,
      tmp,
    ],
  };
}

/** The toolkit image (/Dockerfile); nodeVersion is the version of the node binary it carries. */
export function operatorContract(name: string, nodeVersion: string): ImageContract {
  // Each workload names its entry (Dockerfile's last comment); bcrypt-worker.js is loaded from beside them.
  const entries = ['webhook', 'reconcile', 'rotate', 'resync', 'bootstrap', 'upload-cleanup', 'garbage-collect', 'gc-retention', 'node-trust', 'bcrypt-worker'];
  return {
    name,
    upstream: '/Dockerfile (FROM node:24-bookworm-slim: nodejs/docker-node 24/bookworm-slim/Dockerfile)',
    config: {
      Env: [
        `PATH=${DEFAULT_PATH}`,
        // node image: ENV NODE_VERSION=24.x.y (ours: the node binary's own; YARN_VERSION is left out with yarn)
        `NODE_VERSION=${nodeVersion}`,
        // ENV NODE_ENV=production
        'NODE_ENV=production',
        // ENV NODE_COMPILE_CACHE=/app/compile-cache
        'NODE_COMPILE_CACHE=/app/compile-cache',
      ],
      // node image: ENTRYPOINT ["docker-entrypoint.sh"] (inherited; found on PATH in /usr/local/bin)
      Entrypoint: ['docker-entrypoint.sh'],
      // CMD ["node", "/app/dist/webhook.js"]
      Cmd: ['node', '/app/dist/webhook.js'],
      // WORKDIR /app
      WorkingDir: '/app',
      // USER 65532:65532
      User: '65532:65532',
    },
    paths: [
      // node image: tar -xJf node-v….tar.xz -C /usr/local --strip-components=1
      { path: '/usr/local/bin/node', type: 'file', mode: 0o755 },
      // node image: COPY docker-entrypoint.sh /usr/local/bin/
      { path: '/usr/local/bin/docker-entrypoint.sh', type: 'file', mode: 0o755 },
      // COPY --from=build /src/dist /app/dist
      ...entries.map((entry): PathContract => ({ path: `/app/dist/${entry}.js`, type: 'file', mode: 0o644 })),
      // RUN install -d -o 65532 -g 65532 /app/compile-cache
      { path: '/app/compile-cache', type: 'dir', mode: 0o755, uid: 65532, gid: 65532 },
      shell,
      tmp,
    ],
  };
}
