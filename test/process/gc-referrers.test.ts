// OCI 1.1 referrers on distribution 3.1 (no referrers API): clients push a referrer (a manifest with
// a `subject`) by digest and list it in an index tagged `sha256-<subject hex>` — the referrers tag
// schema. Retention treats that tag as an attachment of its subject (functions/retention/attachments.ts);
// what keeps the untagged referrer itself is distribution's collector: under --delete-untagged it
// keeps an untagged manifest that a marked index references. This checks that claim of the README
// against the real `registry garbage-collect`: the referrer survives while the tag stays, and is
// collected once the tag is gone. The registry runs with the generated config.yml, plain HTTP and
// no auth on loopback (the collector reads the storage, not the API).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testBinaries } from '../support/binaries.ts';
import { startRegistry, type Registry } from '../support/front-processes.ts';
import { installExitHandlers } from '../support/processes.ts';
import { blob, garbageCollect, newImage, type Blob } from '../support/registry-api.ts';
import { OCI_MANIFEST } from '../support/oci-image.ts';

const ADDRESS = '127.50.5.2:5000';
const REPO = 'team/app';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

installExitHandlers();
const assets = await testBinaries();
const workDir = mkdtempSync(join(tmpdir(), 'iro-gc-referrers-'));
let registry: Registry | undefined;

async function call(method: string, path: string, body?: Buffer, contentType?: string): Promise<{ status: number; body: string; location?: string }> {
  const headers = { accept: `${OCI_MANIFEST}, ${OCI_INDEX}`, ...(contentType ? { 'content-type': contentType } : {}) };
  const answer = await fetch(`http://${ADDRESS}${path}`, { method, ...(body ? { body: new Uint8Array(body) } : {}), headers, redirect: 'manual' });
  return { status: answer.status, body: await answer.text(), location: answer.headers.get('location') ?? undefined };
}

async function pushBlob(b: Blob): Promise<void> {
  const started = await call('POST', `/v2/${REPO}/blobs/uploads/`);
  assert.is(started.status, 202, started.body);
  const location = new URL(started.location ?? '', `http://${ADDRESS}`);
  location.searchParams.set('digest', b.digest);
  const put = await call('PUT', `${location.pathname}${location.search}`, b.data, 'application/octet-stream');
  assert.is(put.status, 201, put.body);
}

async function pushManifest(reference: string, manifest: Buffer, mediaType: string): Promise<void> {
  const put = await call('PUT', `/v2/${REPO}/manifests/${reference}`, manifest, mediaType);
  assert.is(put.status, 201, put.body);
}

test('a referrer listed in the referrers tag survives --delete-untagged while the tag stays, and is collected after', async () => {
  registry = await startRegistry({ binary: join(assets, 'registry'), dir: workDir, address: ADDRESS, hostname: ADDRESS });
  const image = newImage('v1', []);
  for (const b of image.blobs) await pushBlob(b);
  await pushManifest('v1', image.manifest, OCI_MANIFEST);
  // the referrer: an artifact manifest (OCI 1.1) with the image as its subject, pushed by digest
  const empty = blob(Buffer.from('{}'));
  const signature = blob(Buffer.from('signature bytes'));
  await pushBlob(empty);
  await pushBlob(signature);
  const referrer = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.signature',
    config: { mediaType: OCI_EMPTY, digest: empty.digest, size: empty.data.length },
    layers: [{ mediaType: 'application/vnd.example.signature', digest: signature.digest, size: signature.data.length }],
    subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.manifest.length },
  }));
  const referrerDigest = blob(referrer).digest;
  await pushManifest(referrerDigest, referrer, OCI_MANIFEST);
  // the referrers tag schema: an index tagged sha256-<hex> listing the referrer
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: referrerDigest, size: referrer.length, artifactType: 'application/vnd.example.signature' }] }));
  const referrersTag = image.digest.replace(':', '-');
  await pushManifest(referrersTag, index, OCI_INDEX);

  const beforeGc = await call('GET', `/v2/${REPO}/manifests/${referrerDigest}`);
  assert.is(beforeGc.status, 200, `before any GC: ${beforeGc.body}`);
  const first = await garbageCollect(join(assets, 'registry'), registry.configFile, {}, ['--delete-untagged']);
  assert.match(first.output, /\d+ blobs marked, 0 blobs and 0 manifests eligible for deletion/, 'nothing is garbage while the tag stays');
  const kept = await call('GET', `/v2/${REPO}/manifests/${referrerDigest}`);
  assert.is(kept.status, 200, `the untagged referrer is kept (its index is tagged): ${kept.body}\n${first.output.slice(-1500)}`);
  assert.is((await call('GET', `/v2/${REPO}/blobs/${signature.digest}`)).status, 200);

  // the referrers tag deleted (as retention does with its image): the referrer is an untagged manifest nothing references
  const indexDigest = blob(index).digest;
  const deleted = await call('DELETE', `/v2/${REPO}/manifests/${indexDigest}`);
  assert.is(deleted.status, 202, deleted.body);
  await registry.process.stop();
  const second = await garbageCollect(join(assets, 'registry'), registry.configFile, {}, ['--delete-untagged']);
  assert.match(second.output, /\d+ blobs marked, \d+ blobs and 1 manifests eligible for deletion/, second.output.slice(-2000));
  registry = await startRegistry({ binary: join(assets, 'registry'), dir: workDir, address: ADDRESS, hostname: ADDRESS });
  assert.is((await call('GET', `/v2/${REPO}/manifests/${referrerDigest}`)).status, 404, 'collected with the tag gone');
  assert.is((await call('GET', `/v2/${REPO}/manifests/v1`)).status, 200, 'the image itself stays');
});

test.after(async () => {
  await registry?.process.stop();
  rmSync(workDir, { recursive: true, force: true });
});

test.run();
