// Benchmark 10: where a registry keeps its data (functions/registry-storage.ts). Pushes and pulls
// through the nginx front to a registry on a bucket of a real S3 server (versitygw on loopback)
// vs section 6's registry on disk; and two replicas on one bucket (two registries sharing the
// bucket and http.secret, each behind a front of its own, as two pods behind the load balancer)
// with two clients at once vs the same two clients on one replica.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startNginx, startRegistry, type Nginx, type Registry } from '../support/front-processes.ts';
import { writeLargeOciImage } from '../support/large-image.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { frontInput, HOSTNAME, IP, skopeoCopy, type FrontBench, type Target } from './front.ts';
import type { Row, SectionResult } from './report.ts';
import { median } from './stats.ts';

export interface StorageOptions {
  sizeMiB: number;
  runs: number;
  progress: (message: string) => void;
}

const BUCKET = 'bench-images';

export async function storageSection(bench: FrontBench, options: StorageOptions): Promise<SectionResult> {
  const started = Date.now();
  const workDir = join(bench.workDir, 'storage');
  mkdirSync(workDir, { recursive: true });
  const s3 = await startS3Server({ assetsDir: bench.assets, workDir });
  const processes: { stop(): Promise<void> }[] = [];
  const shm = mkdtempSync('/dev/shm/iro-bench-storage-');
  try {
    s3.createBucket(BUCKET);
    const replica = async (registryIp: string, frontIp: string, name: string): Promise<{ registry: Registry; front: Nginx }> => {
      const registry = await startRegistry({
        binary: join(bench.assets, 'registry'), dir: workDir, address: `${registryIp}:5000`, hostname: HOSTNAME, name,
        bucket: { endpoint: s3.endpoint, bucket: BUCKET, accessKey: s3.accessKey, secretKey: s3.secretKey },
        ...(bench.auth ? { tokenCertPem: bench.pki.token.certPem } : {}),
      });
      processes.push(registry.process);
      const front = await startNginx({ dir: join(workDir, `front-${name}`), input: frontInput(bench.workDir, frontIp, registry.address), probe: `https://${frontIp}:8443/health` });
      processes.push(front.process);
      return { registry, front };
    };
    await replica(IP.bucketRegistryA, IP.bucketFrontA, 'registry-bucket-a');
    await replica(IP.bucketRegistryB, IP.bucketFrontB, 'registry-bucket-b');
    const auth = !bench.authMissing;
    const target = (key: Target['key'], host: string, label: string): Target => ({ key, label, host, tls: true, auth, processes: () => ({}) });
    const volume = target('front', `${IP.front}:8443`, 'volume');
    const bucketA = target('front', `${IP.bucketFrontA}:8443`, 'bucket, replica a');
    const bucketB = target('front', `${IP.bucketFrontB}:8443`, 'bucket, replica b');

    options.progress(`writing a ${options.sizeMiB} MiB image`);
    const image = writeLargeOciImage(join(shm, 'image'), 'v1', options.sizeMiB * 1024 * 1024);
    const mb = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
    const push = async (to: Target, repository: string) => (await skopeoCopy(bench, image.reference, `docker://${to.host}/${repository}:v1`, to, 'dest')).seconds;
    const pull = async (from: Target, repository: string) => {
      const dest = mkdtempSync(join(shm, 'pull-'));
      try {
        return (await skopeoCopy(bench, `docker://${from.host}/${repository}:v1`, `dir:${dest}`, from, 'src')).seconds;
      } finally {
        rmSync(dest, { recursive: true, force: true });
      }
    };
    // the images the pulls read; the bucket's is one image both replicas serve
    await push(volume, 'bench/storage-pull');
    await push(bucketA, 'bench/storage-pull');

    const single: Record<'volume' | 'bucket', { push: number[]; pull: number[] }> = { volume: { push: [], pull: [] }, bucket: { push: [], pull: [] } };
    const pair: Record<'one' | 'two', { push: number[]; pull: number[] }> = { one: { push: [], pull: [] }, two: { push: [], pull: [] } };
    for (let round = 0; round < options.runs; round++) {
      const kinds = round % 2 === 0 ? (['volume', 'bucket'] as const) : (['bucket', 'volume'] as const);
      for (const kind of kinds) {
        const to = kind === 'volume' ? volume : bucketA;
        // a new repository per push: no link to the blob there, so the whole layer is uploaded
        single[kind].push.push(mb(image.layerBytes, await push(to, `bench/storage-${kind}-${round}`)));
        single[kind].pull.push(mb(image.layerBytes, await pull(to, 'bench/storage-pull')));
        options.progress(`round ${round + 1}: ${kind}: push ${single[kind].push.at(-1)?.toFixed(1)} MB/s, pull ${single[kind].pull.at(-1)?.toFixed(1)} MB/s`);
      }
      const layouts = round % 2 === 0 ? (['one', 'two'] as const) : (['two', 'one'] as const);
      for (const layout of layouts) {
        const second = layout === 'one' ? bucketA : bucketB;
        // two clients at once; aggregate MB/s = both layers / the slower copy's wall time
        const pushed = await Promise.all([push(bucketA, `bench/storage-${layout}-${round}-1`), push(second, `bench/storage-${layout}-${round}-2`)]);
        pair[layout].push.push(mb(2 * image.layerBytes, Math.max(...pushed)));
        const pulled = await Promise.all([pull(bucketA, 'bench/storage-pull'), pull(second, 'bench/storage-pull')]);
        pair[layout].pull.push(mb(2 * image.layerBytes, Math.max(...pulled)));
        options.progress(`round ${round + 1}: two clients, ${layout} replica(s): push ${pair[layout].push.at(-1)?.toFixed(1)} MB/s, pull ${pair[layout].pull.at(-1)?.toFixed(1)} MB/s`);
      }
    }
    return storageReport({ single, pair, options, auth, s3, durationMs: Date.now() - started });
  } finally {
    for (const p of processes.reverse()) await p.stop();
    await s3.close();
    rmSync(shm, { recursive: true, force: true });
  }
}

