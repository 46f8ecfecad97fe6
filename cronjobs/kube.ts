// The one module that talks to the Kubernetes API. Writes are server-side apply with one field
// manager (a guarded JSON Patch where the object belongs to others); reads return undefined on 404; every other failed answer is a KubeError (isConflict,
// isNotFound tell the cases callers handle).
//
// client-node's KubeConfig loads the configuration and authenticates every request (in a pod it
// re-reads the rotating ServiceAccount token file, exec plugins refresh their credentials); the
// requests themselves are plain JSON over one keep-alive connection pool of node:https. Through
// client-node's typed API clients each request cost a fetch() with web streams, a new undici Agent
// and ObjectSerializer round-trips of its bodies through typed models (which the callers turned back
// into JSON): most of a rotation Job's CPU (test/bench, section 3).
import http from 'node:http';
import https from 'node:https';
// KubeConfig alone: the package's index would also bundle its typed API clients (~130 KiB less per
// Job bundle). The package has no exports map; a future one that hides this path fails the build.
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';

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

/** The API server answered a request with an error: its HTTP code, Status reason and message, and the request. */
export class KubeError extends Error {
  constructor(
    readonly code: number,
    /** the Status reason, e.g. AlreadyExists, Conflict, Forbidden, Invalid ('' when the body had none) */
    readonly reason: string,
    readonly verb: string,
    /** `<Kind> <namespace>/<name>` */
    readonly object: string,
    apiMessage: string,
  ) {
    super(`${verb} ${object}: HTTP ${code}: ${apiMessage}`);
  }
}

/** HTTP 409: a create found the object (AlreadyExists) or a write lost an optimistic-concurrency race (Conflict). */
export function isConflict(error: unknown): error is KubeError {
  return error instanceof KubeError && error.code === 409;
}

export function isNotFound(error: unknown): error is KubeError {
  return error instanceof KubeError && error.code === 404;
}

export interface Kube {
  read<T extends object>(ref: ObjectRef): Promise<T | undefined>;
  list<T extends object>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<T[]>;
  /** every object of a kind in every namespace, `pageSize` at a time (limit/continue), each page handed to `page` and dropped */
  listPaged<T extends object>(apiVersion: string, kind: string, pageSize: number, page: (items: T[]) => void): Promise<{ requests: number }>;
  /** server-side apply (force: we own the fields we write) */
  apply<T extends object>(object: T): Promise<T>;
  /**
   * server-side apply of the status subresource of one of our custom resources; a field manager of
   * its own for a part of the status another Job writes (an apply drops the fields its manager left out)
   */
  applyStatus(object: AnyObject & { status: unknown }, plural: string, fieldManager?: string): Promise<void>;
  /** create; AlreadyExists is a KubeError for which isConflict holds */
  create<T extends object>(object: T): Promise<T>;
  /** update guarded by metadata.resourceVersion; a stale version is a KubeError for which isConflict holds */
  replace<T extends object>(object: T): Promise<T>;
  /**
   * RFC 6902 JSON Patch of an object others own (e.g. a ServiceAccount's imagePullSecrets, where a
   * server-side apply would take the list's ownership). Guard index-based operations with a `test` of
   * /metadata/resourceVersion. A failed test is HTTP 422 (reason Invalid, and nothing in the answer
   * says which operation failed): tell it from an invalid patch by reading the object again.
   */
  jsonPatch<T extends object>(ref: ObjectRef, ops: readonly object[]): Promise<T>;
  /** deletes; false when it was already gone */
  remove(ref: ObjectRef, options?: { propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'; uid?: string }): Promise<boolean>;
  /** the last lines of a container's log; undefined when the pod or its log is not there */
  containerLog(namespace: string, pod: string, container: string, tailLines: number): Promise<string | undefined>;
}

export function loadKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}

interface Response {
  status: number;
  body: unknown;
}

/** An answer other than 2xx: the HTTP status and the API server's body (a Status object, usually). */
class HttpError extends Error {
  constructor(readonly code: number, readonly body: unknown) {
    super(`HTTP ${code}`);
  }
}

type Send = (method: string, path: string, body?: unknown, contentType?: string) => Promise<Response>;

/**
 * Requests to the current cluster of `config`. Credentials come from the KubeConfig for every request
 * (applyToHTTPSOptions: bearer token, token file, exec plugin, basic auth, impersonation). The TLS
 * settings (CA, client certificate, verification, server name) are taken once, for one keep-alive
 * agent: a Job's hundreds of requests reuse a few connections instead of a handshake each.
 */
function requester(config: KubeConfig): Send {
  const server = config.getCurrentCluster()?.server.replace(/\/+$/, '');
  if (!server) throw new Error('kubeconfig: no current cluster');
  const secure = !server.startsWith('http:');
  const transport = secure ? https : http;
  // behind a proxy (cluster.proxyUrl) requests keep client-node's agent
  const proxied = Boolean(config.getCurrentCluster()?.proxyUrl);
  let agent: http.Agent | undefined;
  return async (method, path, body, contentType = 'application/json') => {
    const options: https.RequestOptions = { method, headers: {} };
    await config.applyToHTTPSOptions(options);
    // otherwise our keep-alive agent, made once from the first request's TLS options
    if (!proxied) {
      const tls = takeTlsOptions(options);
      agent ??= new transport.Agent({ keepAlive: true, keepAliveMsecs: 30_000, ...(secure ? tls : {}) });
      options.agent = agent;
    }
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = options.headers as http.OutgoingHttpHeaders;
    headers.Accept = 'application/json';
    if (payload) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = payload.length;
    }
    return new Promise<Response>((resolve, reject) => {
      const request = transport.request(`${server}${path}`, options, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          let parsed: unknown = text;
          if (/\bjson\b/.test(response.headers['content-type'] ?? '')) {
            try {
              parsed = JSON.parse(text);
            } catch {
              // a truncated or non-JSON body is reported as text
            }
          }
          if (status >= 200 && status < 300) resolve({ status, body: parsed });
          else reject(new HttpError(status, parsed));
        });
      });
      request.on('error', reject);
      request.end(payload);
    });
  };
}

