// Creates or renews the webhook's serving CA/certificate Secret and injects the CA bundle into
// both webhook configurations. Used by the bootstrap Job and its daily renewal CronJob.
//
// Idempotent: when nothing is due and the configurations already carry the bundle, it writes
// nothing. Safe when two runs race: the Secret is created/replaced with optimistic concurrency,
// and the loser reads the winner's certificates instead of writing its own.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../functions/log-line.ts';
import {
  issueWebhookTls,
  webhookCaBundle,
  webhookTlsRenewal,
  WEBHOOK_CONFIGURATION_NAME,
  WEBHOOK_TLS_SECRET_NAME,
  type NewKey,
  type WebhookTlsData,
  type WebhookTlsRenewal,
} from '../functions/webhook-tls.ts';
import { newRsaKeyPem, randomSerial } from './keys.ts';
import { isConflict, type Kube } from './kube.ts';

const ADMISSION_API_VERSION = 'admissionregistration.k8s.io/v1';
const CONFIGURATION_KINDS = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'] as const;
const ATTEMPTS = 3;

interface Secret extends KubernetesObject {
  type?: string;
  data?: Record<string, string>;
}

interface WebhookConfiguration extends KubernetesObject {
  webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
}

export interface WebhookTlsOptions {
  kube: Kube;
  namespace: string;
  now?: () => Date;
  /** a fresh RSA private key and serial; defaults to node:crypto */
  newKey?: () => NewKey;
  log?: Logger;
}

export interface WebhookTlsResult {
  /** what was issued in this run (empty when nothing was due) */
  issued: WebhookTlsRenewal;
  secret: 'created' | 'updated' | 'unchanged';
  /** `<Kind>/<name>` of the configurations whose caBundle was changed */
  injected: string[];
}

// functions/certificates.ts makes any serial a minimal, positive DER INTEGER
export function newRsaKey(): NewKey {
  return { keyPem: newRsaKeyPem(), serial: randomSerial() };
}

export async function ensureWebhookTls(options: WebhookTlsOptions): Promise<WebhookTlsResult> {
  const { kube, namespace } = options;
  const log = options.log ?? (() => {});
  const { data, issued, secret } = await ensureSecret(options);
  const caBundle = webhookCaBundle(data);
  const injected: string[] = [];
  for (const kind of CONFIGURATION_KINDS) {
    if (await injectCaBundle(kube, kind, caBundle)) injected.push(`${kind}/${WEBHOOK_CONFIGURATION_NAME}`);
  }
  log('info', 'webhook TLS ensured', { namespace, secret, issued: Object.keys(issued), injected });
  return { issued, secret, injected };
}

async function ensureSecret(options: WebhookTlsOptions): Promise<{ data: WebhookTlsData; issued: WebhookTlsRenewal; secret: WebhookTlsResult['secret'] }> {
  const { kube, namespace } = options;
  const now = options.now ?? (() => new Date());
  const newKey = options.newKey ?? newRsaKey;
  const ref = { apiVersion: 'v1', kind: 'Secret', namespace, name: WEBHOOK_TLS_SECRET_NAME };
  for (let attempt = 1; ; attempt++) {
    const existing = await kube.read<Secret>(ref);
    const current = existing ? decode(existing.data) : undefined;
    const at = now();
    const due = webhookTlsRenewal(current, namespace, at);
    if (!due.ca && !due.leaf && current) return { data: current as WebhookTlsData, issued: {}, secret: 'unchanged' };
    const data = issueWebhookTls({
      namespace,
      now: at,
      current,
      ...(due.ca ? { ca: newKey() } : {}),
      ...(due.leaf ? { leaf: newKey() } : {}),
    });
    options.log?.('info', 'issuing webhook certificates', { namespace, ca: due.ca?.message, leaf: due.leaf?.message });
    const secret: Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        ...withoutManagedFields(existing?.metadata),
        name: WEBHOOK_TLS_SECRET_NAME,
        namespace,
        labels: { ...(existing?.metadata?.labels ?? {}), 'app.kubernetes.io/name': 'image-registry-operator', 'app.kubernetes.io/component': 'webhook' },
      },
      type: 'kubernetes.io/tls',
      data: encode(data),
    };
    try {
      if (existing) await kube.replace(secret);
      else await kube.create(secret);
      return { data, issued: due, secret: existing ? 'updated' : 'created' };
    } catch (error) {
      // another run wrote first: start over from what it wrote
      if (!isConflict(error) || attempt >= ATTEMPTS) throw error;
    }
  }
}

/** Sets caBundle on every webhook of the configuration that lacks it; true when it changed any. */
async function injectCaBundle(kube: Kube, kind: (typeof CONFIGURATION_KINDS)[number], caBundle: string): Promise<boolean> {
  const configuration = await kube.read<WebhookConfiguration>({ apiVersion: ADMISSION_API_VERSION, kind, name: WEBHOOK_CONFIGURATION_NAME });
  if (!configuration) throw new Error(`${kind} ${WEBHOOK_CONFIGURATION_NAME} not found: install kustomize/ first`);
  const stale = (configuration.webhooks ?? []).filter((webhook) => webhook.clientConfig?.caBundle !== caBundle);
  if (stale.length === 0) return false;
  // server-side apply of just the caBundle fields: the rest stays owned by whoever installed it
  await kube.apply({
    apiVersion: ADMISSION_API_VERSION,
    kind,
    metadata: { name: WEBHOOK_CONFIGURATION_NAME },
    webhooks: (configuration.webhooks ?? []).map((webhook) => ({ name: webhook.name, clientConfig: { caBundle } })),
  } as KubernetesObject);
  return true;
}

function withoutManagedFields(metadata: KubernetesObject['metadata']): KubernetesObject['metadata'] {
  if (!metadata) return {};
  const { managedFields: _managedFields, ...rest } = metadata;
  return rest;
}

function decode(data: Record<string, string> | undefined): Partial<WebhookTlsData> {
  return Object.fromEntries(Object.entries(data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]));
}

function encode(data: WebhookTlsData): Record<string, string> {
  return Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')]));
}