function storageReport(input: {
  single: Record<'volume' | 'bucket', { push: number[]; pull: number[] }>;
  pair: Record<'one' | 'two', { push: number[]; pull: number[] }>;
  options: StorageOptions;
  auth: boolean;
  s3: S3Server;
  durationMs: number;
}): SectionResult {
  const { single, pair, options } = input;
  const paired = (a: number[], b: number[]) => median(a.map((value, i) => value / (b[i] ?? NaN)));
  const size = `${options.sizeMiB} MiB`;
  const rows: Row[] = [];
  for (const what of ['push', 'pull'] as const) {
    rows.push({
      figure: `${what} of a ${size} image through the front, bucket vs volume: MB/s`,
      result: `${median(single.bucket[what]).toFixed(1)} MB/s`,
      baseline: `${median(single.volume[what]).toFixed(1)} MB/s on the volume`,
      ratio: `${paired(single.bucket[what], single.volume[what]).toFixed(2)}×`,
      target: '–',
      limit: what === 'push'
        ? 'the s3 driver writes the upload as a multipart upload, then copies it server-side into blobs/ (the layer crosses the S3 server twice); the S3 server shares the 2 cores'
        : 'skopeo writing the files and TLS; the S3 server reads from the same disk',
    });
  }
  for (const what of ['push', 'pull'] as const) {
    rows.push({
      figure: `${what}: two clients at once on two replicas (one bucket) vs on one replica: aggregate MB/s`,
      result: `${median(pair.two[what]).toFixed(1)} MB/s`,
      baseline: `${median(pair.one[what]).toFixed(1)} MB/s on one replica`,
      ratio: `${paired(pair.two[what], pair.one[what]).toFixed(2)}×`,
      target: '–',
      limit: 'every process (two skopeo, two nginx, the registries, the S3 server) runs on the same 2 cores: a second replica adds no CPU here, as it would on a second node',
    });
  }
  const runs = (values: number[]) => values.map((v) => v.toFixed(1)).join(', ');
  const details = [
    `One image with a single uncompressed ${size} tar layer of random bytes, \`skopeo copy --preserve-digests\` (blob cache empty for each copy) through the generated nginx front with ${input.auth ? 'token auth by the real docker_auth' : '**no auth: docker_auth is unavailable**'}; the volume registry is section 6's (filesystem on disk). Bucket registries: the generated config.yml of a bucket registry (\`storage.s3\`, redirects off) on versitygw (posix backend on the same disk, plain HTTP on loopback); replicas a and b share the bucket and http.secret, each behind a front of its own. ${options.runs} interleaved rounds; each push to a new repository, pulls of one image. Two clients: both copies started together; aggregate MB/s = 2 layers / the slower copy's wall time.`,
    '',
    '| Copy | Runs (MB/s) |',
    '|---|---|',
    `| push, volume | ${runs(single.volume.push)} |`,
    `| push, bucket | ${runs(single.bucket.push)} |`,
    `| pull, volume | ${runs(single.volume.pull)} |`,
    `| pull, bucket | ${runs(single.bucket.pull)} |`,
    `| push, two clients, one replica | ${runs(pair.one.push)} |`,
    `| push, two clients, two replicas | ${runs(pair.two.push)} |`,
    `| pull, two clients, one replica | ${runs(pair.one.pull)} |`,
    `| pull, two clients, two replicas | ${runs(pair.two.pull)} |`,
  ];
  return { title: '10. Storage: bucket vs volume, two replicas vs one', rows, details, durationMs: input.durationMs };
}
