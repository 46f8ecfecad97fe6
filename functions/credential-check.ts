// "Ready means usable": before a push/pull Secret is written or a CR is declared Ready, every
// ready registry pod's docker_auth must have loaded the auth config that holds it (it accepts the
// write's confirmation login, confirmation-logins.ts). These are the decisions around that check;
// the check itself (token requests to each pod) is in cronjobs/credential-check.ts.
import type { ImageSecret } from './types.ts';
import { getCondition } from './conditions.ts';
import { API_GROUP } from './types.ts';

/** Ready=False while the registry's docker_auth has not confirmed the credentials. */
export const CREDENTIALS_PENDING = 'CredentialsPending';
/**
 * Pod annotation the Jobs set to the auth config's resourceVersion after writing it: an update of
 * the pod makes the kubelet sync its volumes now instead of at its next periodic sync (~1 min).
 */
export const AUTH_CONFIG_VERSION_ANNOTATION = `${API_GROUP}/auth-config-version`;

export interface PodLike {
  metadata?: { name?: string; deletionTimestamp?: unknown };
  status?: { podIP?: string; conditions?: { type: string; status: string }[] };
}

export interface RegistryPod {
  name: string;
  ip: string;
}

/** The pods a client can reach now: Ready (the Service routes to them), with an IP, not terminating. */
export function readyRegistryPods(pods: readonly PodLike[]): RegistryPod[] {
  return pods
    .filter((pod) => !pod.metadata?.deletionTimestamp && pod.status?.podIP)
    .filter((pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((pod) => ({ name: pod.metadata?.name ?? '', ip: pod.status?.podIP ?? '' }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** docker_auth's token endpoint for a login without scope: 200 when the credentials are accepted, 401 otherwise. */
export function tokenProbePath(hostname: string, username: string): string {
  return `/auth/token?service=${encodeURIComponent(hostname)}&account=${encodeURIComponent(username)}`;
}

/** A CR whose Secret exists but whose credentials no registry pod has confirmed yet. */
export function awaitsConfirmation(cr: ImageSecret): boolean {
  const readyCondition = getCondition(cr.status?.conditions, 'Ready');
  return cr.status?.rotation !== undefined && readyCondition?.status !== 'True';
}

export type CredentialCheckOutcome =
  | { outcome: 'confirmed'; pods: string[] }
  | { outcome: 'no-ready-pod' }
  | { outcome: 'timeout'; pods: string[]; refusing: string[]; waitedSeconds: number };

/**
 * Ready=False reason and message for push/pull CRs after a check, or undefined when their
 * credentials are confirmed. Without a ready pod nothing can be confirmed: the Secret is written
 * (every pod that starts loads the auth config that holds it) and the CR waits for the registry.
 */
export function credentialCheckProblem(check: CredentialCheckOutcome, registry: string): { reason: string; message: string } | undefined {
  if (check.outcome === 'confirmed') return undefined;
  if (check.outcome === 'no-ready-pod') {
    return { reason: 'RegistryNotReady', message: `registry ${registry} has no ready pod to confirm the credentials; they work once it is ready` };
  }
  return {
    reason: CREDENTIALS_PENDING,
    message:
      `waiting for registry pod(s) ${check.refusing.join(', ')} to accept the new credentials: after ${check.waitedSeconds} s ` +
      `the registry did not load its new configuration (docker_auth may have refused it: see the auth container's log); the next reconcile retries`,
  };
}
