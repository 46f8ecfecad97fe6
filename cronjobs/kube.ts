// The one module that talks to the Kubernetes API. Writes are server-side apply with one field
// manager; reads return undefined on 404; optimistic-concurrency writes surface 409 as ConflictError.
import {
  ApiException,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from '@kubernetes/client-node';

export const FIELD_MANAGER = 'image-registry-operator';

/** Objects as plain JSON (timestamps are strings): the shapes of functions/types.ts and client-node's models. */
export interface AnyObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** A write lost an optimistic-concurrency race (HTTP 409); read again and retry. */
export class ConflictError extends Error {}

export interface Kube {
  read<T extends object>(ref: ObjectRef): Promise<T | undefined>;
  list<T extends object>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<T[]>;
  /** server-side apply (force: we own the fields we write) */
  apply<T extends object>(object: T): Promise<T>;
  /** server-side apply of the status subresource of one of our custom resources */
  applyStatus(object: AnyObject & { status: unknown }, plural: string): Promise<void>;
  /** create; AlreadyExists surfaces as ConflictError */
  create<T extends object>(object: T): Promise<T>;
  /** update guarded by metadata.resourceVersion; a stale version surfaces as ConflictError */
  replace<T extends object>(object: T): Promise<T>;
  /** deletes; false when it was already gone */
  remove(ref: ObjectRef, options?: { propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'; uid?: string }): Promise<boolean>;
}

export function loadKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];
type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/**
 * client-node 2.0 gives every request a new undici Agent, so every request opened a TLS connection of
 * its own (a handshake and a secure context each: most of a Job's CPU time). One dispatcher per
 * KubeConfig keeps connections alive between requests; its TLS settings come from the kubeconfig.
 */
function reuseConnections(config: KubeConfig): void {
  const apply = config.applySecurityAuthentication.bind(config);
  let shared: Dispatcher | undefined;
  config.applySecurityAuthentication = async (context: RequestContext) => {
    await apply(context);
    const fresh = context.getDispatcher();
    if (!fresh) return;
    shared ??= fresh;
    if (fresh !== shared) {
      context.setDispatcher(shared);
      void fresh.close();
    }
  };
}

export function connectKube(config: KubeConfig = loadKubeConfig()): Kube {
  reuseConnections(config);
  const objects = KubernetesObjectApi.makeApiClient(config);
  const customObjects = config.makeApiClient(CustomObjectsApi);
  return {
    read: async <T extends object>(ref: ObjectRef) => {
      try {
        return plain((await objects.read(header(ref) as never)) as T);
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw describe(error, 'read', ref);
      }
    },
    // One unpaged list: client-node deserializes the list metadata of a custom resource as ObjectMeta,
    // which drops `continue`, so a paged list of our CRs silently ended after its first 500 items.
    // Unpaged lists come from the API server's watch cache, which answers 429 while it (re)initializes
    // (e.g. right after a CRD was created): retried for a few seconds.
    list: async <T extends object>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string) => {
      for (let attempt = 1; ; attempt++) {
        try {
          const list = await objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
          return list.items.map((item) => plain<T>({ ...item, apiVersion, kind }));
        } catch (error) {
          if (statusOf(error) !== 429 || attempt >= 10) throw describe(error, 'list', { apiVersion, kind, namespace, name: '' });
          await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
        }
      }
    },
    apply: async <T extends object>(object: T) =>
      plain<T>(await objects.patch(object as KubernetesObject, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
        .catch((error: unknown) => { throw describe(error, 'apply', refOf(object)); })),
    applyStatus: async (object, plural) => {
      const [group, version] = splitApiVersion(object.apiVersion ?? '');
      const ref = refOf(object);
      await customObjects.patchNamespacedCustomObjectStatus(
        { group, version, plural, namespace: ref.namespace ?? '', name: ref.name, body: { apiVersion: object.apiVersion, kind: object.kind, metadata: { name: ref.name, namespace: ref.namespace }, status: object.status }, fieldManager: FIELD_MANAGER, force: true },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      ).catch((error: unknown) => { throw describe(error, 'apply status of', ref); });
    },
    create: async <T extends object>(object: T) =>
      plain<T>(await objects.create(object as KubernetesObject, undefined, undefined, FIELD_MANAGER)
        .catch((error: unknown) => { throw describe(error, 'create', refOf(object)); })),
    replace: async <T extends object>(object: T) =>
      plain<T>(await objects.replace(object as KubernetesObject, undefined, undefined, FIELD_MANAGER)
        .catch((error: unknown) => { throw describe(error, 'replace', refOf(object)); })),
    remove: async (ref, options = {}) => {
      const body = options.uid ? { preconditions: { uid: options.uid } } : undefined;
      try {
        await objects.delete(header(ref), undefined, undefined, undefined, undefined, options.propagationPolicy ?? 'Background', body);
        return true;
      } catch (error) {
        if (statusOf(error) === 404) return false;
        throw describe(error, 'delete', ref);
      }
    },
  };
}

function header(ref: ObjectRef): KubernetesObject & { metadata: { name: string } } {
  return { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } };
}

function refOf(object: AnyObject): ObjectRef {
  return { apiVersion: object.apiVersion ?? '', kind: object.kind ?? '', namespace: object.metadata?.namespace, name: object.metadata?.name ?? '' };
}

function splitApiVersion(apiVersion: string): [string, string] {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? ['', apiVersion] : [apiVersion.slice(0, slash), apiVersion.slice(slash + 1)];
}

/** The typed models carry Date objects and undefined fields; callers work on plain JSON. */
function plain<T>(value: unknown): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export function statusOf(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

/** Turns an ApiException into an Error that names the object and the API server's message. */
function describe(error: unknown, verb: string, ref: ObjectRef): Error {
  if (!(error instanceof ApiException)) return error as Error;
  const where = `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
  const message = `${verb} ${where}: HTTP ${error.code}: ${apiMessage(error.body)}`;
  return error.code === 409 ? new ConflictError(message) : Object.assign(new Error(message), { code: error.code });
}

function apiMessage(body: unknown): string {
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return (body as { message?: string } | undefined)?.message ?? String(body);
}
