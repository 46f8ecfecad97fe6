// TLS renewal without an outage: nginx reads the serving certificate at each TLS handshake (a
// variable in ssl_certificate), so a renewed certificate that the kubelet swaps into the mounted
// Secret reaches new connections with no restart and no pod roll. Debian's nginx with the
// generated nginx.conf in front of the registry with the generated config.yml, on loopback; the
// TLS directory is rewritten the kubelet's way (new timestamped directory, `..data` swapped, old
// directory deleted) while a client pulls every 200 ms. The pulls carry tokens signed with the
// registry's token key (test/support/registry-token.ts): this test is about the TLS front, so it
// needs no docker_auth.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tokenIssuer } from '../../functions/names.ts';
import { writeAtomic } from '../support/atomic-writer.ts';
import { testBinaries } from '../support/binaries.ts';
import { fetchAnswer, keepAliveAgent, type Answer } from '../support/front-clients.ts';
import { renewedServing, startNginx, startRegistry, testPki, type Nginx, type Registry } from '../support/front-processes.ts';
import { writeOciImage } from '../support/oci-image.ts';
import { delay, installExitHandlers, run } from '../support/processes.ts';
import { signRegistryToken } from '../support/registry-token.ts';

const FRONT = '127.50.2.1';
const REGISTRY = '127.50.2.2:5000';
const HOSTNAME = `${FRONT}:8443`;
const REPO = 'test/renewal';
const PULL_EVERY_MS = 200;
const RENEWALS = 3;

installExitHandlers();
const assets = await testBinaries();
const workDir = mkdtempSync(join(tmpdir(), 'iro-tls-renewal-'));
const pki = testPki([FRONT]);
const tlsDir = join(workDir, 'tls');
let nginx: Nginx | undefined;
let registry: Registry | undefined;

const token = (actions: string[]) =>
  signRegistryToken({ keyPem: pki.token.keyPem, issuer: tokenIssuer(HOSTNAME), audience: HOSTNAME, subject: 'renewal-test', access: [{ type: 'repository', name: REPO, actions }], ttlSeconds: 600 });

interface Pull {
  at: number;
  manifest: Answer;
  blob?: Answer;
}

