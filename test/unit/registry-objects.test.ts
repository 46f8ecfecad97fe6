import { load } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1Container, V1PodSpec, V1Secret } from '@kubernetes/client-node';
import { NGINX_START_SCRIPT, nginxConfig, nginxConfigFiles } from '../../functions/nginx-config.ts';
import { operatorConfigFromEnv } from '../../functions/operator-config.ts';
import { registryConfig } from '../../functions/registry-config.ts';
import {
  desiredDataClaim,
  ROLLOUT_CHECKSUM_ANNOTATION,
  desiredCertificate,
  desiredConfigSecrets,
  desiredNginxConfigMap,
  desiredPodDisruptionBudget,
  desiredService,
  desiredStatefulSet,
  desiredTlsSecret,
  registryOwnerReference,
  rolloutAnnotations,
} from '../../functions/registry-objects.ts';
import { trustedTokenKey, trustedTokenKeysDocument, type TokenKeys } from '../../functions/token-keys.ts';
import type { ImageRegistry, ImageRegistryAccount } from '../../functions/types.ts';
import { newRsaKeyPem } from '../support/pki.ts';
import { selfSignedEcCertificate } from '../support/non-rsa-certificates.ts';
import { selfSignedCa } from '../../functions/certificates.ts';

const config = operatorConfigFromEnv({ OPERATOR_IMAGE_NGINX: 'mirror/nginx:1', OPERATOR_IMAGE_REGISTRY: 'mirror/registry:3', OPERATOR_IMAGE_AUTH: 'mirror/auth:1' });
const hostname = 'registry.infra.svc.example.org';
const labels = {
  'app.kubernetes.io/name': 'image-registry',
  'app.kubernetes.io/instance': 'registry',
  'app.kubernetes.io/managed-by': 'image-registry-operator',
};
const owner = {
  apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
  kind: 'ImageRegistry',
  name: 'registry',
  uid: 'uid-1',
  controller: true,
  blockOwnerDeletion: true,
};

function registry(spec: ImageRegistry['spec'] = {}): ImageRegistry {
  return { apiVersion: 'registry.mgoltzsche.github.com/v1alpha1', kind: 'ImageRegistry', metadata: { name: 'registry', namespace: 'infra', uid: 'uid-1', generation: 1 }, spec };
}

const options = { tlsSecretName: 'registry-tls', templateAnnotations: { [ROLLOUT_CHECKSUM_ANNOTATION]: 'abc' } };
const sts = desiredStatefulSet(registry(), config, options);
const pod = sts.spec?.template.spec as V1PodSpec;
const container = (name: string): V1Container => {
  const found = pod.containers.find((c) => c.name === name);
  assert.ok(found, name);
  return found as V1Container;
};
// Where each container sees which volume (and, for projected keys, which files).
function mounts(name: string): Record<string, string> {
  return Object.fromEntries((container(name).volumeMounts ?? []).map((m) => [m.mountPath, m.subPath ? `${m.name}:${m.subPath}` : m.name]));
}

test('desiredStatefulSet: identity, owner, selector, replicas, rollout annotations', () => {
  assert.is(sts.apiVersion, 'apps/v1');
  assert.is(sts.kind, 'StatefulSet');
  assert.equal(sts.metadata, { name: 'registry', namespace: 'infra', labels, ownerReferences: [owner] });
  assert.is(sts.spec?.replicas, 1);
  assert.is(sts.spec?.serviceName, 'registry');
  assert.equal(sts.spec?.selector.matchLabels, { 'app.kubernetes.io/name': 'image-registry', 'app.kubernetes.io/instance': 'registry' });
  assert.equal(sts.spec?.template.metadata?.labels, labels);
  // the rollout checksum, and where annotation-based Prometheus scrape configs find the metrics port
  assert.equal(sts.spec?.template.metadata?.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '5080', 'prometheus.io/path': '/metrics', [ROLLOUT_CHECKSUM_ANNOTATION]: 'abc' });
  assert.is(desiredStatefulSet(registry({ replicas: 3 }), config, options).spec?.replicas, 3);
  assert.is(pod.automountServiceAccountToken, false);
  assert.is(pod.enableServiceLinks, false, 'no REGISTRY_* service variables for distribution to misread');
});

