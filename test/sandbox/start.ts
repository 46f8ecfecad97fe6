// `npm start [-- --data <dir>] [-- --s3]`: the whole toolkit on a local control plane, no cluster
// needed. Ctrl-C stops everything it started; with --data the directory (etcd data, pods' volumes)
// is kept. --s3 also runs an S3 server (versitygw) with a bucket for bucket registries.
import { parseArgs } from 'node:util';
import { startSandbox } from './sandbox.ts';

const { values } = parseArgs({ options: { data: { type: 'string' }, s3: { type: 'boolean' } } });
const sandbox = await startSandbox({ ...(values.data ? { dataDir: values.data } : {}), ...(values.s3 ? { s3: true } : {}) });

console.log(`
The sandbox is running (data: ${sandbox.dataDir}). In another shell:

  ${sandbox.envLines.join('\n  ')}
  kubectl apply -f kustomize/examples/registry.yaml -f kustomize/examples/imagepushsecret.yaml
  kubectl get imageregistry,imagepushsecret -w

The README's "Usage" section goes on from there. Ctrl-C here stops everything.
sandbox ready`);

// replace the immediate kill-on-signal of the test helpers with a graceful stop
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.removeAllListeners(signal);
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log('stopping the sandbox…');
    void sandbox.stop().then(() => {
      console.log('stopped');
      process.exit(0);
    });
  });
}
// keep the process alive until a signal arrives
setInterval(() => undefined, 1 << 30);
