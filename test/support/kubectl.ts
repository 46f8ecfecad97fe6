// Reading and writing objects with the real kubectl and the admin kubeconfig, as a person at the
// test cluster would. One argument order everywhere: the cluster, what (a kind and a name, or the
// objects), where (the namespace; '' for cluster-scoped kinds), then options. A read that may find
// nothing answers undefined; anything else kubectl refuses throws with kubectl's message, except
// kubectlApply, whose callers judge the refusal themselves (admission, validation).
import type { TestCluster } from './cluster.ts';

/** an object as kubectl prints it */
type Obj = Record<string, any>;
type Cluster = Pick<TestCluster, 'kubectl'>;
export type KubectlResult = Awaited<ReturnType<TestCluster['kubectl']>>;

export interface ListOptions {
  /** a label selector (`-l`) */
  selector?: string;
  fieldSelector?: string;
  /** a JSONPath to order the items by, e.g. `.metadata.creationTimestamp` */
  sortBy?: string;
}

/** The object as stored, or undefined when kubectl cannot get it (not found). */
export async function getObject<T = Obj>(cluster: Cluster, kind: string, name: string, namespace = ''): Promise<T | undefined> {
  const result = await cluster.kubectl(['get', kind, name, '-o', 'json'], { namespace });
  return result.code === 0 ? (JSON.parse(result.stdout) as T) : undefined;
}

/** The object as stored, which must exist. */
export async function requireObject<T = Obj>(cluster: Cluster, kind: string, name: string, namespace = ''): Promise<T> {
  const result = await cluster.kubectl(['get', kind, name, '-o', 'json'], { namespace });
  if (result.code !== 0) throw new Error(`kubectl get ${kind} ${name}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** The objects of the kind in the namespace (all of them, or those the selectors match). */
export async function listObjects<T = Obj>(cluster: Cluster, kind: string, namespace = '', options: ListOptions = {}): Promise<T[]> {
  const args = [
    'get', kind,
    ...(options.selector ? ['-l', options.selector] : []),
    ...(options.fieldSelector ? ['--field-selector', options.fieldSelector] : []),
    ...(options.sortBy ? [`--sort-by=${options.sortBy}`] : []),
    '-o', 'json',
  ];
  const result = await cluster.kubectl(args, { namespace });
  if (result.code !== 0) throw new Error(`kubectl get ${kind}: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { items: T[] }).items;
}

/** `kubectl apply [args] -f -` of the objects; kubectl's answer as it is, a refusal included. */
export function kubectlApply(cluster: Cluster, objects: object | object[], namespace = '', args: string[] = []): Promise<KubectlResult> {
  return cluster.kubectl(['apply', ...args, '-f', '-'], { input: jsonStream(objects), namespace });
}

/** `kubectl apply [args] -f -` of the objects, which must be accepted. */
export async function applyObjects(cluster: Cluster, objects: object | object[], namespace = '', args: string[] = []): Promise<void> {
  const result = await kubectlApply(cluster, objects, namespace, args);
  if (result.code !== 0) throw new Error(`applying ${names(objects)}: ${result.stderr}`);
}

/** How the tests install (kustomize/ and the like): a server-side apply as the field manager `tests`. */
export function installObjects(cluster: Cluster, objects: object | object[]): Promise<void> {
  return applyObjects(cluster, objects, '', serverSide('tests', { force: true }));
}

/**
 * The arguments of a server-side apply as fieldManager; with force, it takes over the fields
 * another manager owns (how the tests install: an earlier install's fields are theirs to change).
 */
export function serverSide(fieldManager: string, options: { force?: boolean } = {}): string[] {
  return ['--server-side', ...(options.force ? ['--force-conflicts'] : []), `--field-manager=${fieldManager}`];
}

/** `kubectl create -f -` of the objects, which must be accepted. */
export async function createObjects(cluster: Cluster, objects: object | object[], namespace = ''): Promise<void> {
  const result = await cluster.kubectl(['create', '-f', '-'], { input: jsonStream(objects), namespace });
  if (result.code !== 0) throw new Error(`creating ${names(objects)}: ${result.stderr}`);
}

const each = (objects: object | object[]): object[] => (Array.isArray(objects) ? objects : [objects]);

/** One JSON document per object, the stream `-f -` reads. */
const jsonStream = (objects: object | object[]) => each(objects).map((o) => JSON.stringify(o)).join('\n');

/** `Kind/name, …` for messages. */
const names = (objects: object | object[]) => each(objects).map((o: Obj) => `${o.kind}/${o.metadata?.name}`).join(', ');