test('desiredStatefulSet: three containers with the configured stock images and commands', () => {
  assert.equal(pod.containers.map((c) => [c.name, c.image]), [
    ['nginx', 'mirror/nginx:1'],
    ['registry', 'mirror/registry:3'],
    ['auth', 'mirror/auth:1'],
  ]);
  // sh picks the config for the node's kernel, then execs nginx (PID 1, the stop signal reaches it)
  assert.equal(container('nginx').command, ['sh', '-c', NGINX_START_SCRIPT, 'nginx-start', '/proc/net/if_inet6', '/etc/nginx/nginx.conf', '/etc/nginx/nginx-ipv4.conf']);
  assert.match(NGINX_START_SCRIPT, /^if \[ -f "\$1" \]; then conf="\$2"; else conf="\$3";/);
  assert.ok(NGINX_START_SCRIPT.endsWith(`exec nginx -e stderr -c "$conf" -g 'daemon off;'`), NGINX_START_SCRIPT);
  assert.is(container('nginx').args, undefined);
  assert.equal(container('nginx').ports, [{ name: 'https', containerPort: 8443, protocol: 'TCP' }, { name: 'metrics', containerPort: 5080, protocol: 'TCP' }]);
  assert.equal(container('registry').args, ['serve', '/etc/docker/registry/config.yml']);
  assert.equal(container('registry').env, [{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }]);
  assert.is(container('auth').command, undefined, 'the image entrypoint is auth_server');
  assert.equal(container('auth').args, ['-logtostderr', '/config/auth_config.yml']);
  for (const c of pod.containers) {
    assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory, `${c.name} resources`);
  }
});

test('desiredStatefulSet: volumes at the container paths, each container only what it needs', () => {
  assert.equal(mounts('nginx'), {
    '/etc/nginx/nginx.conf': 'nginx-config:nginx.conf',
    '/etc/nginx/nginx-ipv4.conf': 'nginx-config:nginx-ipv4.conf',
    '/etc/nginx/tls': 'tls',
    '/etc/nginx/maintenance': 'maintenance',
    '/tmp': 'tmp',
  });
  // nothing but /tmp is writable: the start script writes nothing, nginx its temp files in /tmp
  assert.equal((container('nginx').volumeMounts ?? []).filter((m) => !m.readOnly).map((m) => m.mountPath), ['/tmp']);
  assert.is(container('nginx').securityContext?.readOnlyRootFilesystem, true);
  assert.equal(mounts('registry'), { '/etc/docker/registry': 'registry-config', '/etc/registry-auth': 'trusted-token-keys', '/var/lib/registry': 'data' });
  assert.equal(mounts('auth'), { '/config': 'auth-config' }, 'config and signing key in one volume: they change together');
  const volumes = Object.fromEntries((pod.volumes ?? []).map((v) => [v.name, v]));
  assert.equal(volumes['nginx-config']?.configMap?.name, 'registry-nginx');
  assert.is(volumes.tls?.secret?.secretName, 'registry-tls');
  assert.equal(volumes.tls?.secret?.items?.map((i) => i.path), ['tls.crt', 'tls.key']);
  assert.is(volumes['registry-config']?.secret?.secretName, 'registry-registry-config');
  assert.is(volumes['auth-config']?.secret?.secretName, 'registry-auth-config');
  assert.is(volumes['auth-config']?.secret?.items, undefined, 'docker_auth: auth_config.yml, token.crt, token.key');
  assert.is(volumes['trusted-token-keys']?.secret?.secretName, 'registry-auth-config');
  assert.equal(volumes['trusted-token-keys']?.secret?.items?.map((i) => i.path), ['trusted-token-keys.jwks'], 'the registry never sees the token key');
  assert.not.ok(pod.volumes?.some((v) => v.secret?.secretName === 'registry-auth-tls'), 'the source key pair reaches the pod only through the auth config');
  assert.ok(volumes.tmp?.emptyDir);
  assert.equal(volumes.maintenance?.configMap, { name: 'registry-maintenance', optional: true, defaultMode: 0o444 }, 'the freeze ConfigMap exists only around maintenance');
  assert.is(volumes.tls?.secret?.defaultMode, 0o440);
  const custom = desiredStatefulSet(registry(), config, { tlsSecretName: 'mine' }).spec?.template.spec?.volumes ?? [];
  assert.is(custom.find((v) => v.name === 'tls')?.secret?.secretName, 'mine');
});

