// Garbage collection that never corrupts an image. Debian's nginx with the generated nginx.conf in
// front of the registry with the generated config.yml, on loopback; `registry garbage-collect`
// with the same config.yml, as the GC Job runs it. A writer pushes new images without pause, each
// reusing a layer of an image deleted for this test (the case that corrupts: GC marked the layer
// unreferenced, the push links it again, GC's sweep deletes it); a reader pulls the kept images
// without pause. GC runs 10 times:
//
// - under the write freeze (functions/maintenance.ts, cronjobs/freeze.ts): the files the kubelet
//   would put into the pods' maintenance directory, the freeze confirmed through the front, then
//   GC, then the freeze lifted — every image whose push succeeded pulls whole afterwards;
// - without it (plain `garbage-collect` on the live registry, as the twuni chart's CronJob does):
//   images whose push succeeded lose layers — so this test can fail.
//
// Tokens are signed with the registry's token key (test/support/registry-token.ts): no docker_auth.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { maintenanceFiles } from '../../functions/maintenance.ts';
import { tokenIssuer } from '../../functions/names.ts';
import type { FreezeTarget } from '../../cronjobs/freeze.ts';
import { writeAtomic } from '../support/atomic-writer.ts';
import { testBinaries } from '../support/binaries.ts';
import { startNginx, startRegistry, testPki, type Nginx, type Registry } from '../support/front-processes.ts';
import { delay, installExitHandlers } from '../support/processes.ts';
import { damage, garbageCollect, newImage, pushImage, registryClient, removeImage, underFreeze, type Blob, type Image, type RegistryClient as Client } from '../support/registry-api.ts';
import { signRegistryToken } from '../support/registry-token.ts';

const REPO = 'race/app';
const GC_RUNS = 10;
const SEED_IMAGES = 240;
const SEED_DELETED = 160;
const WRITERS = 2;

installExitHandlers();
const assets = await testBinaries();
const workDir = mkdtempSync(join(tmpdir(), 'iro-gc-race-'));

interface Scenario {
  pushed: number;
  refused: number;
  refusalsWithoutMessage: number;
  failedPushes: string[];
  failedPulls: string[];
  corrupt: string[];
  gcMs: number[];
  /** per GC run: first refused push → first accepted push after it */
  freezeWindowsMs: number[];
  /** per GC run under the freeze: how long the drain took and how it ended (drainWrites) */
  drains: { ms: number; outcomes: string }[];
}

async function scenario(name: string, octet: number, freeze: boolean): Promise<Scenario> {
  const front = `127.50.3.${octet}`;
  const hostname = `${front}:8443`;
  const registryAddress = `127.50.3.${octet + 1}:5000`;
  const pki = testPki([front]);
  const dir = join(workDir, name);
  const tlsDir = join(dir, 'tls');
  const maintenanceDir = join(dir, 'maintenance');
  writeAtomic(tlsDir, { 'tls.crt': pki.serving.certPem, 'tls.key': pki.serving.keyPem }, { mode: 0o600 });
  writeAtomic(maintenanceDir, maintenanceFiles(undefined));
  let registry: Registry | undefined;
  let nginx: Nginx | undefined;
  const clients: Client[] = [];
  try {
    registry = await startRegistry({ binary: join(assets, 'registry'), dir, address: registryAddress, hostname, tokenCertPem: pki.token.certPem, name: 'registry' });
    const config = registry.configFile;
    nginx = await startNginx({
      dir: join(dir, 'nginx'),
      input: { listen: [hostname], registryAddress, tlsCertPath: join(tlsDir, 'tls.crt'), tlsKeyPath: join(tlsDir, 'tls.key'), maintenanceDir },
      probe: `https://${hostname}/health`,
    });
    const token = signRegistryToken({ keyPem: pki.token.keyPem, issuer: tokenIssuer(hostname), audience: hostname, subject: 'gc-race', access: [{ type: 'repository', name: REPO, actions: ['push', 'pull', 'delete'] }], ttlSeconds: 3600 });
    const connect = () => {
      const c = registryClient(front, 8443, pki.ca.certPem, token);
      clients.push(c);
      return c;
    };
    const admin = connect();
    const target: FreezeTarget = { host: front, port: 8443, hostname: front, caPem: pki.ca.certPem };

    // seed: images, most of them deleted again — their own layers are the garbage the writers reuse
    const seeded = Array.from({ length: SEED_IMAGES }, (_, i) => newImage(`seed-${i}`, []));
    for (const image of seeded) assert.equal(await pushImage(admin, REPO, image), { result: 'pushed' });
    for (const image of seeded.slice(0, SEED_DELETED)) assert.is(await removeImage(admin, REPO, image), undefined);
    const garbage: Blob[] = seeded.slice(0, SEED_DELETED).map((image) => image.own);
    const keptForReading = seeded.slice(SEED_DELETED);
    const written: Image[] = [];
    const result: Scenario = { pushed: 0, refused: 0, refusalsWithoutMessage: 0, failedPushes: [], failedPulls: [], corrupt: [], gcMs: [], freezeWindowsMs: [], drains: [] };
    let running = true;
    let firstRefusal: number | undefined;

    const writer = async (w: number) => {
      const c = connect();
      for (let i = 0; running; i++) {
        const reused = garbage[(i * WRITERS + w) % garbage.length] as Blob;
        const image = newImage(`w${w}-${i}`, [reused]);
        const pushed = await pushImage(c, REPO, image);
        if (pushed.result === 'pushed') {
          result.pushed++;
          written.push(image);
          if (firstRefusal !== undefined) {
            result.freezeWindowsMs.push(Date.now() - firstRefusal);
            firstRefusal = undefined;
          }
        } else if (pushed.result === 'refused') {
          result.refused++;
          firstRefusal ??= Date.now();
          if (!/writes are refused until \d{4}-\d\d-\d\dT/.test(pushed.message)) result.refusalsWithoutMessage++;
          await delay(20);
        } else {
          result.failedPushes.push(pushed.why);
        }
      }
    };
    const reader = async () => {
      const c = connect();
      for (let i = 0; running; i++) {
        const why = await damage(c, REPO, keptForReading[i % keptForReading.length] as Image);
        if (why) result.failedPulls.push(why);
      }
    };
    const load = [...Array.from({ length: WRITERS }, (_, w) => writer(w)), reader()];

    for (let run_ = 0; run_ < GC_RUNS; run_++) {
      await delay(1500);
      // new garbage for this run: images the writers pushed, deleted; their own layers join the pool
      const victims = written.splice(0, Math.floor(written.length / 2));
      for (const image of victims) {
        // an image whose push succeeded and whose manifest is gone is as corrupt as one missing a layer
        const gone = await removeImage(admin, REPO, image);
        if (gone) result.corrupt.push(gone);
        garbage.push(image.own);
      }
      const gc = async () => (await garbageCollect(join(assets, 'registry'), config)).ms;
      result.gcMs.push(freeze ? await underFreeze({ maintenanceDir, targets: [target], run: `${name}-${run_}`, onDrain: (d) => result.drains.push({ ms: d.ms, outcomes: d.pods.map((p) => p.outcome).join(',') }) }, gc) : await gc());
    }
    await delay(1000);
    running = false;
    await Promise.all(load);
    for (const image of [...keptForReading, ...written]) {
      const why = await damage(admin, REPO, image);
      if (why) result.corrupt.push(why);
    }
    return result;
  } finally {
    for (const c of clients) c.close();
    await nginx?.process.stop();
    await registry?.process.stop();
  }
}

