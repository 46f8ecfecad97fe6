// `kubectl apply -k ./kustomize` for real, on a fresh cluster of this file's own (no CRDs before, so
// `kubectl delete -k` can take everything away at the end): the README's install lines as
// written, the bootstrap Job and the webhook Deployment from their manifests (the real node's
// kubelet runs the pods from the assembled operator image: command, env from the ConfigMap, the
// TLS Secret volume, probes, securityContext, the projected ServiceAccount token, so missing RBAC
// or a wrong mount fails here), and the API server calling the webhook through the Service named
// in the shipped configurations (its ClusterIP, served by the node's real kube-proxy, to the pods'
// IPs on the node's bridge). Then what happens to admissions while the webhook is rolled, loses a
// pod, renews its certificate, and is gone.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { signedCertificate } from '../../functions/certificates.ts';
import { GROUP_VERSION } from '../../functions/types.ts';
import { webhookDnsNames, WEBHOOK_SERVICE_NAME, WEBHOOK_TLS_SECRET_NAME } from '../../functions/webhook-tls.ts';
import { clusterClientOf, startClusterOnRealNode, type RealNodeCluster, type TestCluster } from '../support/cluster.ts';
import { waitForJob } from '../support/jobs.ts';
import { kubeApi, type KubeApi } from '../support/kube-api.ts';
import { getObject, listObjects, requireObject } from '../support/kubectl.ts';
import { killWebhookPods, webhookPodLogs, WEBHOOK_POD_SELECTOR } from '../support/operator.ts';
import { newRsaKeyPem } from '../support/pki.ts';
import { delay, run, waitFor } from '../support/processes.ts';
import { readmeCommands } from '../support/readme.ts';
import { buildBundles, OPERATOR_ENTRY_POINTS } from '../support/webhook.ts';

const test = suite('kubectl apply -k ./kustomize for real');
const root = fileURLToPath(new URL('../..', import.meta.url));
const NS = 'image-registry-operator';
const DEMO = 'install-demo';
// A real bcrypt hash (cost 10) of a random password nobody knows.
const HASH = '$2b$10$4SCLA.VA7PruOV62oqimyOQYVhg19CPc5v1Hnqv1yvTialynqhFyq';
/** dry-run creates per second of each of our four kinds while the webhook is disturbed */
const ADMISSIONS_PER_KIND_PER_SECOND = 5;
/** the webhook container's port (kustomize/webhook.yaml, the Service's targetPort `https`) */
const WEBHOOK_PORT = 8443;

interface Setup {
  running: RealNodeCluster;
  cluster: TestCluster;
  api: KubeApi;
  /** runs a README line in the repository root, with kubectl on PATH and the cluster's KUBECONFIG */
  shell(command: string): Promise<{ code: number; stdout: string; stderr: string }>;
}
let setup: Promise<Setup> | undefined;