// The checks of the Pod Security Standard "restricted" profile (v1.2x+) that apply to this spec.
function restrictedViolations(spec: V1PodSpec): string[] {
  const problems: string[] = [];
  const podSc = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push('host namespaces');
  for (const v of spec.volumes ?? []) {
    const allowed = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
    const kinds = Object.keys(v).filter((k) => k !== 'name');
    if (!kinds.every((k) => allowed.includes(k))) problems.push(`volume ${v.name}: ${kinds}`);
  }
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) problems.push(`${c.name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${c.name}: allowPrivilegeEscalation`);
    if (!sc.capabilities?.drop?.includes('ALL')) problems.push(`${c.name}: capabilities.drop ALL`);
    if ((sc.capabilities?.add ?? []).some((cap) => cap !== 'NET_BIND_SERVICE')) problems.push(`${c.name}: capabilities.add`);
    if (!(sc.runAsNonRoot ?? podSc.runAsNonRoot)) problems.push(`${c.name}: runAsNonRoot`);
    if ((sc.runAsUser ?? podSc.runAsUser) === 0) problems.push(`${c.name}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') problems.push(`${c.name}: seccompProfile`);
    if ((c.ports ?? []).some((p) => p.hostPort)) problems.push(`${c.name}: hostPort`);
  }
  return problems;
}

test('desiredStatefulSet: restricted PodSecurity, read-only root, distinct non-root users', () => {
  assert.equal(restrictedViolations(pod), []);
  assert.equal(pod.containers.map((c) => c.securityContext?.runAsUser), [101, 1000, 65534]);
  assert.ok(pod.containers.every((c) => c.securityContext?.readOnlyRootFilesystem === true));
  assert.is(pod.securityContext?.fsGroup, 1000, 'the registry user can write the PVC');
  // The checker itself catches a violation.
  const broken = structuredClone(pod);
  delete broken.containers[0]?.securityContext?.capabilities;
  assert.equal(restrictedViolations(broken), ['nginx: capabilities.drop ALL']);
});

test('desiredStatefulSet: probes go through nginx over HTTPS (registry and auth listen on loopback)', () => {
  const probe = (name: string, kind: 'readinessProbe' | 'livenessProbe') => container(name)[kind]?.httpGet;
  assert.equal(probe('nginx', 'readinessProbe'), { path: '/health', port: 8443, scheme: 'HTTPS' });
  assert.equal(probe('nginx', 'livenessProbe'), { path: '/health', port: 8443, scheme: 'HTTPS' });
  assert.equal(probe('registry', 'readinessProbe'), { path: '/health/registry', port: 8443, scheme: 'HTTPS' });
  assert.equal(probe('auth', 'readinessProbe'), { path: '/health/auth', port: 8443, scheme: 'HTTPS' });
  // A liveness probe through nginx would restart a healthy registry when nginx fails.
  assert.is(container('registry').livenessProbe, undefined);
  assert.is(container('auth').livenessProbe, undefined);
});

test('desiredStatefulSet: every replica mounts the one data claim; no per-pod claim templates', () => {
  assert.is(sts.spec?.volumeClaimTemplates, undefined);
  assert.is(sts.spec?.persistentVolumeClaimRetentionPolicy, undefined);
  const two = desiredStatefulSet(registry({ replicas: 2, persistentVolumeClaim: { accessModes: ['ReadWriteMany'] } }), config, options);
  const data = two.spec?.template.spec?.volumes?.find((v) => v.name === 'data');
  assert.equal(data, { name: 'data', persistentVolumeClaim: { claimName: 'data-registry-0' } });
});

test('desiredStatefulSet with a bucket: no data volume, credentials as secretKeyRef env, soft spreading, its ServiceAccount', () => {
  const bucket = registry({ replicas: 2, storage: { s3: { bucket: 'images', endpoint: 'http://127.0.0.9:7070', credentialsSecret: { name: 'creds' }, serviceAccountName: 'registry-s3' } } });
  const spec = desiredStatefulSet(bucket, config, options).spec?.template.spec as V1PodSpec;
  assert.not.ok(spec.volumes?.some((v) => v.persistentVolumeClaim), 'no claim');
  const registryContainer = spec.containers.find((c) => c.name === 'registry');
  assert.not.ok(registryContainer?.volumeMounts?.some((m) => m.mountPath === '/var/lib/registry'));
  assert.equal(registryContainer?.env?.filter((e) => e.valueFrom).map((e) => [e.name, e.valueFrom?.secretKeyRef?.name, e.valueFrom?.secretKeyRef?.key]), [
    ['REGISTRY_STORAGE_S3_ACCESSKEY', 'creds', 'AWS_ACCESS_KEY_ID'],
    ['REGISTRY_STORAGE_S3_SECRETKEY', 'creds', 'AWS_SECRET_ACCESS_KEY'],
  ]);
  for (const other of spec.containers.filter((c) => c.name !== 'registry')) assert.not.ok(other.env?.some((e) => e.valueFrom), `${other.name} gets no credentials`);
  assert.equal(spec.topologySpreadConstraints?.map((t) => [t.topologyKey, t.whenUnsatisfiable, t.maxSkew]), [['kubernetes.io/hostname', 'ScheduleAnyway', 1], ['topology.kubernetes.io/zone', 'ScheduleAnyway', 1]]);
  assert.is(spec.serviceAccountName, 'registry-s3');
  assert.is(spec.automountServiceAccountToken, false);
  assert.equal(restrictedViolations(spec), []);
  assert.is(pod.topologySpreadConstraints, undefined, "a volume registry's template stays as it was");
  assert.is(pod.serviceAccountName, undefined);
});

test('desiredConfigSecrets with a bucket: config.yml has the s3 driver and no credentials', () => {
  const bucket = registry({ storage: { s3: { bucket: 'images', credentialsSecret: { name: 'creds' } } } });
  const [, registrySecret] = desiredConfigSecrets({ registry: bucket, hostname, accounts: [], now: new Date(0), httpSecret: 'h', tokenKeys });
  const text = Buffer.from(registrySecret.data?.['config.yml'] ?? '', 'base64').toString('utf8');
  const parsed = load(text) as Record<string, any>;
  assert.is(parsed.storage.s3.bucket, 'images');
  assert.equal(parsed.storage.redirect, { disable: true });
  assert.is(parsed.storage.filesystem, undefined);
  assert.not.match(text, /accesskey|secretkey/i);
});

test('desiredPodDisruptionBudget: at most one registry pod away by a drain', () => {
  const pdb = desiredPodDisruptionBudget(registry({ replicas: 3 }));
  assert.equal(pdb.metadata, { name: 'registry', namespace: 'infra', labels, ownerReferences: [owner] });
  assert.equal(pdb.spec, { maxUnavailable: 1, selector: { matchLabels: { 'app.kubernetes.io/name': 'image-registry', 'app.kubernetes.io/instance': 'registry' } } });
});

test('desiredDataClaim: named as pod 0\'s claim of earlier versions, from spec.persistentVolumeClaim; owned only with deleteClaim', () => {
  const claim = desiredDataClaim(registry());
  assert.equal(claim.metadata, { name: 'data-registry-0', namespace: 'infra', labels });
  assert.equal(claim.spec, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } });

  const custom = desiredDataClaim(registry({ replicas: 2, persistentVolumeClaim: { storageClassName: 'fast', resources: { requests: { storage: '100Gi' } }, deleteClaim: true } }));
  assert.equal(custom.spec, { accessModes: ['ReadWriteMany'], storageClassName: 'fast', resources: { requests: { storage: '100Gi' } } });
  assert.equal(custom.metadata?.ownerReferences, [owner], 'deleting the registry deletes the claim');
  assert.is(desiredDataClaim(registry({ persistentVolumeClaim: { deleteClaim: false } })).metadata?.ownerReferences, undefined);
  assert.equal(desiredDataClaim(registry({ persistentVolumeClaim: { accessModes: ['ReadWriteOncePod'] } })).spec?.accessModes, ['ReadWriteOncePod']);
});

test('desiredService: LoadBalancer 443 → 8443 with the external-dns hostname', () => {
  const svc = desiredService(registry(), hostname);
  assert.equal(svc.metadata, {
    name: 'registry',
    namespace: 'infra',
    labels,
    ownerReferences: [owner],
    annotations: { 'external-dns.alpha.kubernetes.io/hostname': hostname },
  });
  assert.is(svc.spec?.type, 'LoadBalancer');
  assert.equal(svc.spec?.ports, [{ name: 'https', protocol: 'TCP', port: 443, targetPort: 8443 }]);
  assert.equal(svc.spec?.selector, sts.spec?.selector.matchLabels);
  assert.is(svc.spec?.externalTrafficPolicy, 'Local');
});

const decode = (secret: V1Secret, key: string): string => Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');
const account = (name: string): ImageRegistryAccount => ({
  apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
  kind: 'ImageRegistryAccount',
  metadata: { name, namespace: 'infra', creationTimestamp: '2025-01-01T00:00:00Z' },
  spec: { password: '$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy', labels: { accessMode: ['push'] } },
});

// A token key state as the reconcile Job passes it (functions/token-keys.ts decides it).
const now0 = new Date('2025-01-02T00:00:00Z');
const rsaTokenKey = newRsaKeyPem().privateKeyPem;
const rsaToken = { certPem: selfSignedCa({ commonName: 'token signer', keyPem: rsaTokenKey, now: now0, serial: '01' }), keyPem: rsaTokenKey };
const tokenKeys: TokenKeys = { active: rsaToken, trusted: [trustedTokenKey(rsaToken.certPem)] };

test('desiredConfigSecrets: auth_config.yml with the token key, and config.yml, in owned Opaque Secrets', () => {
  const now = now0;
  const [auth, reg] = desiredConfigSecrets({ registry: registry(), hostname, accounts: [account('static')], now, httpSecret: 'stable', tokenKeys });
  assert.equal(auth.metadata, { name: 'registry-auth-config', namespace: 'infra', labels, ownerReferences: [owner] });
  assert.is(auth.type, 'Opaque');
  assert.equal(Object.keys(auth.data ?? {}), ['auth_config.yml', 'token.crt', 'token.key', 'trusted-token-keys.jwks']);
  assert.equal([decode(auth, 'token.crt'), decode(auth, 'token.key')], [rsaToken.certPem, rsaToken.keyPem]);
  assert.is(decode(auth, 'trusted-token-keys.jwks'), trustedTokenKeysDocument(tokenKeys.trusted));
  const authConfig = load(decode(auth, 'auth_config.yml')) as any;
  assert.equal(Object.keys(authConfig.users), ['static']);
  assert.is(authConfig.token.issuer, `https://${hostname}/auth/token`);
  assert.equal([authConfig.token.certificate, authConfig.token.key], ['/config/token.crt', '/config/token.key'], 'next to auth_config.yml in the same volume');
  assert.is(authConfig.token.disable_legacy_key_id, true, 'RSA: RFC 7638 key IDs');
  assert.is(reg.metadata?.name, 'registry-registry-config');
  assert.equal(Object.keys(reg.data ?? {}), ['config.yml']);
  const regConfig = load(decode(reg, 'config.yml')) as any;
  assert.is(regConfig.http.secret, 'stable');
  assert.is(regConfig.auth.token.service, hostname);
  assert.is(regConfig.auth.token.jwks, '/etc/registry-auth/trusted-token-keys.jwks');

  // an ECDSA key: docker_auth names it by its libtrust key ID (see token-keys.ts)
  const ec = selfSignedEcCertificate('ec signer');
  const [authEc] = desiredConfigSecrets({ registry: registry(), hostname, accounts: [], now, httpSecret: 'stable', tokenKeys: { active: ec, trusted: [trustedTokenKey(ec.certPem)] } });
  assert.is((load(decode(authEc, 'auth_config.yml')) as any).token.disable_legacy_key_id, false);

  const [auth2, reg2] = desiredConfigSecrets({ registry: registry(), hostname, accounts: [], now, httpSecret: 'stable', tokenKeys, authAddress: '127.0.0.5:5001', registryAddress: '127.0.0.5:5000' });
  assert.is((load(decode(auth2, 'auth_config.yml')) as any).server.addr, '127.0.0.5:5001');
  assert.is((load(decode(reg2, 'config.yml')) as any).http.addr, '127.0.0.5:5000');
});

