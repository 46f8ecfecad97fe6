// The pod's volumes in the kubelet stand-in's pod sandbox (test/support/pod-sandbox.ts), materialised
// under `<pod>/volumes/<name>` as the kubelet does it: Secret, ConfigMap, projected
// (serviceAccountToken via the TokenRequest API bound to the pod, configMap, secret, downwardAPI) and
// downwardAPI volumes in the atomic-writer layout (`..data` symlink swap), owned root:fsGroup;
// emptyDir a fresh directory; persistentVolumeClaim the hostPath of the claim's PersistentVolume;
// hostPath the same path under the kubelet's host root (`<kubelet>/host`, the "node's" file system:
// /etc/containerd/certs.d → <kubelet>/host/etc/containerd/certs.d), types DirectoryOrCreate,
// Directory and unset (as the kubelet: no check, a missing directory is created).
import { existsSync, lstatSync, mkdirSync } from 'node:fs';
import { join, normalize } from 'node:path';
import type { V1ObjectFieldSelector, V1Volume } from '@kubernetes/client-node';
import { setOwnership, writeAtomic } from './atomic-writer.ts';
import { configMapData, fieldValue, secretData, type PodSources } from './pod-sources.ts';

export interface VolumeContext extends PodSources {
  /** the pod's own directory; volumes go under volumes/ */
  podDir: string;
  fsGroup: number | undefined;
  /** where hostPath volumes live: the node's `/` */
  hostRoot: string;
  /** claim → host directory of its bound PersistentVolume; throws while unbound */
  claimDirectory(namespace: string, claim: string): Promise<string>;
}

const SUPPORTED = ['secret', 'configMap', 'emptyDir', 'persistentVolumeClaim', 'projected', 'downwardAPI', 'hostPath'] as const;

/** Whether the stand-in can materialise the volume's type. */
export const supportedVolume = (v: V1Volume) => SUPPORTED.some((type) => v[type]);

/** The volumes the kubelet rewrites on every sync; the others are set up once. */
const updatable = (v: V1Volume) => Boolean(v.secret || v.configMap || v.projected || v.downwardAPI);

/** Every volume of the pod, by name → the host directory its mounts bind. */
export async function materialiseVolumes(volumes: V1Volume[], vc: VolumeContext): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
  for (const volume of volumes) dirs.set(volume.name, await materialiseVolume(volume, vc));
  return dirs;
}

/** The kubelet's volume refresh: rewrites the Secret/ConfigMap/projected/downwardAPI volumes from the API. */
export async function refreshVolumes(volumes: V1Volume[], vc: VolumeContext): Promise<void> {
  for (const volume of volumes) if (updatable(volume)) await materialiseVolume(volume, vc);
}

