// cert-manager stand-in: cert-manager's controller cannot run here, so this installs a minimal
// `certificates.cert-manager.io` CRD and fulfils Certificates the way the controller would —
// a key pair for spec.dnsNames/commonName, signed by a test CA, written to spec.secretName.
import { issueTestCertificate, type KeyPairPem } from './pki.ts';
import type { TestCluster } from './cluster.ts';
import { applyObjects, listObjects, serverSide } from './kubectl.ts';

const CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'certificates.cert-manager.io' },
  spec: {
    group: 'cert-manager.io',
    scope: 'Namespaced',
    names: { kind: 'Certificate', plural: 'certificates', singular: 'certificate', listKind: 'CertificateList' },
    versions: [{ name: 'v1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
  },
};

export async function installCertificateCrd(cluster: TestCluster): Promise<void> {
  const applied = await cluster.kubectl(['apply', '--server-side', '--field-manager=tests', '-f', '-'], { input: JSON.stringify(CRD) });
  if (applied.code !== 0) throw new Error(`cert-manager stand-in CRD: ${applied.stderr}`);
  const waited = await cluster.kubectl(['wait', '--for', 'condition=Established', '--timeout=60s', 'crd/certificates.cert-manager.io']);
  if (waited.code !== 0) throw new Error(`cert-manager stand-in CRD: ${waited.stderr}`);
}

interface CertificateObject {
  metadata: { name: string; namespace: string };
  spec: { secretName: string; dnsNames?: string[]; commonName?: string };
}

/** Issues every Certificate of the namespace into its Secret; returns the names it fulfilled. */
export async function fulfilCertificates(cluster: TestCluster, namespace: string, ca: KeyPairPem): Promise<string[]> {
  const certificates = await listObjects<CertificateObject>(cluster, 'certificates.cert-manager.io', namespace);
  for (const certificate of certificates) {
    const { dnsNames, commonName, secretName } = certificate.spec;
    const issued = issueTestCertificate({ commonName: commonName ?? dnsNames?.[0] ?? certificate.metadata.name, dnsNames: dnsNames ?? [], issuer: ca });
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: secretName, namespace, annotations: { 'cert-manager.io/certificate-name': certificate.metadata.name } },
      data: { 'tls.crt': b64(issued.certPem), 'tls.key': b64(issued.keyPem), 'ca.crt': b64(ca.certPem) },
    };
    await applyObjects(cluster, secret, '', serverSide('cert-manager-stand-in'));
  }
  return certificates.map((c) => c.metadata.name);
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