test('desiredNginxConfigMap and desiredTlsSecret', () => {
  const cm = desiredNginxConfigMap(registry());
  assert.equal(cm.metadata, { name: 'registry-nginx', namespace: 'infra', labels, ownerReferences: [owner] });
  assert.equal(Object.keys(cm.data ?? {}), ['nginx.conf', 'nginx-ipv4.conf']);
  assert.is(cm.data?.['nginx.conf'], nginxConfig(), 'the default config listens on both stacks');
  assert.equal(cm.data?.['nginx.conf']?.match(/^\s+listen \S+ ssl;$/gm)?.map((l) => l.trim()), ['listen 8443 ssl;', 'listen [::]:8443 ssl;']);
  assert.equal(cm.data?.['nginx-ipv4.conf']?.match(/^\s+listen \S+ ssl;$/gm)?.map((l) => l.trim()), ['listen 8443 ssl;']);
  assert.is(cm.data?.['nginx-ipv4.conf'], cm.data?.['nginx.conf']?.replace(/\n\s+listen \[::\]:8443 ssl;/, '').replace(/\n\s+listen \[::\]:5080;/, ''), 'otherwise the same');
  const tls = desiredTlsSecret(registry(), 'registry-tls', { certPem: 'CERT', keyPem: 'KEY', caPem: 'CA' });
  assert.is(tls.type, 'kubernetes.io/tls');
  assert.equal([decode(tls, 'tls.crt'), decode(tls, 'tls.key'), decode(tls, 'ca.crt')], ['CERT', 'KEY', 'CA']);
  assert.equal(tls.metadata?.ownerReferences, [owner]);
});