const TLS_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

/**
 * Moves the TLS options out of a request's options: the agent holds them. Left in, they would be part
 * of every request's connection-pool key (node:https concatenates the CA and certificate into it).
 */
function takeTlsOptions(options: https.RequestOptions): https.AgentOptions {
  const tls: Record<string, unknown> = {};
  for (const name of TLS_OPTIONS) {
    if (options[name] !== undefined) tls[name] = options[name];
    delete options[name];
  }
  return tls as https.AgentOptions;
}

interface Resource {
  /** the collection's path, `/apis/<group>/<version>[/namespaces/<ns>]/<plural>` */
  collection(namespace?: string): string;
}

/** Where a kind lives (plural, namespaced), from the API server's discovery of its group version; asked once per group version. */
function resources(send: Send): (apiVersion: string, kind: string) => Promise<Resource> {
  const discovered = new Map<string, Promise<{ name: string; kind: string; namespaced: boolean }[]>>();
  return async (apiVersion, kind) => {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let list = discovered.get(apiVersion);
    if (!list) {
      list = send('GET', base).then((response) => (response.body as { resources: { name: string; kind: string; namespaced: boolean }[] }).resources);
      discovered.set(apiVersion, list);
      list.catch(() => discovered.delete(apiVersion));
    }
    const resource = (await list).find((r) => r.kind === kind && !r.name.includes('/'));
    if (!resource) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    return {
      collection: (namespace) => `${base}${resource.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${resource.name}`,
    };
  };
}

