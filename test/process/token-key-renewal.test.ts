// End to end at process level: renewing the token-signing key twice while a client requests tokens
// and pulls every 200 ms, with the real registry (distribution v3) and the real docker_auth 1.14,
// configured by functions/ and driven by functions/token-keys.ts' decisions (a test clock stands in
// for the time between Jobs).
//
// Two "pods" of a StatefulSet, each a docker_auth and a registry on its own loopback address, with
// their volumes in the kubelet's atomic-writer layout (`..data` swapped in one rename) — the
// container paths in the generated configs are pointed at those directories and the listen
// addresses at the pod's own, nothing else changes. A volume sync rewrites a running pod's volumes (docker_auth reloads, the registry does
// not); a roll replaces one pod after the other with fresh volumes, as a RollingUpdate does, taking
// it out of the client's endpoints first. The client takes its token from one pod and pulls from the
// other (a Service balances each connection on its own), so a token must be accepted by every pod.
//
// Token requests are retried on refused or reset connections only: docker_auth 1.14 drops its
// connections while it reloads, which nginx bridges in the pod (issue 11 item 3). Any refused token
// or failed pull is a failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from 'bcryptjs';
import { selfSignedCa, signedCertificate } from '../../functions/certificates.ts';
import { AUTH_CONFIG_FILE, REAL_IP_HEADER, TOKEN_CERT_FILE, TOKEN_CERT_PATH, TOKEN_KEY_FILE, TOKEN_KEY_PATH } from '../../functions/docker-auth-config.ts';
import { registryHostname } from '../../functions/names.ts';
import { REGISTRY_DATA_PATH, TRUSTED_TOKEN_KEYS_PATH } from '../../functions/registry-config.ts';
import { desiredConfigSecrets } from '../../functions/registry-objects.ts';
import {
  TOKEN_KEY_RETENTION_SECONDS,
  TRUSTED_TOKEN_KEYS_FILE,
  decideTokenKeys,
  storedTokenKeys,
  tokenKeyId,
  type StoredTokenKeys,
  type TokenKeyDecision,
  type TokenKeyPair,
  type TokenKeys,
} from '../../functions/token-keys.ts';
import type { V1Secret } from '@kubernetes/client-node';
import { GROUP_VERSION, type ImageRegistry, type ImageRegistryAccount } from '../../functions/types.ts';
import { writeAtomic } from '../support/atomic-writer.ts';
import { authServerUnavailable, testBinaries } from '../support/binaries.ts';
import { newRsaKeyPem } from '../support/pki.ts';
import { selfSignedEcCertificate } from '../support/non-rsa-certificates.ts';
import { delay, installExitHandlers, startProcess, waitFor, type ManagedProcess } from '../support/processes.ts';
import { tokenClaims } from '../support/registry-token.ts';

installExitHandlers();
const assets = await testBinaries();
const authMissing = authServerUnavailable(assets);
if (authMissing) console.log(`SKIP token key renewal: auth_server could not be built: ${authMissing}`);
const withAuth = authMissing ? test.skip : test;

const NAMESPACE = 'infra';
const REPO = `${NAMESPACE}/hello`;
const USER = 'push.infra.app.1';
const PASSWORD = 'token-key-renewal-test';
const registry: ImageRegistry = { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'registry', namespace: NAMESPACE, uid: 'uid-1' }, spec: {} };
const hostname = registryHostname('registry', NAMESPACE, 'svc.example.org');
const account: ImageRegistryAccount = {
  apiVersion: GROUP_VERSION,
  kind: 'ImageRegistryAccount',
  metadata: { name: USER, namespace: NAMESPACE, creationTimestamp: new Date().toISOString() },
  spec: { password: hashSync(PASSWORD, 4), labels: { accessMode: ['push'], namespace: [NAMESPACE], name: ['app'] } },
};
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

interface Pod {
  name: string;
  ip: string;
  authVolume: string;
  trustVolume: string;
  processes: ManagedProcess[];
}

const workDir = mkdtempSync(join(tmpdir(), 'iro-token-keys-'));
const subnet = `127.70.${randomInt(1, 255)}`;
const dataDir = join(workDir, 'data');
const pods: Pod[] = [];
let endpoints: Pod[] = [];
let podGeneration = 0;

// ── the reconcile Job's side: decisions, and the Secrets they write ───────────────────────────────

let stored: StoredTokenKeys = { trusted: [] };
let written: TokenKeys | undefined;

