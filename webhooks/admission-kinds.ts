// What the webhook does for each of our kinds, one entry a kind: its defaults (the mutating
// webhook), its checks, the registry it refers to and the registries a change concerns (the
// validating webhook). The app dispatches on the admission's kind once, by looking it up here; a
// kind that is not here is none of ours.
import { isManagedAccount } from '../functions/accounts.ts';
import { defaultImageRegistry, defaultImageSecret, resolveRegistryRef } from '../functions/defaults.ts';
import { field, type JsonPatchOp } from '../functions/json-patch.ts';
import type { RegistryKey } from '../functions/reconcile-job.ts';
import { API_GROUP, API_VERSION, type ImageRegistryAccount, type Kind, type OperatorConfig } from '../functions/types.ts';
import { validateImageRegistryAccount } from '../functions/validation/account.ts';
import { validateImageSecret } from '../functions/validation/image-secret.ts';
import { validateImageRegistry } from '../functions/validation/registry.ts';
import type { AdmissionRequest } from './admission.ts';

export interface KindContext {
  config: OperatorConfig;
  /** the namespace of the admitted object */
  namespace: string;
  /** the previous object on UPDATE, else undefined */
  old: unknown;
}

export interface ConcernsContext extends KindContext {
  /** the names of the ImageRegistries in a namespace */
  registriesIn: (namespace: string) => Promise<string[]>;
}

export interface AdmissionKind {
  /** JSON Patch `add` operations for what a created or updated object lacks */
  defaults: (object: unknown, context: KindContext) => JsonPatchOp[];
  /** every problem of a created or updated object */
  validate: (object: unknown, old: unknown) => string[];
  /** the ImageRegistry a created or updated object refers to; a missing one is worth a warning */
  referencedRegistry?: (object: unknown, context: KindContext) => RegistryKey;
  /** the registries whose desired state the admitted change concerns: their reconcile is enqueued */
  concerns: (request: AdmissionRequest, context: ConcernsContext) => RegistryKey[] | Promise<RegistryKey[]>;
}

/** The object as created or updated, or as it was before a DELETE. */
function subject(request: AdmissionRequest): unknown {
  return request.object ?? request.oldObject;
}

const imageSecret: AdmissionKind = {
  defaults: defaultImageSecret,
  validate: validateImageSecret,
  referencedRegistry: resolveRegistryRef,
  concerns: (request, context) => [resolveRegistryRef(subject(request), context)],
};

export const ADMISSION_KINDS: Readonly<Record<Kind, AdmissionKind>> = {
  ImageRegistry: {
    defaults: (object, { old, namespace }) => defaultImageRegistry(object, old, namespace),
    validate: validateImageRegistry,
    concerns: (request, { namespace }) => {
      const name = field(subject(request), 'metadata', 'name') || request.name;
      if (typeof name !== 'string' || name === '') throw new Error('the ImageRegistry has no name yet (generateName)');
      return [{ namespace, name }];
    },
  },
  ImageRegistryAccount: {
    defaults: () => [],
    validate: validateImageRegistryAccount,
    // an account change concerns every registry of its namespace
    concerns: async (request, { namespace, registriesIn }) => {
      // the Jobs create and delete the rotation accounts themselves and write the auth config in the
      // same run: a reconcile for those would only be a no-op Job one window later
      const account = subject(request) as ImageRegistryAccount | undefined;
      if (account?.metadata && isManagedAccount(account)) return [];
      return (await registriesIn(namespace)).map((name) => ({ namespace, name }));
    },
  },
  ImagePushSecret: imageSecret,
  ImagePullSecret: imageSecret,
};

/** The admission's kind and its entry when the kind is ours, else undefined. */
export function admissionKind(request: AdmissionRequest): { kind: Kind; handler: AdmissionKind } | undefined {
  const { group, version, kind } = request.kind;
  if (group !== API_GROUP || version !== API_VERSION || !Object.hasOwn(ADMISSION_KINDS, kind)) return undefined;
  return { kind: kind as Kind, handler: ADMISSION_KINDS[kind as Kind] };
}
