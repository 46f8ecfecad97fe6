// Validation of ImageRegistry spec.proxy (a pull-through cache); see formats.ts for the conventions.
import { isDuration, parseDuration } from '../duration.ts';
import { field, isPlainObject, jsonEqual } from '../json-patch.ts';
import { isTrustHost } from '../node-trust.ts';
import { isDns1123Subdomain, isIpOrCidr, serverUrlProblem, validateCaReference, validateKeyName, type Problems } from './formats.ts';

const PATH = 'spec.proxy';
const NEW_REGISTRY = 'create a new ImageRegistry instead: a cache holds what its upstream served under the upstream\'s names';

/** The upstream's URL: a server, nothing else (no credentials, path or query). */
const REMOTE_URL_MESSAGES = {
  missing: 'required; must be the upstream registry\'s URL, e.g. https://registry-1.docker.io',
  invalid: 'must be the upstream registry\'s URL, e.g. https://registry-1.docker.io',
  scheme: 'must start with https:// (or http:// for an upstream without TLS)',
  credentials: 'must not hold credentials; name a Secret in spec.proxy.credentialsSecret instead',
  path: 'must be the server only (scheme, host, port), without path or query: a cache mirrors a whole registry',
};


function credentialsProblems(secret: unknown, path: string): Problems {
  if (secret === undefined || secret === null) return [];
  if (!isPlainObject(secret)) return [`${path}: must be an object with name, usernameKey and passwordKey`];
  const problems: Problems = [];
  if (!isDns1123Subdomain(secret['name'])) problems.push(`${path}.name: required; the name of a Secret in the registry's namespace`);
  problems.push(...validateKeyName(secret['usernameKey'], `${path}.usernameKey`), ...validateKeyName(secret['passwordKey'], `${path}.passwordKey`));
  if (secret['usernameKey'] !== undefined && secret['usernameKey'] === secret['passwordKey']) problems.push(`${path}.passwordKey: must differ from usernameKey`);
  return problems;
}


function ttlProblems(ttl: unknown): Problems {
  if (ttl === undefined) return [];
  if (typeof ttl !== 'string' || !isDuration(ttl) || parseDuration(ttl) < 0) return [`${PATH}.ttl: must be a duration such as 168h (0 keeps cached content forever)`];
  return [];
}

function mirrorForProblems(mirrorFor: unknown, anonymousNetworks: unknown): Problems {
  if (mirrorFor === undefined || mirrorFor === null) return [];
  if (!Array.isArray(mirrorFor)) return [`${PATH}.mirrorFor: must be a list of image hosts, e.g. [docker.io]`];
  const problems: Problems = [];
  const seen = new Set<string>();
  mirrorFor.forEach((host, i) => {
    if (typeof host !== 'string' || !isTrustHost(host.toLowerCase())) problems.push(`${PATH}.mirrorFor[${i}]: must be an image host as in image references (a DNS name, optionally :port), e.g. docker.io`);
    else if (seen.has(host.toLowerCase())) problems.push(`${PATH}.mirrorFor[${i}]: ${host} is listed twice`);
    else seen.add(host.toLowerCase());
  });
  if (mirrorFor.length > 0 && !(Array.isArray(anonymousNetworks) && anonymousNetworks.length > 0)) {
    problems.push(`${PATH}.mirrorFor: needs ${PATH}.anonymousPull.networks: the kubelet sends no pull secret to a mirror, so node pulls reach the cache without credentials`);
  }
  return problems;
}

function anonymousPullProblems(anonymousPull: unknown, credentials: unknown): Problems {
  if (anonymousPull === undefined || anonymousPull === null) return [];
  const path = `${PATH}.anonymousPull`;
  if (!isPlainObject(anonymousPull)) return [`${path}: must be an object with networks`];
  const { networks, includePrivateUpstreamImages } = anonymousPull;
  const problems: Problems = [];
  if (!Array.isArray(networks) || networks.length === 0) problems.push(`${path}.networks: required; the client addresses (CIDRs) that may pull without credentials, e.g. the cluster's pod and node networks`);
  else networks.forEach((network, i) => {
    if (!isIpOrCidr(network)) problems.push(`${path}.networks[${i}]: must be an IP address or CIDR, e.g. 10.244.0.0/16`);
  });
  if (includePrivateUpstreamImages !== undefined && typeof includePrivateUpstreamImages !== 'boolean') problems.push(`${path}.includePrivateUpstreamImages: must be true or false`);
  if (credentials !== undefined && credentials !== null && includePrivateUpstreamImages !== true) {
    problems.push(`${path}.includePrivateUpstreamImages: must be true to allow pulls without credentials through ${PATH}.credentialsSecret: every image the upstream account can read, private ones included, becomes pullable from these networks`);
  }
  return problems;
}

/**
 * spec.proxy, and what it rules out: more than one replica (distribution keeps the expiry
 * schedule of cached content in one file, which replicas would overwrite: content that never
 * expires) and tag retention (tags are the upstream's; cached content expires by ttl). A registry
 * is a cache, of one upstream, from its creation on.
 */
export function validateProxy(spec: Record<string, unknown>, old: unknown): Problems {
  const proxy = spec['proxy'];
  const oldProxy = field(old, 'spec', 'proxy');
  const problems: Problems = [];
  if (old !== undefined && old !== null && (oldProxy === undefined || oldProxy === null) !== (proxy === undefined || proxy === null)) {
    problems.push(`${PATH}: cannot be ${proxy === undefined || proxy === null ? 'removed from' : 'added to'} an existing registry; ${NEW_REGISTRY}`);
  }
  if (proxy === undefined || proxy === null) return problems;
  if (!isPlainObject(proxy)) return [...problems, `${PATH}: must be an object with remoteURL, credentialsSecret, ca, ttl, mirrorFor and anonymousPull`];
  const { remoteURL, credentialsSecret, ca, ttl, mirrorFor, anonymousPull } = proxy;
  const urlProblem = serverUrlProblem(remoteURL, REMOTE_URL_MESSAGES);
  if (urlProblem) problems.push(`${PATH}.remoteURL: ${urlProblem}`);
  const oldUrl = field(oldProxy, 'remoteURL');
  if (oldUrl !== undefined && !jsonEqual(oldUrl, remoteURL)) problems.push(`${PATH}.remoteURL: is immutable (was ${JSON.stringify(oldUrl)}); ${NEW_REGISTRY}`);
  problems.push(...credentialsProblems(credentialsSecret, `${PATH}.credentialsSecret`), ...validateCaReference(ca, `${PATH}.ca`), ...ttlProblems(ttl));
  problems.push(...mirrorForProblems(mirrorFor, field(anonymousPull, 'networks')), ...anonymousPullProblems(anonymousPull, credentialsSecret));
  const replicas = spec['replicas'];
  if (typeof replicas === 'number' && replicas > 1) {
    problems.push('spec.replicas: a pull-through cache runs one replica: distribution keeps the expiry schedule of cached content in one file that several replicas would overwrite (content that never expires)');
  }
  const retention = field(spec, 'garbageCollection', 'retention');
  if (Array.isArray(retention) && retention.length > 0) {
    problems.push(`spec.garbageCollection.retention: a pull-through cache has no retention: its tags are the upstream's, and cached content expires after ${PATH}.ttl (garbage collection then reclaims the space)`);
  }
  return problems;
}
