// The real CronJob controller with our CronJobs' settings: a schedule fires a Job, concurrencyPolicy
// Forbid skips a run while the previous one is still active (as the rotation and resync CronJobs
// rely on), and a finished Job disappears after ttlSecondsAfterFinished. Takes about two minutes:
// a schedule fires at most once a minute.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadAll } from 'js-yaml';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { testCluster } from '../support/cluster.ts';
import { waitFor } from '../support/processes.ts';

type Obj = Record<string, any>;
const cronjobsYaml = fileURLToPath(new URL('../../kustomize/cronjobs.yaml', import.meta.url));

test('our CronJobs forbid overlapping runs and clean up finished Jobs', () => {
  const cronJobs = (loadAll(readFileSync(cronjobsYaml, 'utf8')) as Obj[]).filter((o) => o?.kind === 'CronJob');
  assert.ok(cronJobs.length >= 2);
  for (const cronJob of cronJobs) {
    assert.is(cronJob.spec.concurrencyPolicy, 'Forbid', cronJob.metadata.name);
    assert.ok(cronJob.spec.jobTemplate.spec.ttlSecondsAfterFinished > 0, cronJob.metadata.name);
  }
});

test('a schedule fires a Job; Forbid skips the next run while it is active; the Job goes after its TTL', async () => {
  const cluster = await testCluster();
  const ns = await cluster.createNamespace('cron');
  const cronJob = {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'every-minute' },
    spec: {
      schedule: '* * * * *',
      concurrencyPolicy: 'Forbid',
      jobTemplate: {
        spec: {
          backoffLimit: 0,
          ttlSecondsAfterFinished: 2,
          template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'image-registry-operator:0.1.0', command: ['node', '-e', 'setTimeout(() => console.log("done"), 70000)'] }] } },
        },
      },
    },
  };
  const created = await cluster.kubectl(['create', '-f', '-'], { input: JSON.stringify(cronJob), namespace: ns });
  assert.is(created.code, 0, created.stderr);
  const jobs = async () => (JSON.parse((await cluster.kubectl(['get', 'jobs', '-o', 'json'], { namespace: ns })).stdout) as { items: Obj[] }).items;
  await waitFor('the first scheduled Job', async () => (await jobs()).length > 0, 75_000);
  const [first] = await jobs();
  // the next minute's run is due while the first still sleeps: Forbid skips it
  const nextMinute = 60_000 - (Date.now() % 60_000) + 5_000;
  await new Promise((resolve) => setTimeout(resolve, nextMinute));
  const during = await jobs();
  assert.equal(during.map((j) => j.metadata.name), [first?.metadata.name], 'no second Job while the first is active');
  await waitFor('the first Job to complete and be deleted after its TTL', async () => !(await jobs()).some((j) => j.metadata.name === first?.metadata.name), 90_000);
  await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

test.run();
