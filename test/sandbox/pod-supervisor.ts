// The StatefulSet controller + kubelet stand-in of the sandbox: watches StatefulSets and keeps pod
// <sts>-0 of each running from its stored spec (test/support/pod-runner.ts) — started when it
// appears, restarted when its pod template changes (a renewed token certificate rolls the pods), stopped
// when it is deleted or scaled to 0; Secret/ConfigMap volumes refreshed like the kubelet does.
// One replica per StatefulSet: enough for a sandbox; more replicas need ReadWriteMany anyway.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { kubeApi } from '../support/kube-api.ts';
import { runStatefulSetPod, type RunningPod } from '../support/pod-runner.ts';
import { delay } from '../support/processes.ts';

export interface PodSupervisor {
  pods(): RunningPod[];
  stop(): Promise<void>;
}

interface StatefulSet {
  metadata: { name: string; namespace: string };
  spec: { replicas?: number; template: unknown };
}

interface Supervised {
  pod?: RunningPod;
  templateHash: string;
  address: string;
  starting?: Promise<void>;
}

const POLL_MS = 1_000;
const VOLUME_SYNC_EVERY = 5;

export function startPodSupervisor(options: { kubeconfig: string; assetsDir: string; workDir: string; hostsFile: string; log: (line: string) => void }): PodSupervisor {
  const api = kubeApi(options.kubeconfig);
  const supervised = new Map<string, Supervised>();
  let nextAddress = 10;
  let stopped = false;
  mkdirSync(options.workDir, { recursive: true });

  const start = (sts: StatefulSet, entry: Supervised) => {
    entry.starting = (async () => {
      try {
        entry.pod = await runStatefulSetPod({ kubeconfig: options.kubeconfig, namespace: sts.metadata.namespace, statefulSet: sts.metadata.name, assetsDir: options.assetsDir, workDir: options.workDir, loopbackAddress: entry.address });
        writeHosts();
        const missing = entry.pod.containers().filter((c) => c.waitingReason).map((c) => `${c.name}: ${c.reason}`);
        options.log(`pod ${sts.metadata.namespace}/${entry.pod.name} started on ${entry.address}${missing.length ? ` (not started: ${missing.join('; ')})` : ''}`);
        await entry.pod.waitReady({ timeoutMs: 60_000 }).catch((error: Error) => options.log(`pod ${entry.pod?.name}: ${error.message.split('\n')[0]}`));
      } catch (error) {
        options.log(`pod of StatefulSet ${sts.metadata.namespace}/${sts.metadata.name} cannot run: ${(error as Error).message.split('\n')[0]}`);
      }
    })();
  };

  const writeHosts = () => {
    const lines = ['127.0.0.1 localhost'];
    for (const { pod } of supervised.values()) if (pod) lines.push(`${pod.loopbackAddress} ${pod.hostnames.join(' ')}`);
    writeFileSync(options.hostsFile, `${lines.join('\n')}\n`);
  };

  const reconcile = async (tick: number) => {
    const response = await api.request<{ items: StatefulSet[] }>('GET', '/apis/apps/v1/statefulsets');
    if (response.status !== 200) return;
    const seen = new Set<string>();
    for (const sts of response.body.items) {
      const key = `${sts.metadata.namespace}/${sts.metadata.name}`;
      if ((sts.spec.replicas ?? 1) < 1) continue;
      seen.add(key);
      const templateHash = createHash('sha256').update(JSON.stringify(sts.spec.template)).digest('hex');
      const entry = supervised.get(key);
      if (entry && entry.templateHash === templateHash) {
        await entry.starting;
        if (entry.pod && tick % VOLUME_SYNC_EVERY === 0) await entry.pod.syncVolumes().catch(() => undefined);
        if (entry.pod) await entry.pod.patchStatefulSetStatus().catch(() => undefined);
        continue;
      }
      if (entry) {
        await entry.starting;
        await entry.pod?.stop();
        options.log(`pod template of ${key} changed: restarting its pod`);
      }
      const fresh: Supervised = { templateHash, address: entry?.address ?? `127.0.0.${nextAddress++}` };
      supervised.set(key, fresh);
      start(sts, fresh);
    }
    for (const [key, entry] of supervised) {
      if (seen.has(key)) continue;
      await entry.starting;
      await entry.pod?.stop();
      supervised.delete(key);
      writeHosts();
    }
  };

  const loop = (async () => {
    for (let tick = 0; !stopped; tick++) {
      await reconcile(tick).catch((error: Error) => options.log(`pod supervisor: ${error.message}`));
      await delay(POLL_MS);
    }
  })();

  return {
    pods: () => [...supervised.values()].flatMap((e) => (e.pod ? [e.pod] : [])),
    stop: async () => {
      stopped = true;
      await loop;
      for (const entry of supervised.values()) {
        await entry.starting;
        await entry.pod?.stop();
      }
      api.close();
    },
  };
}
