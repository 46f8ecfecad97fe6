// The node-trust Job's file work (cronjobs/node-trust-files.ts) on a real file system: a temporary
// directory stands for the node's three certs.d roots.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyNodeTrust } from '../../cronjobs/node-trust-files.ts';
import { containerdHostsToml, NODE_TRUST_MARKER } from '../../functions/node-trust.ts';

const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(body).toString('base64')}\n-----END CERTIFICATE-----\n`;
const base = mkdtempSync(join(tmpdir(), 'iro-node-trust-files-'));
const roots = { containerd: join(base, 'containerd/certs.d'), containers: join(base, 'containers/certs.d'), docker: join(base, 'docker/certs.d') };
const a = { hostname: 'a.ns.svc.example.org', caPem: pem('ca one') };
const b = { hostname: 'b.ns.svc.example.org', caPem: pem('ca one') };

test('writes hosts.toml, ca.crt and the marker per root, 0644 files in 0755 directories, no temporaries left', () => {
  const result = applyNodeTrust(roots, [a, b]);
  assert.is(result.written.length, 6);
  assert.is(readFileSync(join(roots.containerd, a.hostname, 'hosts.toml'), 'utf8'), containerdHostsToml(a.hostname));
  for (const root of Object.values(roots)) {
    assert.is(readFileSync(join(root, b.hostname, 'ca.crt'), 'utf8'), b.caPem);
    assert.is(statSync(join(root, b.hostname)).mode & 0o777, 0o755);
    assert.is(statSync(join(root, b.hostname, 'ca.crt')).mode & 0o777, 0o644);
    assert.equal(readdirSync(root).sort(), [a.hostname, b.hostname]);
  }
});

test('a changed CA replaces the file in place; a registry gone leaves no file of ours; the admin\'s entries stay', () => {
  // the admin's: another registry, and a directory with one of our hostnames but no marker
  mkdirSync(join(roots.containerd, 'mirror.example.org'));
  writeFileSync(join(roots.containerd, 'mirror.example.org', 'hosts.toml'), 'server = "https://mirror.example.org"\n');
  rmSync(join(roots.docker, a.hostname), { recursive: true });
  mkdirSync(join(roots.docker, a.hostname));
  writeFileSync(join(roots.docker, a.hostname, 'ca.crt'), 'the admin\'s\n');
  // a user file inside one of our directories
  writeFileSync(join(roots.containers, b.hostname, 'client.cert'), 'user\n');
  const renewed = { ...a, caPem: pem('ca two') };
  const result = applyNodeTrust(roots, [renewed]);
  assert.is(readFileSync(join(roots.containerd, a.hostname, 'ca.crt'), 'utf8'), renewed.caPem);
  assert.equal(result.foreign, [join(roots.docker, a.hostname)]);
  assert.is(readFileSync(join(roots.docker, a.hostname, 'ca.crt'), 'utf8'), 'the admin\'s\n', 'not ours: untouched');
  assert.not.ok(existsSync(join(roots.containerd, b.hostname)));
  assert.not.ok(existsSync(join(roots.docker, b.hostname)));
  assert.equal(readdirSync(join(roots.containers, b.hostname)), ['client.cert'], 'only our files removed');
  assert.ok(existsSync(join(roots.containerd, 'mirror.example.org', 'hosts.toml')));
  assert.equal(result.removed.sort(), [join(roots.containerd, b.hostname), join(roots.containers, b.hostname), join(roots.docker, b.hostname)].sort());
});

test('a temporary directory a crashed run left (with our marker) is cleaned; an empty set removes all of ours', () => {
  const stale = join(roots.containerd, '.iro-tmp-c.ns.svc.example.org-1');
  mkdirSync(stale);
  writeFileSync(join(stale, NODE_TRUST_MARKER), '');
  applyNodeTrust(roots, []);
  assert.not.ok(existsSync(stale));
  assert.not.ok(existsSync(join(roots.containerd, a.hostname)));
  assert.equal(readdirSync(roots.containerd), ['mirror.example.org']);
});

test.after(() => rmSync(base, { recursive: true, force: true }));
test.run();