export function connectKube(config: KubeConfig = loadKubeConfig()): Kube {
  const send = requester(config);
  const resourceOf = resources(send);
  const objectPath = async (ref: ObjectRef) => `${(await resourceOf(ref.apiVersion, ref.kind)).collection(ref.namespace)}/${encodeURIComponent(ref.name)}`;
  const manager = `fieldManager=${FIELD_MANAGER}`;
  return {
    containerLog: async (namespace, pod, container, tailLines) => {
      const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log?container=${encodeURIComponent(container)}&tailLines=${tailLines}`;
      try {
        const { body } = await send('GET', path);
        return typeof body === 'string' ? body : undefined;
      } catch (error) {
        const status = statusOf(error);
        if (status === 404 || status === 400) return undefined;
        throw describe(error, 'read the log of', { apiVersion: 'v1', kind: 'Pod', namespace, name: pod });
      }
    },
    read: async <T extends object>(ref: ObjectRef) => {
      try {
        return (await send('GET', await objectPath(ref))).body as T;
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw describe(error, 'read', ref);
      }
    },
    // One unpaged list (the callers need every item; a paged list of a custom resource once lost
    // its `continue` token in client-node's typed models). Unpaged lists come from the API server's
    // watch cache, which answers 429 while it (re)initializes (e.g. right after a CRD was created):
    // retried for a few seconds.
    list: async <T extends object>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string) => {
      for (let attempt = 1; ; attempt++) {
        try {
          const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
          const list = (await send('GET', `${(await resourceOf(apiVersion, kind)).collection(namespace)}${query}`)).body as { items: object[] };
          // list items carry neither apiVersion nor kind
          return list.items.map((item) => ({ ...item, apiVersion, kind }) as T);
        } catch (error) {
          if (statusOf(error) !== 429 || attempt >= 10) throw describe(error, 'list', { apiVersion, kind, namespace, name: '' });
          await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
        }
      }
    },
    listPaged: async <T extends object>(apiVersion: string, kind: string, pageSize: number, page: (items: T[]) => void) => {
      let token: string | undefined;
      let requests = 0;
      do {
        const query = `?limit=${pageSize}${token ? `&continue=${encodeURIComponent(token)}` : ''}`;
        let list: { items: T[]; metadata?: { continue?: string } };
        try {
          list = (await send('GET', `${(await resourceOf(apiVersion, kind)).collection()}${query}`)).body as typeof list;
        } catch (error) {
          throw describe(error, 'list', { apiVersion, kind, name: '' });
        }
        requests++;
        page(list.items);
        token = list.metadata?.continue || undefined;
      } while (token);
      return { requests };
    },
    apply: async <T extends object>(object: T) => {
      const ref = refOf(object);
      try {
        return (await send('PATCH', `${await objectPath(ref)}?${manager}&force=true`, object, APPLY_PATCH)).body as T;
      } catch (error) {
        throw describe(error, 'apply', ref);
      }
    },
    applyStatus: async (object, plural, fieldManager) => {
      const ref = refOf(object);
      const [group, version] = splitApiVersion(ref.apiVersion);
      const path = `/apis/${group}/${version}/namespaces/${encodeURIComponent(ref.namespace ?? '')}/${plural}/${encodeURIComponent(ref.name)}/status`;
      const body = { apiVersion: object.apiVersion, kind: object.kind, metadata: { name: ref.name, namespace: ref.namespace }, status: object.status };
      try {
        await send('PATCH', `${path}?${fieldManager ? `fieldManager=${encodeURIComponent(fieldManager)}` : manager}&force=true`, body, APPLY_PATCH);
      } catch (error) {
        throw describe(error, 'apply status of', ref);
      }
    },
    create: async <T extends object>(object: T) => {
      const ref = refOf(object);
      try {
        return (await send('POST', `${(await resourceOf(ref.apiVersion, ref.kind)).collection(ref.namespace)}?${manager}`, object)).body as T;
      } catch (error) {
        throw describe(error, 'create', ref);
      }
    },
    replace: async <T extends object>(object: T) => {
      const ref = refOf(object);
      try {
        return (await send('PUT', `${await objectPath(ref)}?${manager}`, object)).body as T;
      } catch (error) {
        throw describe(error, 'replace', ref);
      }
    },
    jsonPatch: async <T extends object>(ref: ObjectRef, ops: readonly object[]) => {
      try {
        return (await send('PATCH', `${await objectPath(ref)}?${manager}`, ops, JSON_PATCH)).body as T;
      } catch (error) {
        throw describe(error, 'patch', ref);
      }
    },
    remove: async (ref, options = {}) => {
      const body = {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: options.propagationPolicy ?? 'Background',
        ...(options.uid ? { preconditions: { uid: options.uid } } : {}),
      };
      try {
        await send('DELETE', await objectPath(ref), body);
        return true;
      } catch (error) {
        if (statusOf(error) === 404) return false;
        throw describe(error, 'delete', ref);
      }
    },
  };
}

/** Server-side apply; JSON is YAML. */
const APPLY_PATCH = 'application/apply-patch+yaml';
const JSON_PATCH = 'application/json-patch+json';

function refOf(object: AnyObject): ObjectRef {
  return { apiVersion: object.apiVersion ?? '', kind: object.kind ?? '', namespace: object.metadata?.namespace, name: object.metadata?.name ?? '' };
}

function splitApiVersion(apiVersion: string): [string, string] {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? ['', apiVersion] : [apiVersion.slice(0, slash), apiVersion.slice(slash + 1)];
}

function statusOf(error: unknown): number | undefined {
  return error instanceof HttpError ? error.code : undefined;
}

/** Turns an HTTP error into a KubeError that names the request, the object and the API server's message. */
function describe(error: unknown, verb: string, ref: ObjectRef): Error {
  if (!(error instanceof HttpError)) return error as Error;
  const where = `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
  const reason = (error.body as { reason?: unknown } | undefined)?.reason;
  return new KubeError(error.code, typeof reason === 'string' ? reason : '', verb, where, apiMessage(error.body));
}

function apiMessage(body: unknown): string {
  if (typeof body === 'string') return body;
  return (body as { message?: string } | undefined)?.message ?? JSON.stringify(body);
}
