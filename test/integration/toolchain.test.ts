// The real parts the tests run are present and are the pinned versions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testCluster } from '../support/cluster.ts';
import { authServerUnavailable, testBinaries } from '../support/binaries.ts';
import { run } from '../support/processes.ts';

const pinned = Object.fromEntries(
  readFileSync(new URL('../binaries/versions.env', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z_]+=/.test(line))
    .map((line) => line.split('=') as [string, string]),
);

async function output(command: string, args: string[]): Promise<string> {
  const result = await run(command, args, { timeoutMs: 30_000 });
  return result.stdout + result.stderr;
}

test('the API server the tests talk to is a supported Kubernetes release (>= v1.36)', async () => {
  const cluster = await testCluster();
  const result = await cluster.kubectl(['version', '-o', 'json']);
  assert.is(result.code, 0, result.stderr);
  const server = JSON.parse(result.stdout).serverVersion as { gitVersion: string; minor: string };
  console.log(`kube-apiserver ${server.gitVersion}`);
  assert.ok(Number.parseInt(server.minor, 10) >= 36, server.gitVersion);
});

test('kube-apiserver, kubectl and etcd report their versions', async () => {
  const { assetsDir } = await testCluster();
  assert.match(await output(join(assetsDir, 'kube-apiserver'), ['--version']), /Kubernetes v1\.\d+\.\d+/);
  assert.match(await output(join(assetsDir, 'kubectl'), ['version', '--client']), /Client Version: v1\.\d+/);
  assert.match(await output(join(assetsDir, 'etcd'), ['--version']), /etcd Version: 3\.6\./);
});

const authServerMissing = authServerUnavailable(await testBinaries());
if (authServerMissing) console.log(`SKIP auth_server (docker_auth) could not be built: ${authServerMissing}`);

(authServerMissing ? test.skip : test)('auth_server is docker_auth at the pinned release', async () => {
  const { assetsDir } = await testCluster();
  // without a config file it prints its version and exits
  assert.match(await output(join(assetsDir, 'auth_server'), ['-logtostderr']), new RegExp(`docker_auth ${pinned.DOCKER_AUTH_VERSION}`));
});

test('registry is distribution at the pinned release', async () => {
  const { assetsDir } = await testCluster();
  assert.match(await output(join(assetsDir, 'registry'), ['--version']), new RegExp(`v${pinned.REGISTRY_VERSION}`));
});

test('versitygw (the tests\' S3 server) is at the pinned release', async () => {
  const { assetsDir } = await testCluster();
  assert.match(await output(join(assetsDir, 'versitygw'), ['--version']), new RegExp(`Version\\s*: v${pinned.VERSITYGW_VERSION}\\b`));
});

test('nginx, skopeo and bubblewrap from Debian run', async () => {
  assert.match(await output('nginx', ['-v']), /nginx version: nginx\/1\./);
  assert.match(await output('skopeo', ['--version']), /skopeo version \d+\./);
  assert.match(await output('bwrap', ['--version']), /bubblewrap \d+\./);
});

test.run();