function started(): Promise<Setup> {
  setup ??= (async () => {
    await buildBundles(OPERATOR_ENTRY_POINTS);
    // a second cluster beside the runner's (its own node, network index and Service range). The
    // kubelet's periodic pod sync, which refreshes Secret volumes, every 5 s instead of every minute:
    // the renewal test waits for two of them (the aged certificate, then the renewed one)
    const running = await startClusterOnRealNode({ withoutCrds: true, syncFrequency: '5s' });
    const bin = mkdtempSync(join(tmpdir(), 'iro-install-bin-'));
    symlinkSync(join(running.plane.assetsDir, 'kubectl'), join(bin, 'kubectl'));
    const env = { ...process.env, KUBECONFIG: running.plane.kubeconfig, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    const shell = (command: string) => run('bash', ['-o', 'pipefail', '-c', command], { env, cwd: root, timeoutMs: 300_000 });
    return { running, cluster: clusterClientOf(running), api: kubeApi(running.plane.kubeconfig), shell };
  })();
  return setup;
}

test.after(async () => {
  const s = await setup?.catch(() => undefined);
  s?.api.close();
  await s?.running.stop();
});

// ---------------------------------------------------------------------------------------------
// What the tests look at

interface PodObject {
  metadata: { name: string; uid: string; deletionTimestamp?: string; ownerReferences?: { name: string }[] };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

const isReady = (pod: PodObject) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function webhookPods(cluster: TestCluster): Promise<PodObject[]> {
  return listObjects<PodObject>(cluster, 'pods', NS, { selector: WEBHOOK_POD_SELECTOR });
}

interface WebhookTrust {
  servername: string;
  ca: string;
}

async function webhookTrust(cluster: TestCluster): Promise<WebhookTrust> {
  const secret = await requireObject<{ data: Record<string, string> }>(cluster, 'secret', WEBHOOK_TLS_SECRET_NAME, NS);
  return { servername: webhookDnsNames(NS)[0] as string, ca: Buffer.from(secret.data['ca.crt'] ?? '', 'base64').toString('utf8') };
}

/** The fingerprint of the certificate served at host:port to a client of the API server's kind (the Service's DNS name, the CA of the caBundle). */
function certificateAt(host: string, port: number, trust: WebhookTrust): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, servername: trust.servername, ca: trust.ca }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error(`TLS to ${host}:${port}: no answer in 10 s`)));
    socket.on('error', reject);
  });
}

/**
 * The set of certificates several connections to the Service's ClusterIP get (the route the API
 * server takes). The real kube-proxy (iptables mode) picks a pod at random per connection, so this
 * alone cannot tell that every pod serves a certificate: certificatesOfPods does.
 */
async function servedCertificates(cluster: TestCluster, connections = 6): Promise<Set<string>> {
  const service = await requireObject<{ spec: { clusterIP: string } }>(cluster, 'service', WEBHOOK_SERVICE_NAME, NS);
  const trust = await webhookTrust(cluster);
  const seen = new Set<string>();
  for (let i = 0; i < connections; i++) seen.add(await certificateAt(service.spec.clusterIP, 443, trust));
  return seen;
}

/** The certificate each ready webhook pod serves on its pod IP (routed from the host into the node's bridge), by pod name. */
async function certificatesOfPods(cluster: TestCluster): Promise<Map<string, string>> {
  const trust = await webhookTrust(cluster);
  const pods = (await webhookPods(cluster)).filter((p) => isReady(p) && !p.metadata.deletionTimestamp);
  const served = new Map<string, string>();
  for (const pod of pods) {
    if (!pod.status?.podIP) throw new Error(`webhook pod ${pod.metadata.name} is Ready without a pod IP`);
    served.set(pod.metadata.name, await certificateAt(pod.status.podIP, WEBHOOK_PORT, trust));
  }
  return served;
}

/** Whether both ready webhook pods, and every connection through the Service, serve the certificate with this fingerprint. */
async function allServe(cluster: TestCluster, fingerprint: string): Promise<boolean> {
  const pods = await certificatesOfPods(cluster);
  return pods.size === 2 && [...pods.values()].every((f) => f === fingerprint) && [...(await servedCertificates(cluster))].join() === fingerprint;
}

// ---------------------------------------------------------------------------------------------
// Admissions under way

interface AdmissionLoad {
  /** stops sending, waits for the answers; every admission that did not succeed, with when and why */
  stop(): Promise<{ sent: number; failures: string[]; p50Ms: number; p99Ms: number }>;
}

const KINDS = [
  { plural: 'imageregistries', body: { kind: 'ImageRegistry', spec: {} } },
  { plural: 'imageregistryaccounts', body: { kind: 'ImageRegistryAccount', spec: { password: HASH, labels: { accessMode: ['push'], namespace: [DEMO] } } } },
  { plural: 'imagepushsecrets', body: { kind: 'ImagePushSecret', spec: { registryRef: { name: 'registry' } } } },
  { plural: 'imagepullsecrets', body: { kind: 'ImagePullSecret', spec: { registryRef: { name: 'registry' } } } },
];