/** Decides as the Job does from what the Secret holds, and "writes" the new state. */
function reconcile(source: TokenKeyPair, now: Date, trustedByAllPods?: readonly string[]): TokenKeyDecision {
  const decision = decideTokenKeys({ source, current: stored, now, ...(trustedByAllPods ? { trustedByAllPods } : {}) });
  written = decision.state;
  stored = storedTokenKeys(podSecrets(undefined).auth);
  return decision;
}

/** The two Secrets as the Job writes them, with the pod's listen addresses (in a cluster: loopback for all). */
function podSecrets(pod: Pod | undefined): { auth: V1Secret; files: Record<string, string>; registryConfig: string } {
  if (!written) throw new Error('nothing reconciled yet');
  const addresses = pod ? { authAddress: `${pod.ip}:5001`, registryAddress: `${pod.ip}:5000` } : {};
  const [auth, reg] = desiredConfigSecrets({ registry, hostname, accounts: [account], now: new Date(), httpSecret: 'shared', tokenKeys: written, ...addresses });
  const decode = (data: Record<string, string> | undefined) => Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  return { auth, files: decode(auth.data), registryConfig: decode(reg.data)['config.yml'] ?? '' };
}

// ── the kubelet's side ────────────────────────────────────────────────────────────────────────────

/** The pod's Secret volumes as the kubelet projects them: all of <r>-auth-config for docker_auth, the JWKS alone for the registry. */
function syncVolumes(pod: Pod): void {
  const { files } = podSecrets(pod);
  const authConfig = (files[AUTH_CONFIG_FILE] ?? '')
    .replaceAll(TOKEN_CERT_PATH, join(pod.authVolume, TOKEN_CERT_FILE))
    .replaceAll(TOKEN_KEY_PATH, join(pod.authVolume, TOKEN_KEY_FILE));
  writeAtomic(pod.authVolume, { ...files, [AUTH_CONFIG_FILE]: authConfig }, { mode: 0o440 });
  writeAtomic(pod.trustVolume, { [TRUSTED_TOKEN_KEYS_FILE]: files[TRUSTED_TOKEN_KEYS_FILE] ?? '' }, { mode: 0o440 });
}

