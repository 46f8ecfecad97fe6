// Cold-start probe (bundled and run by the benchmark, never part of the product): the least a Job
// that uses @kubernetes/client-node does before its first API request — load the package, read
// KUBECONFIG, send one request. Its time is the floor for every Job entry point built on the client.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

const config = new KubeConfig();
config.loadFromDefault();
config
  .makeApiClient(CoreV1Api)
  .listNamespace()
  .then(
    () => process.exit(0),
    () => process.exit(0),
  );
