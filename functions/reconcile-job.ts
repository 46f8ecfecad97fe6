// The reconcile Job the webhook enqueues, and the coalescing window that names it.
//
// Coalescing: every admission for one registry within the same short window maps to the same
// Job name, so the first creation wins and the others get 409 AlreadyExists ("already queued").
// The Job is told not to read before the window has closed (plus a grace period for the object to
// be persisted after admission and for clock skew), so it sees every change admitted in its window.
import { createHash } from 'node:crypto';
import { formatDuration } from './duration.ts';
import type { OperatorConfig } from './types.ts';
import { API_GROUP } from './types.ts';

export interface RegistryKey {
  namespace: string;
  name: string;
}

/** Label on push/pull CRs and reconcile Jobs naming the registry they belong to. */
export const REGISTRY_LABEL = `${API_GROUP}/registry`;
export const JOB_SERVICE_ACCOUNT = 'image-registry-operator-jobs';
export const RECONCILE_COMMAND = ['node', '/app/dist/reconcile.js'];
// 1 s + 1 s: a change waits 1.5 s on average before its Job reads (on a cluster the Job's pod starts
// within that wait), and a burst still makes one Job per registry per second. The grace covers
// persisting after admission and clock skew between the webhook's and the Job's nodes.
export const DEFAULT_WINDOW_SECONDS = 1;
export const DEFAULT_GRACE_SECONDS = 1;

const MAX_LABEL_VALUE = 63;
const MAX_JOB_NAME = 63;

export function shortHash(text: string, hexChars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, hexChars);
}

/** Keeps [a-z0-9-] only, cut to `max` characters, without leading/trailing dashes. */
export function dnsFragment(text: string, max: number): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, max)
    .replace(/^-+|-+$/g, '');
}

/**
 * `<namespace>.<name>` (namespaces and registry names are DNS labels, so the dot is unambiguous).
 * Longer than a label value may be (63): a readable prefix plus a hash of the full reference.
 */
export function registryLabelValue(registry: RegistryKey): string {
  const full = `${registry.namespace}.${registry.name}`;
  if (full.length <= MAX_LABEL_VALUE) return full;
  const hash = shortHash(`${registry.namespace}/${registry.name}`, 16);
  const prefix = full.slice(0, MAX_LABEL_VALUE - hash.length - 1).replace(/[^A-Za-z0-9]+$/, '');
  return `${prefix}-${hash}`;
}

export interface ReconcileWindow {
  /** names the Job: all admissions from start on share it */
  start: Date;
  /** the Job reads nothing before this instant (window length + grace) */
  end: Date;
}

/** The coalescing window `now` falls in: fixed buckets of `lengthSeconds` since the epoch. */
export function reconcileWindow(
  now: Date,
  { lengthSeconds = DEFAULT_WINDOW_SECONDS, graceSeconds = DEFAULT_GRACE_SECONDS } = {},
): ReconcileWindow {
  const lengthMs = lengthSeconds * 1000;
  const startMs = Math.floor(now.getTime() / lengthMs) * lengthMs;
  return { start: new Date(startMs), end: new Date(startMs + lengthMs + graceSeconds * 1000) };
}

/**
 * `reconcile-<ns>-<name>-<hash>-<window start, epoch seconds>`, a DNS-1123 label of ≤ 63
 * characters (the Job's pods carry it as a label value). The readable part is cut to fit; the
 * hash of the full reference keeps names of different registries apart even when cut or when
 * dashes make `<ns>-<name>` ambiguous.
 */
export function reconcileJobName(registry: RegistryKey, windowStart: Date): string {
  const epochSeconds = String(Math.floor(windowStart.getTime() / 1000));
  const hash = shortHash(`${registry.namespace}/${registry.name}`, 8);
  const fixed = 'reconcile-'.length + 1 + hash.length + 1 + epochSeconds.length;
  const readable = dnsFragment(`${registry.namespace}-${registry.name}`, MAX_JOB_NAME - fixed);
  return ['reconcile', readable, hash, epochSeconds].filter((part) => part !== '').join('-');
}

/** The operator configuration as the environment the Job entry points read it from. */
export function operatorConfigEnv(config: OperatorConfig): { name: string; value: string }[] {
  const env: [string, string | undefined][] = [
    ['OPERATOR_NAMESPACE', config.namespace],
    ['OPERATOR_DNS_ZONE', config.dnsZone],
    ['OPERATOR_DEFAULT_REGISTRY_NAME', config.defaultRegistry.name],
    ['OPERATOR_DEFAULT_REGISTRY_NAMESPACE', config.defaultRegistry.namespace],
    ['OPERATOR_IMAGE_REGISTRY', config.images.registry],
    ['OPERATOR_IMAGE_AUTH', config.images.auth],
    ['OPERATOR_IMAGE_NGINX', config.images.nginx],
    ['OPERATOR_IMAGE', config.images.operator],
    ['OPERATOR_ROTATION_INTERVAL', formatDuration(config.rotationIntervalSeconds * 1000)],
    ['OPERATOR_ROLLOUT_TIMEOUT', `${config.rolloutTimeoutSeconds}s`],
    ['OPERATOR_CREDENTIALS_TIMEOUT', `${config.credentialsTimeoutSeconds}s`],
    ['OPERATOR_NODE_TRUST_NAMESPACE', config.nodeTrustNamespace],
  ];
  return env.flatMap(([name, value]) => (value === undefined || value === '' ? [] : [{ name, value }]));
}

export interface ReconcileJobInput {
  registry: RegistryKey;
  config: OperatorConfig;
  /** the Job's `--not-before`: the end of its coalescing window */
  windowEnd: Date;
  /** defaults to config.images.operator */
  image?: string;
  /** names the Job; defaults to windowEnd minus the default window length and grace */
  windowStart?: Date;
}

/** A batch/v1 Job in the operator namespace that reconciles one registry once its window closed. */
export function desiredReconcileJob({ registry, config, windowEnd, image, windowStart }: ReconcileJobInput) {
  const start = windowStart ?? new Date(windowEnd.getTime() - (DEFAULT_WINDOW_SECONDS + DEFAULT_GRACE_SECONDS) * 1000);
  const labels = {
    'app.kubernetes.io/name': 'image-registry-operator',
    'app.kubernetes.io/component': 'reconcile',
    'app.kubernetes.io/managed-by': 'image-registry-operator',
    [REGISTRY_LABEL]: registryLabelValue(registry),
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: reconcileJobName(registry, start),
      namespace: config.namespace,
      labels,
      // the label may be a hash; the annotation keeps the full reference readable
      annotations: { [`${API_GROUP}/registry-ref`]: `${registry.namespace}/${registry.name}` },
    },
    spec: {
      backoffLimit: 3,
      activeDeadlineSeconds: 600,
      ttlSecondsAfterFinished: 300,
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: JOB_SERVICE_ACCOUNT,
          restartPolicy: 'Never',
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'reconcile',
              image: image ?? config.images.operator,
              imagePullPolicy: 'IfNotPresent',
              command: [...RECONCILE_COMMAND],
              args: ['--registry', `${registry.namespace}/${registry.name}`, '--not-before', windowEnd.toISOString()],
              env: operatorConfigEnv(config),
              resources: {
                requests: { cpu: '50m', memory: '96Mi' },
                limits: { cpu: '1', memory: '256Mi' },
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '16Mi' } }],
        },
      },
    },
  };
}

export type ReconcileJob = ReturnType<typeof desiredReconcileJob>;
