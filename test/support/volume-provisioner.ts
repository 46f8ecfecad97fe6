// The cluster's storage, as local-path-provisioner gives a one-node cluster: a
// small provisioner that gives a pending PersistentVolumeClaim a pre-bound hostPath
// PersistentVolume under the work dir (the real PV controller binds them), deletes the released ones,
// and tells the pod sandbox which host directory a bound claim is.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { apiMessage, type KubeApi } from './kube-api.ts';

interface ClaimObject {
  metadata: { name: string; namespace: string; uid: string };
  spec: { volumeName?: string; accessModes?: string[]; storageClassName?: string; resources?: { requests?: { storage?: string } }; volumeMode?: string };
  status?: { phase?: string };
}

const PROVISIONED_LABEL = 'kubelet-stand-in/provisioned';

export function startProvisioner(api: KubeApi, workDir: string, log: (line: string) => void): { stop(): void } {
  const provision = async () => {
    const claims = await api.request<{ items: ClaimObject[] }>('GET', '/api/v1/persistentvolumeclaims');
    for (const claim of claims.body?.items ?? []) {
      if (claim.spec.volumeName || claim.status?.phase !== 'Pending') continue;
      const name = `pv-${claim.metadata.uid}`;
      const path = join(workDir, 'pv', name);
      mkdirSync(path, { recursive: true });
      // as local-path-provisioner creates its directories (`mkdir -m 0777`): a hostPath volume gets
      // no fsGroup from the kubelet, and the registry runs as a user of its own
      chmodSync(path, 0o777);
      const pv = {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name, labels: { [PROVISIONED_LABEL]: 'true' } },
        spec: {
          capacity: { storage: claim.spec.resources?.requests?.storage ?? '1Gi' },
          accessModes: claim.spec.accessModes ?? ['ReadWriteOnce'],
          storageClassName: claim.spec.storageClassName ?? '',
          persistentVolumeReclaimPolicy: 'Retain',
          hostPath: { path, type: 'Directory' },
          claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: claim.metadata.namespace, name: claim.metadata.name, uid: claim.metadata.uid },
        },
      };
      const created = await api.request('POST', '/api/v1/persistentvolumes', pv);
      if (created.status !== 201 && created.status !== 409) log(`provisioning ${name}: ${apiMessage(created)}`);
    }
    // the claim is gone: its volume is Released; a provisioner with reclaim policy Delete removes it
    const volumes = await api.request<{ items: { metadata: { name: string }; status?: { phase?: string } }[] }>('GET', `/api/v1/persistentvolumes?labelSelector=${PROVISIONED_LABEL}%3Dtrue`);
    for (const pv of volumes.body?.items ?? []) {
      if (pv.status?.phase !== 'Released') continue;
      await api.request('DELETE', `/api/v1/persistentvolumes/${pv.metadata.name}`);
      rmSync(join(workDir, 'pv', pv.metadata.name), { recursive: true, force: true });
    }
  };
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= provision().catch((error: Error) => log(`provisioner: ${error.message}`)).finally(() => (running = undefined));
  }, 500);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** claim → host directory of its bound PersistentVolume; throws while unbound. */
export async function claimDirectory(api: KubeApi, namespace: string, claim: string): Promise<string> {
  const pvc = await api.request<{ spec?: { volumeName?: string } }>('GET', `/api/v1/namespaces/${namespace}/persistentvolumeclaims/${claim}`);
  const volumeName = pvc.body?.spec?.volumeName;
  if (pvc.status !== 200 || !volumeName) throw new Error(`PersistentVolumeClaim ${namespace}/${claim} is not bound`);
  const pv = await api.request<{ spec?: { hostPath?: { path?: string } } }>('GET', `/api/v1/persistentvolumes/${volumeName}`);
  const path = pv.body?.spec?.hostPath?.path;
  if (!path) throw new Error(`PersistentVolume ${volumeName} has no hostPath`);
  mkdirSync(path, { recursive: true });
  return path;
}