test('desiredCertificate: only with issuerRef; SANs and secret names per mode', () => {
  assert.is(desiredCertificate(registry(), 'tls', hostname), undefined);
  assert.is(desiredCertificate(registry({ tls: { secretName: 'x' } }), 'tls', hostname), undefined);
  const tls = desiredCertificate(registry({ tls: { issuerRef: { name: 'letsencrypt', kind: 'ClusterIssuer' } } }), 'tls', hostname);
  assert.equal(tls?.metadata, { name: 'registry-tls', namespace: 'infra', labels, ownerReferences: [owner] });
  assert.is(tls?.apiVersion, 'cert-manager.io/v1');
  assert.is(tls?.spec.secretName, 'registry-tls');
  assert.equal(tls?.spec.issuerRef, { name: 'letsencrypt', kind: 'ClusterIssuer', group: 'cert-manager.io' });
  assert.equal(tls?.spec.dnsNames, [hostname, 'registry.infra.svc', 'registry.infra.svc.cluster.local']);
  assert.ok(tls?.spec.usages.includes('server auth'));
  assert.equal(tls?.spec.secretTemplate.labels, labels);

  const named = desiredCertificate(registry({ tls: { secretName: 'custom-tls', issuerRef: { name: 'ca' } } }), 'tls', hostname);
  assert.is(named?.spec.secretName, 'custom-tls');
  assert.is(named?.spec.issuerRef.kind, 'Issuer');

  assert.is(desiredCertificate(registry({ tls: { issuerRef: { name: 'ca' } } }), 'auth', hostname), undefined);
  const auth = desiredCertificate(registry({ auth: { ca: { issuerRef: { name: 'ca' } } } }), 'auth', hostname);
  assert.is(auth?.metadata.name, 'registry-auth-tls');
  assert.is(auth?.spec.secretName, 'registry-auth-tls');
  assert.is(auth?.spec.commonName, 'registry.infra token signer');
  assert.equal(auth?.spec.usages, ['digital signature']);
  assert.is(auth?.spec.privateKey.algorithm, 'RSA');
});

