// The sandbox's `<data>/bin/skopeo`: the real skopeo under bwrap with the sandbox node's
// /etc/resolv.conf (the cluster's CoreDNS, which answers registry hostnames with their LoadBalancer
// addresses), so the README's commands reach registry hostnames unchanged. `<data>/bin` comes first on the
// sandbox's PATH, so the wrapper names the real skopeo by absolute path: a plain `skopeo` would
// find the wrapper itself and fork without end.
import { accessSync, constants, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The first executable `skopeo` on PATH (then /usr/bin, /usr/local/bin) that is not in `wrapperDir`. */
export function realSkopeo(wrapperDir: string, path = process.env.PATH ?? ''): string {
  const wrapper = join(resolve(wrapperDir), 'skopeo');
  for (const dir of [...path.split(':'), '/usr/bin', '/usr/local/bin']) {
    if (!dir) continue;
    const candidate = join(resolve(dir), 'skopeo');
    try {
      accessSync(candidate, constants.X_OK);
      if (candidate !== wrapper && realpathSync(candidate) !== safeRealpath(wrapper)) return realpathSync(candidate);
    } catch {
      // not there, or not executable
    }
  }
  throw new Error('skopeo is not installed (test/binaries/build.sh installs it)');
}

function safeRealpath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** The wrapper script: bwrap with `resolvConf` as /etc/resolv.conf, running `skopeo` (an absolute path). */
export function skopeoWrapper(resolvConf: string, skopeo: string): string {
  if (!skopeo.startsWith('/')) throw new Error(`the wrapper needs the real skopeo's absolute path, not ${skopeo}`);
  const quote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;
  return [
    '#!/bin/sh',
    "# skopeo with the sandbox node's resolver (the cluster DNS), so registry hostnames resolve to their LoadBalancer addresses;",
    '# the real skopeo by absolute path, never this wrapper',
    `exec bwrap --dev-bind / / --ro-bind ${quote(resolvConf)} /etc/resolv.conf --chdir "$PWD" ${quote(skopeo)} "$@"`,
    '',
  ].join('\n');
}