/** Dry-run creates of each of our kinds, evenly spread, each one through both webhooks. */
function admissionLoad(api: KubeApi, namespace: string, perKindPerSecond: number): AdmissionLoad {
  const started = Date.now();
  const failures: string[] = [];
  const latencies: number[] = [];
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  const send = (kind: (typeof KINDS)[number]) => {
    const at = Date.now();
    const path = `/apis/${GROUP_VERSION}/namespaces/${namespace}/${kind.plural}?dryRun=All`;
    const body = { apiVersion: GROUP_VERSION, ...kind.body, metadata: { generateName: 'load-' } };
    const request = api.request<{ message?: string }>('POST', path, body).then(
      (response) => {
        latencies.push(Date.now() - at);
        if (response.status !== 201) failures.push(`+${((at - started) / 1000).toFixed(1)} s ${kind.body.kind}: ${response.status} ${response.body?.message ?? ''}`);
      },
      (error: Error) => void failures.push(`+${((at - started) / 1000).toFixed(1)} s ${kind.body.kind}: ${error.message}`),
    ).finally(() => inFlight.delete(request));
    inFlight.add(request);
    sent += 1;
  };
  const timer = setInterval(() => send(KINDS[sent % KINDS.length] as (typeof KINDS)[number]), 1000 / (perKindPerSecond * KINDS.length));
  return {
    stop: async () => {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      const sorted = [...latencies].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
      return { sent, failures, p50Ms: at(0.5), p99Ms: at(0.99) };
    },
  };
}

/** Runs the disturbance under a steady admission load, `afterMs` more of it, and asserts that not one admission failed. */
async function noAdmissionFails(s: Setup, what: string, disturbance: () => Promise<void>, afterMs = 3_000): Promise<void> {
  const load = admissionLoad(s.api, DEMO, ADMISSIONS_PER_KIND_PER_SECOND);
  await delay(2_000);
  try {
    await disturbance();
    await delay(afterMs);
  } finally {
    const result = await load.stop();
    console.log(`${what}: ${result.sent} admissions, ${result.failures.length} failed, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms`);
    assert.ok(result.sent >= 50, `${result.sent} admissions sent`);
    assert.equal(result.failures, [], `${result.failures.length} of ${result.sent} admissions failed during ${what}:\n${result.failures.join('\n')}`);
  }
}

async function rolledOut(s: Setup): Promise<void> {
  const status = await s.shell(`kubectl -n ${NS} rollout status deployment/${WEBHOOK_SERVICE_NAME} --timeout=180s`);
  assert.is(status.code, 0, status.stderr);
  await waitFor('two ready webhook pods', async () => (await webhookPods(s.cluster)).filter((p) => isReady(p) && !p.metadata.deletionTimestamp).length === 2, 60_000);
}

// ---------------------------------------------------------------------------------------------

test("the README's install lines run as written: bootstrap Job Complete, webhook Deployment Available", async () => {
  const s = await started();
  const commands = readmeCommands('install');
  assert.ok(commands.some((c) => c.startsWith('kubectl apply -k ./kustomize')), commands.join('\n'));
  const startedAt = Date.now();
  for (const command of commands) {
    const result = await s.shell(command);
    assert.is(result.code, 0, `${command}\n${result.stdout}\n${result.stderr}`);
  }
  console.log(`install: Deployment available ${((Date.now() - startedAt) / 1000).toFixed(1)} s after kubectl apply -k`);
  const deployment = await requireObject<{ status: { conditions?: { type: string; status: string }[]; availableReplicas?: number } }>(s.cluster, 'deployment', WEBHOOK_SERVICE_NAME, NS);
  assert.ok(deployment.status.conditions?.some((c) => c.type === 'Available' && c.status === 'True'));
  assert.is(deployment.status.availableReplicas, 2);
  const pods = await webhookPods(s.cluster);
  assert.is(pods.filter(isReady).length, 2, 'both replicas ready');
  // the pods serve the certificate the bootstrap Job made, for the Service name the API server dials
  const secret = await requireObject<{ data: Record<string, string> }>(s.cluster, 'secret', WEBHOOK_TLS_SECRET_NAME, NS);
  const made = new X509Certificate(Buffer.from(secret.data['tls.crt'] ?? '', 'base64')).fingerprint256;
  assert.equal([...(await servedCertificates(s.cluster))], [made]);
  const ofPods = await certificatesOfPods(s.cluster);
  assert.is(ofPods.size, 2, 'both pods answer TLS on their pod IPs');
  assert.equal([...new Set(ofPods.values())], [made], 'each pod serves it');
});