const summary = (s: Scenario) =>
  `${s.pushed} pushes accepted, ${s.refused} refused, ${s.failedPushes.length} failed; ${s.failedPulls.length} failed pulls; ${s.corrupt.length} corrupt images; GC ${Math.min(...s.gcMs)}–${Math.max(...s.gcMs)} ms` +
  (s.freezeWindowsMs.length ? `; freeze window ${Math.min(...s.freezeWindowsMs)}–${Math.max(...s.freezeWindowsMs)} ms` : '') +
  (s.drains.length ? `; drain ${Math.min(...s.drains.map((d) => d.ms))}–${Math.max(...s.drains.map((d) => d.ms))} ms` : '');

test(`GC under the write freeze, ${GC_RUNS} runs with pushes reusing garbage layers and pulls going on: nothing corrupt, no pull fails, every refusal says until when`, async () => {
  const s = await scenario('freeze', 10, true);
  console.log(`with the freeze: ${summary(s)}`);
  assert.equal(s.corrupt, [], 'images whose push succeeded and that do not pull whole');
  assert.equal(s.failedPulls, [], 'pulls of kept images that failed');
  assert.ok(s.refused > 0, 'pushes met the freeze');
  assert.is(s.refusalsWithoutMessage, 0, 'every refusal carries the maintenance message');
  assert.ok(s.freezeWindowsMs.length >= GC_RUNS - 1, `pushes were accepted again after each freeze (${s.freezeWindowsMs.length} of ${GC_RUNS})`);
  // the drain read the registry's writes in flight from the front's metrics port every run (not the fixed drain)
  assert.equal(s.drains.map((d) => d.outcomes), Array(GC_RUNS).fill('drained'), 'every drain ended with no write in flight');
  // a push whose blobs GC swept before its manifest came fails visibly; it never "succeeds"
  for (const why of s.failedPushes) assert.match(why, /MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN/);
});

test(`plain garbage-collect on the live registry (no freeze), ${GC_RUNS} runs: images whose push succeeded lose layers — the race the freeze closes`, async () => {
  const s = await scenario('plain', 20, false);
  console.log(`without the freeze: ${summary(s)}`);
  assert.ok(s.corrupt.length > 0, `no corrupt image without the freeze: the test could not tell (${summary(s)})`);
  assert.ok(s.corrupt.every((why) => /HTTP (404|500) /.test(why)), `the registry no longer has a layer or the manifest of theirs: ${s.corrupt.slice(0, 3).join('; ')}`);
});

test.after(() => rmSync(workDir, { recursive: true, force: true }));

test.run();
