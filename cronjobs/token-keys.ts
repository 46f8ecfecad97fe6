// The edge of token-key renewal (functions/token-keys.ts decides): every write of the docker_auth
// config Secret re-decides from the Secret it just read, so concurrent Jobs never undo a switch, and
// the stage and switch are reported as Events on the ImageRegistry.
import type { V1Secret } from '@kubernetes/client-node';
import type { KeyPair } from '../functions/certificate-sources.ts';
import { decideTokenKeys, storedTokenKeys, type TokenKeyDecision } from '../functions/token-keys.ts';
import { GROUP_VERSION, type ImageRegistry } from '../functions/types.ts';
import { recordEvent } from './events.ts';
import type { Kube } from './kube.ts';
import { log } from './log.ts';

export interface TokenKeyDecisions {
  /** decides for the auth config Secret as read; trustedByAllPods only once the pods rolled out */
  decide(current: V1Secret | undefined, trustedByAllPods?: readonly string[]): TokenKeyDecision;
  /** the decision of the latest write attempt (the one that was written or found in place) */
  latest(): TokenKeyDecision;
}

export function tokenKeyDecisions(source: KeyPair, now: () => Date): TokenKeyDecisions {
  let latest: TokenKeyDecision | undefined;
  return {
    decide(current, trustedByAllPods) {
      const input = { source: { certPem: source.certPem, keyPem: source.keyPem }, current: storedTokenKeys(current), now: now() };
      latest = decideTokenKeys(trustedByAllPods ? { ...input, trustedByAllPods } : input);
      return latest;
    },
    latest() {
      if (!latest) throw new Error('no token key decision yet: the auth config was not written');
      return latest;
    },
  };
}

const EVENT_REASONS: Partial<Record<TokenKeyDecision['phase'], string>> = { Staged: 'TokenKeyStaged', Switched: 'TokenKeySwitched' };

/** Event for a stage or switch; the waiting phases are logged (they repeat every run). */
export async function reportTokenKeys(kube: Kube, registry: ImageRegistry, decision: TokenKeyDecision, now: Date): Promise<void> {
  const reason = EVENT_REASONS[decision.phase];
  const name = `${registry.metadata.namespace}/${registry.metadata.name}`;
  if (reason) {
    await recordEvent(kube, { apiVersion: GROUP_VERSION, kind: 'ImageRegistry', metadata: registry.metadata }, 'Normal', reason, decision.message, now);
  }
  if (decision.phase !== 'Current') log('info', 'token-signing key', { registry: name, phase: decision.phase, message: decision.message });
}