test('a CR applied with kubectl is defaulted and validated by the webhook pods through the Service, and its reconcile Job runs', async () => {
  const s = await started();
  assert.is((await s.cluster.kubectl(['create', 'namespace', DEMO])).code, 0);
  const applied = await s.cluster.kubectl(['apply', '-f', '-'], { namespace: DEMO, input: JSON.stringify({ apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: { name: 'registry' }, spec: {} }) });
  assert.is(applied.code, 0, applied.stderr);
  const stored = await requireObject<{ metadata: { uid: string }; spec: { replicas?: number; auth?: { acl?: unknown[] } } }>(s.cluster, 'imageregistry', 'registry', DEMO);
  assert.is(stored.spec.replicas, 1, 'defaulted by the mutating webhook');
  assert.ok((stored.spec.auth?.acl?.length ?? 0) > 0, 'the default ACL made explicit');
  // a change only the validating webhook refuses (the schema allows it): a push secret moved to another registry
  const pushSecret = (registry: string) => JSON.stringify({ apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'moved' }, spec: { registryRef: { name: registry } } });
  const first = await s.cluster.kubectl(['apply', '-f', '-'], { namespace: DEMO, input: pushSecret('registry') });
  assert.is(first.code, 0, first.stderr);
  const refused = await s.cluster.kubectl(['apply', '-f', '-'], { namespace: DEMO, input: pushSecret('another') });
  assert.is.not(refused.code, 0);
  assert.match(refused.stderr, 'spec.registryRef.name: is immutable once set');
  // kubectl prints the webhook's causes as it prints the schema's: the pods' logs say who decided
  const logs = (await webhookPodLogs(s.cluster)).split('\n');
  const logged = (webhook: string, result: string, name: string) =>
    logs.some((line) => line.includes(`"webhook":"${webhook}"`) && line.includes(`"result":"${result}"`) && line.includes(`"namespace":"${DEMO}"`) && line.includes(`"name":"${name}"`));
  assert.ok(logged('mutate', 'patched', 'registry') || logged('mutate', 'unchanged', 'registry'), logs.join('\n'));
  assert.ok(logged('validate', 'denied', 'moved'), logs.join('\n'));
  // the webhook enqueued the registry's reconcile Job (its ServiceAccount may create Jobs); the
  // Job controller makes its pod and the node's kubelet runs it
  await waitFor('the reconcile Job of the new registry to run', async () => {
    const jobs = await listObjects<{ metadata: { name: string }; status?: { startTime?: string } }>(s.cluster, 'jobs', NS);
    const job = jobs.find((j) => j.metadata.name.startsWith(`reconcile-${DEMO}-registry-`));
    if (!job?.status?.startTime) return false;
    const pods = await listObjects<PodObject>(s.cluster, 'pods', NS, { selector: `job-name=${job.metadata.name}` });
    return pods.some((p) => p.status?.phase === 'Running' || p.status?.phase === 'Succeeded');
  }, 60_000);
});

