import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  OPERATOR_CA_SECRET_NAME,
  accountName,
  authConfigSecretName,
  imageSecretName,
  nginxConfigMapName,
  registryAuthCertificateName,
  registryAuthSecretName,
  registryConfigSecretName,
  registryDnsNames,
  registryHostname,
  registryLabels,
  registrySelectorLabels,
  registryTlsCertificateName,
  registryTlsSecretName,
  serviceName,
  statefulSetName,
  tokenIssuer,
  tokenSignerCommonName,
} from '../../functions/names.ts';
import type { ImageRegistry } from '../../functions/types.ts';

const registry = (spec: ImageRegistry['spec'] = {}): ImageRegistry => ({
  apiVersion: 'registry.mgoltzsche.github.com/v1alpha1',
  kind: 'ImageRegistry',
  metadata: { name: 'registry', namespace: 'infra' },
  spec,
});

test('registryHostname is <name>.<namespace>.<zone>', () => {
  assert.is(registryHostname('registry', 'infra', 'svc.example.org'), 'registry.infra.svc.example.org');
  assert.is(registryHostname('r', 'ns', 'example.org.'), 'r.ns.example.org');
});

test('registryDnsNames are the hostname and the Service names, without duplicates', () => {
  assert.equal(registryDnsNames('registry', 'infra', 'registry.infra.svc.example.org'), [
    'registry.infra.svc.example.org',
    'registry.infra.svc',
    'registry.infra.svc.cluster.local',
  ]);
  assert.equal(registryDnsNames('r', 'ns', 'r.ns.svc', 'corp.local'), ['r.ns.svc', 'r.ns.svc.corp.local']);
});

test('secret names follow spec overrides, else the naming convention', () => {
  assert.is(registryTlsSecretName(registry()), 'registry-tls');
  assert.is(registryTlsSecretName(registry({ tls: { secretName: 'my-tls' } })), 'my-tls');
  assert.is(registryTlsSecretName(registry({ tls: { issuerRef: { name: 'ca' } } })), 'registry-tls');
  assert.is(registryAuthSecretName(registry()), 'registry-auth-tls');
  assert.is(registryAuthSecretName(registry({ auth: { ca: { secretName: 'signer' } } })), 'signer');
  assert.is(authConfigSecretName('registry'), 'registry-auth-config');
  assert.is(registryConfigSecretName('registry'), 'registry-registry-config');
  assert.is(nginxConfigMapName('registry'), 'registry-nginx');
  assert.is(statefulSetName('registry'), 'registry');
  assert.is(serviceName('registry'), 'registry');
  assert.is(registryTlsCertificateName('registry'), 'registry-tls');
  assert.is(registryAuthCertificateName('registry'), 'registry-auth-tls');
  assert.is(OPERATOR_CA_SECRET_NAME, 'image-registry-operator-ca');
  assert.throws(() => registryTlsSecretName({ ...registry(), metadata: {} }), /metadata.name/);
});

test('account and image secret names', () => {
  assert.is(accountName('push', 'team-a', 'app', 3), 'push.team-a.app.3');
  assert.is(accountName('pull', 'team-a', 'app', 0), 'pull.team-a.app.0');
  assert.throws(() => accountName('push', 'ns', 'cr', 1.5), /rotation/);
  assert.throws(() => accountName('push', 'ns', 'cr', -1), /rotation/);
  assert.is(imageSecretName('ImagePushSecret', 'example'), 'example-image-push-secret');
  assert.is(imageSecretName('ImagePullSecret', 'example'), 'example-image-pull-secret');
});

test('token issuer and signer name', () => {
  assert.is(tokenIssuer('registry.infra.svc.example.org'), 'https://registry.infra.svc.example.org/auth/token');
  assert.is(tokenSignerCommonName('registry', 'infra'), 'registry.infra token signer');
  const long = tokenSignerCommonName('r'.repeat(40), 'n'.repeat(40));
  assert.ok(long.length <= 64);
});

test('labels: selector subset plus managed-by', () => {
  assert.equal(registrySelectorLabels('registry'), { 'app.kubernetes.io/name': 'image-registry', 'app.kubernetes.io/instance': 'registry' });
  assert.equal(registryLabels('registry'), {
    'app.kubernetes.io/name': 'image-registry',
    'app.kubernetes.io/instance': 'registry',
    'app.kubernetes.io/managed-by': 'image-registry-operator',
  });
});

test.run();
