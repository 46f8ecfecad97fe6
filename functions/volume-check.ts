// A volume registry's pods start with a check that the registry's user can write its volume. The
// registry runs as a user of its own (REGISTRY_UID) and relies on the pod's fsGroup to write the
// volume; NFS, hostPath and many ReadWriteMany CSI drivers ignore fsGroup, and the registry then
// starts, reports healthy (its storage health check only reads) and answers every push with 500.
// The init container fails instead, with a termination message that says so, and the reconcile
// Job turns it into Ready=False (VolumeNotWritable) on the ImageRegistry.
import type { V1Container, V1VolumeMount } from '@kubernetes/client-node';
import type { RegistryProblem } from './registry-status.ts';

export const VOLUME_CHECK_CONTAINER = 'volume-check';
export const VOLUME_NOT_WRITABLE = 'VolumeNotWritable';

/**
 * Creates and removes a file in the volume as the registry's user; on failure writes the reason
 * to the termination message (what the Job reads) and stderr (`kubectl logs -c volume-check`).
 * Arguments: the data path. POSIX sh, as the registry image (alpine) has it.
 */
export const VOLUME_CHECK_SCRIPT = [
  'probe="$1/.write-check-$HOSTNAME";',
  'if touch "$probe" && rm -f "$probe"; then exit 0; fi;',
  'msg="the registry volume at $1 is not writable by uid $(id -u), the registry\'s user: its storage ignores the pod\'s fsGroup $(id -G | tr \' \' \',\')";',
  'echo "$msg" > /dev/termination-log; echo "$msg" >&2; exit 1',
].join(' ');

export function volumeCheckContainer(input: { image: string; dataPath: string; volumeMounts: V1VolumeMount[]; securityContext: V1Container['securityContext'] }): V1Container {
  return {
    name: VOLUME_CHECK_CONTAINER,
    image: input.image,
    command: ['sh', '-c', VOLUME_CHECK_SCRIPT, VOLUME_CHECK_CONTAINER, input.dataPath],
    securityContext: input.securityContext,
    volumeMounts: input.volumeMounts,
    resources: { requests: { cpu: '10m', memory: '8Mi' }, limits: { memory: '32Mi' } },
  };
}

/** What the Job reads of a registry pod (the API's Pod, as far as the check needs it). */
export interface PodWithInitStatus {
  metadata?: { name?: string; deletionTimestamp?: unknown };
  status?: {
    initContainerStatuses?: {
      name: string;
      state?: { terminated?: { exitCode: number; message?: string } };
      lastState?: { terminated?: { exitCode: number; message?: string } };
    }[];
  };
}

/** VolumeNotWritable when a pod's volume check failed and has not passed since; else undefined. */
export function volumeWritabilityProblem(pods: readonly PodWithInitStatus[], registryUid: number): RegistryProblem | undefined {
  for (const pod of pods) {
    if (pod.metadata?.deletionTimestamp) continue;
    const check = pod.status?.initContainerStatuses?.find((status) => status.name === VOLUME_CHECK_CONTAINER);
    if (!check || check.state?.terminated?.exitCode === 0) continue;
    const failed = check.state?.terminated ?? check.lastState?.terminated;
    if (!failed || failed.exitCode === 0) continue;
    const reason = failed.message?.trim() || `the volume check exited with ${failed.exitCode}`;
    return {
      reason: VOLUME_NOT_WRITABLE,
      message: `pod ${pod.metadata?.name}: ${reason}; give uid or group ${registryUid} write access to it, or use a StorageClass whose volumes honour fsGroup`,
    };
  }
  return undefined;
}