test('no admission fails during kubectl rollout restart of the webhook', async () => {
  const s = await started();
  const before = new Set((await webhookPods(s.cluster)).map((p) => p.metadata.uid));
  await noAdmissionFails(s, 'rollout restart', async () => {
    const restart = await s.shell(`kubectl -n ${NS} rollout restart deployment/${WEBHOOK_SERVICE_NAME}`);
    assert.is(restart.code, 0, restart.stderr);
    await rolledOut(s);
    assert.ok((await webhookPods(s.cluster)).filter((p) => isReady(p) && !p.metadata.deletionTimestamp).every((p) => !before.has(p.metadata.uid)), 'two new pods serve');
    // the old pods drain meanwhile: they go once the API server closed its connections to them
    // (after their `Connection: close` answers, or its 90 s idle timeout); the load goes on over that
  }, 15_000);
});

test('no admission fails while one webhook pod is deleted and replaced', async () => {
  const s = await started();
  const [victim] = await webhookPods(s.cluster);
  assert.ok(victim);
  await noAdmissionFails(s, 'pod deletion', async () => {
    const deleted = await s.cluster.kubectl(['delete', 'pod', victim.metadata.name, '--wait=false'], { namespace: NS });
    assert.is(deleted.code, 0, deleted.stderr);
    await rolledOut(s);
  }, 15_000);
});

test("no admission fails while the webhook's serving certificate is renewed by its CronJob", async () => {
  const s = await started();
  const secret = await requireObject<{ data: Record<string, string> }>(s.cluster, 'secret', WEBHOOK_TLS_SECRET_NAME, NS);
  const decoded = (key: string) => Buffer.from(secret.data[key] ?? '', 'base64').toString('utf8');
  // a certificate of the same CA that has passed 2/3 of its life: the renewal is due
  const aged = { keyPem: newRsaKeyPem().privateKeyPem };
  const agedPem = signedCertificate({
    commonName: webhookDnsNames(NS)[0] as string, dnsNames: webhookDnsNames(NS), keyPem: aged.keyPem,
    ca: { certPem: decoded('ca.crt'), keyPem: decoded('ca.key') }, now: new Date(Date.now() - 61 * 86_400_000), serial: '7e57', validDays: 90, usage: 'server',
  });
  const agedFingerprint = new X509Certificate(agedPem).fingerprint256;
  await noAdmissionFails(s, 'certificate renewal', async () => {
    const patch = { data: { 'tls.crt': Buffer.from(agedPem).toString('base64'), 'tls.key': Buffer.from(aged.keyPem).toString('base64') } };
    const patched = await s.cluster.kubectl(['patch', 'secret', WEBHOOK_TLS_SECRET_NAME, '--type=merge', '-p', JSON.stringify(patch)], { namespace: NS });
    assert.is(patched.code, 0, patched.stderr);
    await waitFor('both pods serving the aged certificate', () => allServe(s.cluster, agedFingerprint), 60_000);
    const created = await s.cluster.kubectl(['create', 'job', '--from=cronjob/image-registry-operator-webhook-tls', 'renew-now'], { namespace: NS });
    assert.is(created.code, 0, created.stderr);
    const job = await waitForJob(s.cluster, NS, 'renew-now', 90_000);
    assert.is(job.result, 'Complete', job.logs);
    const written = await requireObject<{ data: Record<string, string> }>(s.cluster, 'secret', WEBHOOK_TLS_SECRET_NAME, NS);
    const renewedFingerprint = new X509Certificate(Buffer.from(written.data['tls.crt'] ?? '', 'base64')).fingerprint256;
    assert.is.not(renewedFingerprint, agedFingerprint, 'the Job wrote a new certificate');
    await waitFor('both pods serving the renewed certificate', () => allServe(s.cluster, renewedFingerprint), 60_000);
  });
  const renewed = await requireObject<{ data: Record<string, string> }>(s.cluster, 'secret', WEBHOOK_TLS_SECRET_NAME, NS);
  assert.is(renewed.data['ca.crt'], secret.data['ca.crt'], 'the CA and so the caBundle stayed');
  assert.match(await webhookPodLogs(s.cluster), 'TLS certificate reloaded');
});