async function startPod(ordinal: number): Promise<Pod> {
  const name = `registry-${ordinal}`;
  const dir = join(workDir, `${name}.${++podGeneration}`);
  const pod: Pod = { name, ip: `${subnet}.${ordinal + 1}`, authVolume: join(dir, 'auth-config'), trustVolume: join(dir, 'trusted-token-keys'), processes: [] };
  syncVolumes(pod);
  // the registry's data is the shared (ReadWriteMany) claim
  const config = podSecrets(pod).registryConfig
    .replaceAll(TRUSTED_TOKEN_KEYS_PATH, join(pod.trustVolume, TRUSTED_TOKEN_KEYS_FILE))
    .replaceAll(REGISTRY_DATA_PATH, dataDir);
  writeFileSync(join(dir, 'config.yml'), config);
  pod.processes.push(startProcess(`${name}/auth`, join(assets, 'auth_server'), ['-logtostderr', join(pod.authVolume, AUTH_CONFIG_FILE)], join(dir, 'auth.log')));
  pod.processes.push(startProcess(`${name}/registry`, join(assets, 'registry'), ['serve', join(dir, 'config.yml')], join(dir, 'registry.log'), { env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' } }));
  pods[ordinal] = pod;
  await waitFor(`${name} ready`, async () => (await get(`http://${pod.ip}:5000/v2/`)).status === 401 && (await get(`http://${pod.ip}:5001/`)).status > 0, 30_000);
  return pod;
}

async function stopPod(pod: Pod): Promise<void> {
  await Promise.all(pod.processes.map((p) => p.stop()));
}

/** A RollingUpdate: highest ordinal first, each out of the endpoints, replaced, ready, back in. */
async function roll(): Promise<void> {
  for (const ordinal of [1, 0]) {
    const old = pods[ordinal] as Pod;
    endpoints = endpoints.filter((p) => p !== old);
    await client.idle();
    await stopPod(old);
    endpoints = [...endpoints, await startPod(ordinal)];
  }
}

// ── the client ────────────────────────────────────────────────────────────────────────────────────

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  try {
    const response = await fetch(url, { headers });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    return { status: 0, body: String((error as Error).cause ?? error) };
  }
}

/** A token from one pod's docker_auth, retried while docker_auth reloads (refused/reset connections). */
async function token(pod: Pod, actions = 'pull'): Promise<{ token: string; retries: number }> {
  const url = `http://${pod.ip}:5001/auth/token?service=${encodeURIComponent(hostname)}&scope=repository:${REPO}:${actions}`;
  const headers = { Authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`, [REAL_IP_HEADER]: '127.0.0.1' };
  for (let retries = 0; ; retries++) {
    const response = await get(url, headers);
    if (response.status === 200) return { token: (JSON.parse(response.body) as { token: string }).token, retries };
    if (response.status !== 0 || retries >= 50) throw new Error(`token from ${pod.name}: HTTP ${response.status} ${response.body.slice(0, 200)}`);
    await delay(100);
  }
}

function kidOf(jwt: string): string {
  return (JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid: string }).kid;
}

async function pullManifest(pod: Pod, jwt: string): Promise<{ status: number; body: string }> {
  return get(`http://${pod.ip}:5000/v2/${REPO}/manifests/v1`, { Authorization: `Bearer ${jwt}`, Accept: OCI_MANIFEST });
}

interface ClientReport {
  iterations: number;
  failures: string[];
  /** the signing key IDs in the order tokens showed them (consecutive repeats collapsed) */
  kids: string[];
  reloadRetries: number;
}

/** Every 200 ms: a token from one pod, a pull of the manifest and its layer from the other; plus the long-lived tokens. */
function startClient(longLived: () => string[]) {
  const report: ClientReport = { iterations: 0, failures: [], kids: [], reloadRetries: 0 };
  let running = true;
  let current: Promise<void> = Promise.resolve();
  const iteration = async (i: number) => {
    const ready = [...endpoints];
    if (ready.length === 0) return;
    const from = ready[i % ready.length] as Pod;
    const to = ready[(i + 1) % ready.length] as Pod;
    try {
      const issued = await token(from);
      report.reloadRetries += issued.retries;
      const kid = kidOf(issued.token);
      if (report.kids.at(-1) !== kid) report.kids.push(kid);
      for (const [what, jwt] of [[`token of ${from.name} (${kid})`, issued.token], ...longLived().map((t) => [`long-lived token (${kidOf(t)})`, t])] as const) {
        const pulled = await pullManifest(to, jwt);
        if (pulled.status !== 200) report.failures.push(`#${i} ${what} at ${to.name}: HTTP ${pulled.status} ${pulled.body.slice(0, 200)}`);
      }
    } catch (error) {
      report.failures.push(`#${i} ${(error as Error).message}`);
    }
    report.iterations++;
  };
  const loop = (async () => {
    for (let i = 0; running; i++) {
      current = iteration(i);
      await Promise.all([current, delay(200)]);
    }
  })();
  return {
    report,
    /** resolves once no iteration is in flight (a pod leaving the endpoints gets no new request) */
    idle: () => current,
    stop: async () => {
      running = false;
      await loop;
      return report;
    },
  };
}
let client: ReturnType<typeof startClient>;

async function pushImage(pod: Pod): Promise<void> {
  const { token: jwt } = await token(pod, 'push,pull');
  const auth = { Authorization: `Bearer ${jwt}` };
  const upload = async (blob: Buffer) => {
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const started = await fetch(`http://${pod.ip}:5000/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: auth });
    const location = new URL(started.headers.get('location') ?? '', `http://${pod.ip}:5000`);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, { method: 'PUT', headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: blob });
    assert.is(put.status, 201, `blob upload: ${await put.text()}`);
    return { digest, size: blob.length };
  };
  const layer = await upload(Buffer.from('a layer that is not a tar; the registry stores bytes'));
  const config = await upload(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
  const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }] };
  const put = await fetch(`http://${pod.ip}:5000/v2/${REPO}/manifests/v1`, { method: 'PUT', headers: { ...auth, 'Content-Type': OCI_MANIFEST }, body: JSON.stringify(manifest) });
  assert.is(put.status, 201, `manifest: ${await put.text()}`);
}

/** Waits until each pod's docker_auth signs with the key (it reloads ~2 s after its volume changed). */
async function waitForSigningKey(kid: string): Promise<void> {
  for (const pod of pods) await waitFor(`${pod.name} signs with ${kid}`, async () => kidOf((await token(pod)).token) === kid, 15_000);
}

// ── the sequence ──────────────────────────────────────────────────────────────────────────────────

withAuth('two renewals (RSA → ECDSA P-256 → ECDSA P-256) under load: no refused token, one roll each, the old key trusted until its tokens expired', async () => {
  const rsaKey = newRsaKeyPem().privateKeyPem;
  const caKey = newRsaKeyPem().privateKeyPem;
  const T0 = new Date();
  const ca = { certPem: selfSignedCa({ commonName: 'test CA', keyPem: caKey, now: T0, serial: '01' }), keyPem: caKey };
  const A: TokenKeyPair = { certPem: signedCertificate({ commonName: 'registry.infra token signer', keyPem: rsaKey, ca, now: T0, serial: '0a', usage: 'signing' }), keyPem: rsaKey };
  const B = selfSignedEcCertificate('registry.infra token signer B');
  const C = selfSignedEcCertificate('registry.infra token signer C');
  const [kidA, kidB, kidC] = [tokenKeyId(A.certPem), tokenKeyId(B.certPem), tokenKeyId(C.certPem)];
  const at = (ms: number) => new Date(T0.getTime() + ms);
  const timeline: string[] = [];
  const step = (decision: TokenKeyDecision) => {
    timeline.push(`${decision.phase}: ${decision.message}`);
    return decision;
  };
  mkdirSync(dataDir, { recursive: true });
  try {
    // a fresh registry: A active and trusted
    assert.is(step(reconcile(A, T0)).phase, 'Initialized');
    endpoints = [await startPod(0), await startPod(1)];
    await pushImage(pods[0] as Pod);
    const tokenA = (await token(pods[0] as Pod)).token;
    assert.is(kidOf(tokenA), kidA);
    assert.is(tokenClaims(tokenA).aud, hostname);
    let longLived = [tokenA];
    client = startClient(() => longLived);
    await delay(1_000);

    // renewal 1: stage B (the pods' docker_auth reload, still signing with A), roll, switch
    assert.is(step(reconcile(B, at(60_000))).phase, 'Staged');
    for (const pod of pods) syncVolumes(pod);
    await delay(2_500);
    assert.is(kidOf((await token(pods[0] as Pod)).token), kidA, 'staged: docker_auth still signs with A');
    assert.is(step(reconcile(B, at(90_000))).phase, 'RolloutPending', 'no switch before the roll');
    await roll();
    assert.is(step(reconcile(B, at(120_000), [kidA, kidB])).phase, 'Switched');
    // the kubelet syncs each pod at its own time: for a while one pod signs with A, the other with B
    syncVolumes(pods[0] as Pod);
    await delay(1_500);
    syncVolumes(pods[1] as Pod);
    await waitForSigningKey(kidB);
    const tokenB = (await token(pods[1] as Pod)).token;
    longLived = [tokenA, tokenB];
    await delay(1_000);

    // a third key right after the switch waits: A's tokens may still be valid
    const deferred = step(reconcile(C, at(180_000)));
    assert.is(deferred.phase, 'Deferred');
    const retention = at(120_000 + TOKEN_KEY_RETENTION_SECONDS * 1000);
    assert.equal(deferred.retryAt, retention);

    // renewal 2, once A's tokens have expired: stage [B, C] (A dropped), roll, switch
    assert.is(step(reconcile(C, retention)).phase, 'Staged');
    longLived = [tokenB]; // tokenA has expired by the test clock
    for (const pod of pods) syncVolumes(pod);
    await roll();
    for (const pod of pods) {
      const refused = await pullManifest(pod, tokenA);
      assert.is(refused.status, 401, `${pod.name}: A is no longer trusted after the second roll`);
    }
    assert.is(step(reconcile(C, new Date(retention.getTime() + 60_000), [kidB, kidC])).phase, 'Switched');
    syncVolumes(pods[1] as Pod);
    await delay(1_500);
    syncVolumes(pods[0] as Pod);
    await waitForSigningKey(kidC);
    await delay(1_000);

    const report = await client.stop();
    const distinct = [...new Set(report.kids)];
    console.log(
      `token key renewal: ${report.iterations} client iterations, ${report.failures.length} failures, ${report.reloadRetries} token requests retried during docker_auth reloads; ` +
        `signing keys in order: ${distinct.join(' → ')} (${report.kids.length - distinct.length} changes back while the pods' volumes synced one after the other)`,
    );
    for (const line of timeline) console.log(`  ${line}`);
    assert.equal(report.failures, []);
    assert.ok(report.iterations >= 30, `${report.iterations} iterations`);
    assert.equal([...new Set(report.kids)], [kidA, kidB, kidC], 'the client saw A, then B, then C');
  } finally {
    await client?.stop();
    await Promise.all(pods.map(stopPod));
  }
});

test.after(() => rmSync(workDir, { recursive: true, force: true }));

test.run();
