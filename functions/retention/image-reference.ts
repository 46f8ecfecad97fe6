// Image references as the cluster's workloads write them (`image:` of a container), read with
// docker's reference grammar (github.com/distribution/reference, normalize.go): a name without a
// domain is Docker Hub's (`docker.io`), a one-component name there is `library/<name>`, a first
// component is a domain when it holds `.` or `:`, is `localhost` or has an upper-case letter;
// `name:tag`, `name@digest` and `name:tag@digest`. Retention compares them with a registry's
// hostname to know which of its tags and manifests the cluster runs (in-use.ts).

export interface ImageReference {
  /** lower case; docker.io for Docker Hub (index.docker.io too) */
  host: string;
  repository: string;
  tag?: string;
  /** `<algorithm>:<hex>` */
  digest?: string;
}

const DOCKER_HUB = 'docker.io';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;

/** The reference, or undefined when it is not one (docker would refuse it too). */
export function parseImageReference(text: string): ImageReference | undefined {
  const trimmed = text.trim();
  const at = trimmed.indexOf('@');
  const digest = at >= 0 ? trimmed.slice(at + 1) : undefined;
  if (digest !== undefined && !DIGEST.test(digest)) return undefined;
  let name = at >= 0 ? trimmed.slice(0, at) : trimmed;
  // a tag is after the last ':' that follows the last '/' (a ':' before it is a port)
  const colon = name.lastIndexOf(':');
  let tag: string | undefined;
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const hasDomain = slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first);
  let host = hasDomain ? first.toLowerCase() : DOCKER_HUB;
  let repository = hasDomain ? name.slice(slash + 1) : name;
  if (hasDomain && !DOMAIN.test(first)) return undefined;
  if (host === 'index.docker.io') host = DOCKER_HUB;
  if (host === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (repository === '' || !repository.split('/').every((component) => COMPONENT.test(component))) return undefined;
  return { host, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Whether a reference's host is this registry's hostname (`:443`, the HTTPS port it serves on, is the same host). */
export function namesRegistry(reference: ImageReference, hostname: string): boolean {
  const host = hostname.toLowerCase();
  return reference.host === host || reference.host === `${host}:443`;
}