test("with both webhook pods gone our CRs are refused naming the webhook's Service; other objects are still created", async () => {
  const s = await started();
  // scaled to 0 and crashed while draining (a draining pod would go on serving for up to 90 s)
  await killWebhookPods(s.cluster);
  const refused = await s.cluster.kubectl(['create', '-f', '-'], { namespace: DEMO, input: JSON.stringify({ apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'while-down' }, spec: {} }) });
  assert.is.not(refused.code, 0, 'refused (failurePolicy: Fail)');
  assert.match(refused.stderr, `${WEBHOOK_SERVICE_NAME}.${NS}.svc`);
  const configMap = await s.cluster.kubectl(['create', 'configmap', 'while-down', '--from-literal=a=b'], { namespace: DEMO });
  assert.is(configMap.code, 0, configMap.stderr);
  const pod = await s.cluster.kubectl(['run', 'while-down', '--image=busybox', '--restart=Never', '--', 'true'], { namespace: DEMO });
  assert.is(pod.code, 0, pod.stderr);
  const back = await s.cluster.kubectl(['scale', `deployment/${WEBHOOK_SERVICE_NAME}`, '--replicas=2'], { namespace: NS });
  assert.is(back.code, 0, back.stderr);
  await rolledOut(s);
  const created = await s.cluster.kubectl(['create', '-f', '-'], { namespace: DEMO, input: JSON.stringify({ apiVersion: GROUP_VERSION, kind: 'ImagePullSecret', metadata: { name: 'after' }, spec: {} }) });
  assert.is(created.code, 0, created.stderr);
});

test("kubectl delete -k ./kustomize (the README's uninstall line) removes everything it installed and what the toolkit made", async () => {
  const s = await started();
  const rendered = await s.cluster.kubectl(['kustomize', join(root, 'kustomize')]);
  assert.is(rendered.code, 0, rendered.stderr);
  const owned = await s.cluster.kubectl(['get', 'statefulsets,services,secrets,configmaps,poddisruptionbudgets', '-o', 'name', '-l', 'app.kubernetes.io/managed-by=image-registry-operator'], { namespace: DEMO });
  assert.match(owned.stdout, 'statefulset.apps/registry', 'the registry the toolkit made');
  for (const command of readmeCommands('uninstall')) {
    const result = await s.shell(command);
    assert.is(result.code, 0, `${command}\n${result.stdout}\n${result.stderr}`);
  }
  const left = await s.cluster.kubectl(['get', '-f', '-', '--ignore-not-found', '-o', 'name'], { input: rendered.stdout });
  assert.is(left.stdout.trim(), '', `left after kubectl delete -k:\n${left.stdout}${left.stderr}`);
  assert.is(await getObject(s.cluster, 'namespace', NS), undefined);
  assert.is(await getObject(s.cluster, 'mutatingwebhookconfiguration', 'image-registry-operator'), undefined);
  // the registry's objects go with its CR (ownerReferences; the garbage collector)
  await waitFor('the registry objects collected', async () => {
    const now = await s.cluster.kubectl(['get', ...owned.stdout.split('\n').filter(Boolean), '--ignore-not-found', '-o', 'name'], { namespace: DEMO });
    return owned.stdout.trim() !== '' && now.code === 0 && now.stdout.trim() === '';
  }, 90_000);
  // kept on purpose (deleteClaim: false, the default): the images
  const claims = await s.cluster.kubectl(['get', 'pvc', '-o', 'name', '-l', 'app.kubernetes.io/managed-by=image-registry-operator'], { namespace: DEMO });
  assert.is(claims.stdout.trim(), 'persistentvolumeclaim/data-registry-0', claims.stderr);
  const configMap = await s.cluster.kubectl(['create', 'configmap', 'after-uninstall'], { namespace: DEMO });
  assert.is(configMap.code, 0, configMap.stderr);
});

test.run();
