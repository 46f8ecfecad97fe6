// Settings of the webhook's TLS server from its environment (the env object is a parameter, so
// this is pure and unit-tested). The operator settings themselves come from operatorConfigFromEnv.

export interface WebhookServerConfig {
  port: number;
  /** undefined: every address */
  host?: string;
  /** PEM files mounted from the Secret image-registry-operator-webhook-tls */
  certFile: string;
  keyFile: string;
  /** how often the files are checked for a renewed certificate besides file-change events */
  reloadIntervalMs: number;
  /** how long in-flight requests may take to finish after SIGTERM */
  shutdownTimeoutMs: number;
}

export const WEBHOOK_SERVER_DEFAULTS = {
  WEBHOOK_PORT: '8443',
  WEBHOOK_TLS_CERT_FILE: '/etc/webhook/tls/tls.crt',
  WEBHOOK_TLS_KEY_FILE: '/etc/webhook/tls/tls.key',
  WEBHOOK_TLS_RELOAD_SECONDS: '60',
  WEBHOOK_SHUTDOWN_TIMEOUT_SECONDS: '10',
} as const;

/** Reads the server settings; throws one Error naming every bad variable. */
export function webhookServerConfigFromEnv(env: Record<string, string | undefined>): WebhookServerConfig {
  const problems: string[] = [];
  const read = (key: keyof typeof WEBHOOK_SERVER_DEFAULTS) => env[key]?.trim() || WEBHOOK_SERVER_DEFAULTS[key];
  const integer = (key: keyof typeof WEBHOOK_SERVER_DEFAULTS, min: number, max: number): number => {
    const text = read(key);
    const value = /^[0-9]+$/.test(text) ? Number(text) : NaN;
    if (!(value >= min && value <= max)) problems.push(`${key}=${JSON.stringify(text)}: must be an integer from ${min} to ${max}`);
    return value;
  };
  const port = integer('WEBHOOK_PORT', 1, 65535);
  const reloadSeconds = integer('WEBHOOK_TLS_RELOAD_SECONDS', 1, 86400);
  const shutdownSeconds = integer('WEBHOOK_SHUTDOWN_TIMEOUT_SECONDS', 0, 3600);
  const host = env.WEBHOOK_HOST?.trim() || undefined;
  if (problems.length > 0) throw new Error(`invalid webhook server configuration: ${problems.join('; ')}`);
  return {
    port,
    ...(host ? { host } : {}),
    certFile: read('WEBHOOK_TLS_CERT_FILE'),
    keyFile: read('WEBHOOK_TLS_KEY_FILE'),
    reloadIntervalMs: reloadSeconds * 1000,
    shutdownTimeoutMs: shutdownSeconds * 1000,
  };
}