/** A token for the pod's ServiceAccount bound to the pod, as the kubelet requests it. */
async function serviceAccountToken(vc: VolumeContext, source: { audience?: string; expirationSeconds?: number }): Promise<Buffer> {
  const { pod } = vc;
  const sa = pod.spec?.serviceAccountName || 'default';
  const response = await vc.api.request<{ status?: { token?: string }; message?: string }>('POST', `/api/v1/namespaces/${vc.namespace}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      ...(source.audience ? { audiences: [source.audience] } : {}),
      expirationSeconds: source.expirationSeconds ?? 3607,
      boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
    },
  });
  const token = response.body?.status?.token;
  if (response.status !== 201 || !token) throw new Error(`token for ServiceAccount ${vc.namespace}/${sa}: ${response.body?.message ?? `HTTP ${response.status}`}`);
  return Buffer.from(token);
}

function downwardFiles(vc: VolumeContext, items: { path: string; fieldRef?: V1ObjectFieldSelector; mode?: number }[], defaultMode: number): ProjectedFile[] {
  return items.map((item) => {
    if (!item.fieldRef) throw new Error(`downwardAPI ${item.path}: only fieldRef is supported by the kubelet stand-in`);
    return { path: item.path, data: Buffer.from(fieldValue(vc.pod, item.fieldRef.fieldPath, vc.podIp)), mode: item.mode ?? defaultMode };
  });
}

async function materialiseVolume(volume: V1Volume, vc: VolumeContext): Promise<string> {
  const dir = join(vc.podDir, 'volumes', volume.name);
  const what = `volume ${volume.name}`;
  if (volume.secret) {
    const data = await secretData(vc, volume.secret.secretName ?? '', volume.secret.optional, what);
    writeVolume(dir, project(volume.name, data, volume.secret.items, volume.secret.defaultMode ?? 0o644, volume.secret.optional), vc.fsGroup);
    return dir;
  }
  if (volume.configMap) {
    const data = await configMapData(vc, volume.configMap.name ?? '', volume.configMap.optional, what);
    writeVolume(dir, project(volume.name, data, volume.configMap.items, volume.configMap.defaultMode ?? 0o644, volume.configMap.optional), vc.fsGroup);
    return dir;
  }
  if (volume.downwardAPI) {
    writeVolume(dir, downwardFiles(vc, volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? 0o644), vc.fsGroup);
    return dir;
  }
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    const files: ProjectedFile[] = [];
    for (const source of volume.projected.sources ?? []) {
      if (source.serviceAccountToken) files.push({ path: source.serviceAccountToken.path, data: await serviceAccountToken(vc, source.serviceAccountToken), mode });
      else if (source.configMap) files.push(...project(volume.name, await configMapData(vc, source.configMap.name ?? '', source.configMap.optional, what), source.configMap.items, mode, source.configMap.optional));
      else if (source.secret) files.push(...project(volume.name, await secretData(vc, source.secret.name ?? '', source.secret.optional, what), source.secret.items, mode, source.secret.optional));
      else if (source.downwardAPI) files.push(...downwardFiles(vc, source.downwardAPI.items ?? [], mode));
      else throw new Error(`${what}: unsupported projected source`);
    }
    writeVolume(dir, files, vc.fsGroup);
    return dir;
  }
  if (volume.emptyDir) {
    mkdirSync(dir, { recursive: true });
    setOwnership(dir, 0o777, vc.fsGroup, false);
    return dir;
  }
  if (volume.persistentVolumeClaim) {
    const claimDir = await vc.claimDirectory(vc.namespace, volume.persistentVolumeClaim.claimName);
    setOwnership(claimDir, 0o755, vc.fsGroup, false);
    return claimDir;
  }
  if (volume.hostPath) return hostPathDirectory(vc.hostRoot, volume.hostPath.path, volume.hostPath.type, what);
  throw new Error(`${what}: unsupported type`);
}

interface ProjectedFile {
  path: string;
  data: Buffer;
  mode: number;
}

function project(volume: string, data: Record<string, Buffer>, items: { key: string; path: string; mode?: number }[] | undefined, defaultMode: number, optional?: boolean): ProjectedFile[] {
  if (!items?.length) return Object.entries(data).map(([key, value]) => ({ path: key, data: value, mode: defaultMode }));
  const files: ProjectedFile[] = [];
  for (const item of items) {
    const value = data[item.key];
    if (!value) {
      if (optional) continue;
      throw new Error(`volume ${volume}: key ${item.key} not found`);
    }
    const path = normalize(item.path);
    if (path.startsWith('..') || path.startsWith('/')) throw new Error(`volume ${volume}: item path ${item.path} leaves the volume`);
    files.push({ path, data: value, mode: item.mode ?? defaultMode });
  }
  return files;
}

/** The volume's directory, owned as fsGroup says, with the files in the kubelet's atomic-writer layout. */
function writeVolume(dir: string, files: ProjectedFile[], fsGroup: number | undefined): void {
  mkdirSync(dir, { recursive: true });
  setOwnership(dir, 0o755, fsGroup, true);
  writeAtomic(dir, Object.fromEntries(files.map((f) => [f.path, { data: f.data, mode: f.mode }])), { fsGroup });
}

/** A hostPath volume's directory under the node's root; only the directory types (files are not used by our pods). */
function hostPathDirectory(hostRoot: string, path: string, type: string | undefined, what: string): string {
  const clean = normalize(path);
  if (!clean.startsWith('/') || clean.split('/').includes('..')) throw new Error(`${what}: hostPath ${path} is not an absolute path`);
  const dir = join(hostRoot, clean);
  if (type === 'Directory') {
    if (!existsSync(dir) || !lstatSync(dir).isDirectory()) throw new Error(`${what}: hostPath ${path} is not a directory on the node`);
    return dir;
  }
  if (type !== undefined && type !== '' && type !== 'DirectoryOrCreate') throw new Error(`${what}: hostPath type ${type} is not supported by the kubelet stand-in`);
  // the kubelet creates DirectoryOrCreate directories 0755, owned by root
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}
