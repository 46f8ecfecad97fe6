// Signatures, attestations and SBOMs that cosign (and notation's fallback) store as tags of the
// repository of the image they describe: `sha256-<hex>` with `.sig`, `.att`, `.sbom` or no suffix,
// for the manifest `sha256:<hex>` (distribution 3.1 has no referrers API). They travel with their
// image: never counted as builds by a keep rule, kept while it is kept, deleted with it and when it
// is gone.
const ATTACHMENT = /^sha256-([0-9a-f]{64})(?:\.(?:sig|att|sbom))?$/;

/** The manifest digest a tag is an attachment of, or undefined for an ordinary tag. */
export function attachmentSubject(tag: string): string | undefined {
  const match = ATTACHMENT.exec(tag);
  return match ? `sha256:${match[1]}` : undefined;
}