test('a client pulling every 200 ms through 3 TLS renewals: no failed pull, new connections get the new certificate, nginx not restarted', async () => {
  assert.ok(existsSync(join(assets, 'registry')), `registry in ${assets}`);
  writeAtomic(tlsDir, { 'tls.crt': pki.serving.certPem, 'tls.key': pki.serving.keyPem }, { mode: 0o600 });
  registry = await startRegistry({ binary: join(assets, 'registry'), dir: workDir, address: REGISTRY, hostname: HOSTNAME, tokenCertPem: pki.token.certPem });
  nginx = await startNginx({
    dir: join(workDir, 'nginx'),
    input: { listen: [HOSTNAME], registryAddress: REGISTRY, tlsCertPath: join(tlsDir, 'tls.crt'), tlsKeyPath: join(tlsDir, 'tls.key') },
    probe: `https://${HOSTNAME}/health`,
  });
  const front = nginx;

  // an image to pull, pushed through the front with skopeo
  const image = writeOciImage(join(workDir, 'image'), 'v1', { 'hello.txt': 'renewal\n'.repeat(1000) });
  writeAtomic(join(workDir, 'client-certs'), { 'ca.crt': pki.ca.certPem });
  const push = await run('skopeo', ['copy', '--quiet', '--dest-cert-dir', join(workDir, 'client-certs'), '--dest-registry-token', token(['pull', 'push']), image.reference, `docker://${HOSTNAME}/${REPO}:v1`]);
  assert.is(push.code, 0, push.stderr);

  const master = front.process.child.pid;
  const workersBefore = front.workers().sort();
  const pullToken = token(['pull']);
  const headers = { authorization: `Bearer ${pullToken}`, accept: 'application/vnd.oci.image.manifest.v1+json' };
  const base = `https://${HOSTNAME}/v2/${REPO}`;
  // one client opens a new connection per pull (a new TLS handshake each time), one keeps its connection
  const keepAlive = keepAliveAgent(true);
  const pulls: Pull[] = [];
  const keptPulls: Pull[] = [];
  let stop = false;
  const pullOnce = async (agent: typeof keepAlive | false): Promise<Pull> => {
    const at = Date.now();
    const manifest = await fetchAnswer(`${base}/manifests/v1`, { ca: pki.ca.certPem, agent, headers });
    if (manifest.status !== 200) return { at, manifest };
    const blob = await fetchAnswer(`${base}/blobs/${image.layerDigest}`, { ca: pki.ca.certPem, agent, headers: { authorization: `Bearer ${pullToken}` } });
    return { at, manifest, blob };
  };
  const puller = (async () => {
    while (!stop) {
      const started = Date.now();
      const [fresh, kept] = await Promise.all([pullOnce(false), pullOnce(keepAlive)]);
      pulls.push(fresh);
      keptPulls.push(kept);
      await delay(Math.max(0, PULL_EVERY_MS - (Date.now() - started)));
    }
  })();

  const serials = [pki.serving];
  await delay(1000);
  const swaps: number[] = [];
  for (let i = 0; i < RENEWALS; i++) {
    const renewed = renewedServing(pki, [FRONT]);
    serials.push(renewed);
    swaps.push(Date.now());
    writeAtomic(tlsDir, { 'tls.crt': renewed.certPem, 'tls.key': renewed.keyPem }, { mode: 0o600 });
    await delay(1000);
  }
  stop = true;
  await puller;
  keepAlive.destroy();

  const serialOf = (pem: { certPem: string }) => new X509Certificate(pem.certPem).serialNumber;
  const expected = serials.map(serialOf);
  const failed = [...pulls, ...keptPulls].filter((p) => p.manifest.status !== 200 || p.blob?.status !== 200 || p.blob.body.length === 0);
  const seen = [...new Set(pulls.map((p) => p.manifest.serial))];
  const workersAfter = front.workers().sort();
  const restarts = (master !== front.process.child.pid || front.process.child.exitCode !== null ? 1 : 0) + (workersAfter.join() === workersBefore.join() ? 0 : 1);
  console.log(`    ${pulls.length} pulls on new connections and ${keptPulls.length} on one kept connection, ${failed.length} failed; certificates seen on new connections: ${seen.length} (${RENEWALS} renewals); nginx restarts or reloads: ${restarts}`);

  assert.equal(failed.map((p) => `${p.manifest.error ?? p.manifest.status} ${p.blob?.error ?? p.blob?.status ?? ''}`), [], 'no failed pull');
  assert.ok(pulls.length >= 15, `${pulls.length} pulls`);
  // every certificate in turn, in order, each new connection after a swap with the new one
  assert.equal(seen, expected, 'each renewed certificate reached the next new connection');
  for (let i = 0; i < swaps.length; i++) {
    const firstAfter = pulls.find((p) => p.at > (swaps[i] as number) + 50);
    const stillOld = pulls.filter((p) => p.at > (swaps[i] as number) + 50 && p.manifest.serial !== undefined && expected.indexOf(p.manifest.serial) < i + 1);
    assert.ok(firstAfter, `a pull after renewal ${i + 1}`);
    assert.equal(stillOld.length, 0, `no new connection got an older certificate after renewal ${i + 1}`);
  }
  // the kept connection was never interrupted: one handshake, the first certificate throughout
  assert.equal([...new Set(keptPulls.map((p) => p.manifest.serial))], [expected[0]]);
  assert.is(restarts, 0, 'nginx neither restarted nor reloaded');
  assert.not.match(readFileSync(front.errorLog, 'utf8'), /\[(emerg|alert|crit|error)\]/, 'nothing went wrong in nginx');
});

test.after(async () => {
  await nginx?.process.stop();
  await registry?.process.stop();
  rmSync(workDir, { recursive: true, force: true });
});

test.run();
