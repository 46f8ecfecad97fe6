// The volume check of a volume registry's pods: its script run for real as the registry's user on a
// writable and an unwritable directory, and what the reconcile Job makes of the pod statuses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { desiredStatefulSet, REGISTRY_UID } from '../../functions/registry-objects.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { VOLUME_CHECK_CONTAINER, VOLUME_CHECK_SCRIPT, VOLUME_NOT_WRITABLE, volumeWritabilityProblem } from '../../functions/volume-check.ts';
import type { ImageRegistry } from '../../functions/types.ts';
import { run } from '../support/processes.ts';

const registry = (spec: ImageRegistry['spec'] = {}): ImageRegistry => ({ apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra', uid: 'u' }, spec });
const config = operatorConfigFromEnv({});

test('a volume registry starts with the check, as the registry user on the data mount; a bucket registry without it', () => {
  const spec = desiredStatefulSet(registry(), config, { tlsSecretName: 'registry-tls' }).spec?.template.spec;
  const check = spec?.initContainers?.[0];
  assert.is(check?.name, VOLUME_CHECK_CONTAINER);
  assert.is(check?.image, config.images.registry);
  assert.equal(check?.command?.slice(0, 2), ['sh', '-c']);
  assert.is(check?.command?.at(-1), '/var/lib/registry');
  assert.equal(check?.volumeMounts, [{ name: 'data', mountPath: '/var/lib/registry' }]);
  assert.is(check?.securityContext?.runAsUser, REGISTRY_UID);
  assert.is(check?.securityContext?.readOnlyRootFilesystem, true);
  assert.equal(check?.securityContext?.capabilities?.drop, ['ALL']);
  const bucket = desiredStatefulSet(registry({ storage: { s3: { bucket: 'b' } } }), config, { tlsSecretName: 'registry-tls' }).spec?.template.spec;
  assert.is(bucket?.initContainers, undefined);
});

/** Runs the script as the registry's user (setpriv, as root here), with a termination log of its own. */
async function runCheck(dir: string): Promise<{ code: number; stderr: string; message: string }> {
  const work = mkdtempSync(join(tmpdir(), 'iro-volume-check-'));
  const log = join(work, 'termination-log');
  writeFileSync(log, '');
  chmodSync(log, 0o666);
  // the script writes /dev/termination-log (the kubelet's bind mount); here the same file under bwrap
  const result = await run('bwrap', ['--dev-bind', '/', '/', '--bind', log, '/dev/termination-log', '--setenv', 'HOSTNAME', 'registry-0',
    'setpriv', `--reuid=${REGISTRY_UID}`, `--regid=${REGISTRY_UID}`, '--clear-groups', 'sh', '-c', VOLUME_CHECK_SCRIPT, VOLUME_CHECK_CONTAINER, dir]);
  const message = readFileSync(log, 'utf8');
  rmSync(work, { recursive: true, force: true });
  return { ...result, message };
}

test('the script passes on a directory the registry user can write and leaves nothing in it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iro-volume-'));
  chownSync(dir, REGISTRY_UID, REGISTRY_UID);
  const result = await runCheck(dir);
  assert.is(result.code, 0, result.stderr);
  assert.equal(readdirSync(dir), []);
  rmSync(dir, { recursive: true, force: true });
});

test('the script fails on a root-owned 0755 directory (a volume that ignores fsGroup), saying so in the termination message', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iro-volume-'));
  chmodSync(dir, 0o755);
  const result = await runCheck(dir);
  assert.is(result.code, 1);
  assert.match(result.message, `the registry volume at ${dir} is not writable by uid ${REGISTRY_UID}`);
  assert.match(result.stderr, 'not writable');
  assert.not.ok(existsSync(join(dir, '.write-check-registry-0')));
  rmSync(dir, { recursive: true, force: true });
});

test('VolumeNotWritable from a failing check (running again or backing off), none once it passed or for a pod going away', () => {
  const failed = { exitCode: 1, message: 'the registry volume at /var/lib/registry is not writable by uid 1000' };
  const pod = (status: object, deletionTimestamp?: string) => ({ metadata: { name: 'registry-0', ...(deletionTimestamp ? { deletionTimestamp } : {}) }, status: { initContainerStatuses: [{ name: VOLUME_CHECK_CONTAINER, ...status }] } });
  const backingOff = volumeWritabilityProblem([pod({ state: {}, lastState: { terminated: failed } })], REGISTRY_UID);
  assert.is(backingOff?.reason, VOLUME_NOT_WRITABLE);
  assert.match(backingOff?.message ?? '', /^pod registry-0: the registry volume at \/var\/lib\/registry is not writable by uid 1000; give uid or group 1000 write access/);
  assert.is(volumeWritabilityProblem([pod({ state: { terminated: failed } })], REGISTRY_UID)?.reason, VOLUME_NOT_WRITABLE);
  assert.is(volumeWritabilityProblem([pod({ state: { terminated: { exitCode: 0 } }, lastState: { terminated: failed } })], REGISTRY_UID), undefined);
  assert.is(volumeWritabilityProblem([pod({ state: { terminated: failed } }, '2026-01-01T00:00:00Z')], REGISTRY_UID), undefined);
  assert.is(volumeWritabilityProblem([{ metadata: { name: 'registry-0' }, status: {} }], REGISTRY_UID), undefined);
  assert.match(volumeWritabilityProblem([pod({ state: { terminated: { exitCode: 2 } } })], REGISTRY_UID)?.message ?? '', 'the volume check exited with 2');
});

test.run();
