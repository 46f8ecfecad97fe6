// Locates the real binaries the tests run: the directory printed by test/binaries/build.sh
// (which builds and caches them, or takes kube-apiserver/etcd/kubectl from KUBEBUILDER_ASSETS).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const buildScript = fileURLToPath(new URL('../binaries/build.sh', import.meta.url));

/** Directory holding kube-apiserver, etcd, kubectl, auth_server, registry and versitygw. */
export async function testBinaries(): Promise<string> {
  if (process.env.IRO_ASSETS) return process.env.IRO_ASSETS;
  const result = spawnSync('bash', [buildScript], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`test/binaries/build.sh failed with exit code ${result.status}`);
  const assets = result.stdout.trim().split('\n').at(-1) ?? '';
  process.env.IRO_ASSETS = assets;
  return assets;
}

/**
 * Why auth_server (docker_auth) is missing from the assets, or undefined when it is there.
 * Tests that need it skip with this reason rather than run a stand-in.
 */
export function authServerUnavailable(assetsDir: string): string | undefined {
  const marker = join(assetsDir, 'auth_server.unavailable');
  if (!existsSync(marker)) return undefined;
  const text = readFileSync(marker, 'utf8');
  const status = /: (\d{3} [A-Za-z ]+)\n/.exec(text)?.[1];
  const response = /server response: (.*)/.exec(text)?.[1];
  return status ? `the Go module proxy answered ${status}${response ? ` (${response})` : ''}` : text.trim().split('\n').at(-1);
}