test('rolloutAnnotations: changed trusted token keys or config roll the pods; the serving certificate, accounts and the active token key are no input', () => {
  const now = now0;
  const base = { trustedTokenKeys: 'JWKS-1', registryConfig: registryConfig({ hostname, httpSecret: 's' }), nginxConfigFiles: nginxConfigFiles() };
  const a = rolloutAnnotations(base);
  assert.match(a[ROLLOUT_CHECKSUM_ANNOTATION] ?? '', /^[0-9a-f]{64}$/);
  assert.equal(rolloutAnnotations({ ...base }), a);
  assert.not.equal(rolloutAnnotations({ ...base, trustedTokenKeys: 'JWKS-2' }), a);
  assert.not.equal(rolloutAnnotations({ ...base, registryConfig: registryConfig({ hostname, httpSecret: 'other' }) }), a);
  assert.not.equal(rolloutAnnotations({ ...base, nginxConfigFiles: nginxConfigFiles({ workerProcesses: 1 }) }), a);
  // either nginx file: the IPv4 one is what a pod on a kernel without IPv6 starts with
  assert.not.equal(rolloutAnnotations({ ...base, nginxConfigFiles: { ...base.nginxConfigFiles, 'nginx-ipv4.conf': `${base.nginxConfigFiles['nginx-ipv4.conf']}#` } }), a);
  assert.not.equal(rolloutAnnotations({ ...base, nginxConfigFiles: { 'nginx.conf': base.nginxConfigFiles['nginx.conf'] ?? '' } }), a);
  // the order the files come in does not matter
  const reversed = Object.fromEntries(Object.entries(base.nginxConfigFiles).reverse());
  assert.equal(rolloutAnnotations({ ...base, nginxConfigFiles: reversed }), a);
  // the ConfigMap the Job applies is the checksum's input
  assert.equal(rolloutAnnotations({ ...base, nginxConfigFiles: desiredNginxConfigMap(registry()).data ?? {} }), a);
  // Moving bytes between parts is a different input, not the same concatenation.
  assert.not.equal(rolloutAnnotations({ ...base, trustedTokenKeys: `JWKS-1${base.registryConfig[0]}`, registryConfig: base.registryConfig.slice(1) }), a);
  // nginx reads the serving certificate at each TLS handshake (nginx.conf names it through a
  // variable), so a renewal reaches new connections without a roll.
  for (const text of Object.values(base.nginxConfigFiles)) assert.match(text, /ssl_certificate \$tls_certificate_file;/);
  // Accounts and the active token key only change the docker_auth Secret's other entries, which
  // docker_auth reloads itself: the registry config (a checksum input) stays.
  const otherKey = newRsaKeyPem().privateKeyPem;
  const other = { certPem: selfSignedCa({ commonName: 'other signer', keyPem: otherKey, now, serial: '02' }), keyPem: otherKey };
  const switched: TokenKeys = { active: other, trusted: [...tokenKeys.trusted, trustedTokenKey(other.certPem)] };
  const [, regA] = desiredConfigSecrets({ registry: registry(), hostname, accounts: [], now, httpSecret: 's', tokenKeys });
  const [, regB] = desiredConfigSecrets({ registry: registry(), hostname, accounts: [account('new')], now, httpSecret: 's', tokenKeys: switched });
  assert.is(decode(regA, 'config.yml'), decode(regB, 'config.yml'));
});

test('objects need a stored registry (name, namespace, uid)', () => {
  const unsaved = { ...registry(), metadata: { name: 'registry', namespace: 'infra' } };
  assert.throws(() => registryOwnerReference(unsaved), /uid/);
  assert.throws(() => desiredService(unsaved, hostname), /uid/);
  assert.throws(() => desiredStatefulSet({ ...registry(), metadata: { name: 'r', uid: 'u' } }, config, options), /namespace/);
});

test.run();
