// The edge of token-key renewal (functions/token-keys.ts decides; every write of the docker_auth
// config re-decides from the Secret it just read, auth-config.ts, so concurrent Jobs never undo a
// switch): the stage and switch are reported as Events on the ImageRegistry.
import type { TokenKeyDecision } from '../functions/token-keys.ts';
import type { ImageRegistry } from '../functions/types.ts';
import { recordRegistryEvent } from './events.ts';
import type { Kube } from './kube.ts';
import { log } from './log.ts';

const EVENT_REASONS: Partial<Record<TokenKeyDecision['phase'], string>> = { Staged: 'TokenKeyStaged', Switched: 'TokenKeySwitched' };

/** Event for a stage or switch; the waiting phases are logged (they repeat every run). */
export async function reportTokenKeys(kube: Kube, registry: ImageRegistry, decision: TokenKeyDecision, now: Date): Promise<void> {
  const reason = EVENT_REASONS[decision.phase];
  const name = `${registry.metadata.namespace}/${registry.metadata.name}`;
  if (reason) {
    await recordRegistryEvent(kube, registry, 'Normal', reason, decision.message, now);
  }
  if (decision.phase !== 'Current') log('info', 'token-signing key', { registry: name, phase: decision.phase, message: decision.message });
}
