import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  awaitsConfirmation,
  credentialCheckProblem,
  CREDENTIALS_PENDING,
  readyRegistryPods,
  tokenProbePath,
} from '../../functions/credential-check.ts';
import { GROUP_VERSION, type ImageSecret } from '../../functions/types.ts';

const pod = (name: string, ip: string | undefined, ready: boolean, deleting = false) => ({
  metadata: { name, ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  status: { ...(ip ? { podIP: ip } : {}), conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});

test('readyRegistryPods: only Ready pods with an IP that are not terminating, by name', () => {
  const pods = [pod('r-2', '10.0.0.3', true), pod('r-0', '10.0.0.1', true), pod('r-1', '10.0.0.2', false), pod('r-3', undefined, true), pod('r-4', '10.0.0.5', true, true)];
  assert.equal(readyRegistryPods(pods), [{ name: 'r-0', ip: '10.0.0.1' }, { name: 'r-2', ip: '10.0.0.3' }]);
  assert.equal(readyRegistryPods([]), []);
  assert.equal(readyRegistryPods([{ metadata: { name: 'x' }, status: { podIP: '10.0.0.9' } }]), [], 'no Ready condition: not ready');
});

test('tokenProbePath asks docker_auth for a login without scope, escaped', () => {
  assert.is(tokenProbePath('reg.ns.svc.example.org', 'push.ns.app.1'), '/auth/token?service=reg.ns.svc.example.org&account=push.ns.app.1');
  assert.is(tokenProbePath('h', 'a&b=c'), '/auth/token?service=h&account=a%26b%3Dc');
});


const cr = (status: ImageSecret['status']): ImageSecret => ({ apiVersion: GROUP_VERSION, kind: 'ImagePushSecret', metadata: { name: 'app', namespace: 'ns' }, spec: {}, ...(status ? { status } : {}) });
const condition = (status: 'True' | 'False', reason: string) => ({ type: 'Ready', status, reason, message: '', lastTransitionTime: '2026-01-01T00:00:00Z' });

test('awaitsConfirmation: credentials issued (a rotation in the status) but the CR is not Ready', () => {
  assert.ok(awaitsConfirmation(cr({ rotation: 1, conditions: [condition('False', 'RegistryNotReady')] })));
  assert.ok(awaitsConfirmation(cr({ rotation: 2, conditions: [] })));
  assert.not.ok(awaitsConfirmation(cr({ rotation: 1, conditions: [condition('True', 'Ready')] })), 'confirmed already');
  assert.not.ok(awaitsConfirmation(cr(undefined)), 'nothing issued yet');
  assert.not.ok(awaitsConfirmation(cr({ conditions: [condition('False', CREDENTIALS_PENDING)] })), 'nothing handed out yet');
});

test('credentialCheckProblem: confirmed → none; no ready pod → RegistryNotReady; time-out → CredentialsPending naming the pods and the cause', () => {
  assert.is(credentialCheckProblem({ outcome: 'confirmed', pods: ['r-0'] }, 'ns/r'), undefined);
  const none = credentialCheckProblem({ outcome: 'no-ready-pod' }, 'ns/r');
  assert.is(none?.reason, 'RegistryNotReady');
  assert.match(none?.message ?? '', 'registry ns/r has no ready pod');
  const late = credentialCheckProblem({ outcome: 'timeout', pods: ['r-0', 'r-1'], refusing: ['r-1'], waitedSeconds: 90 }, 'ns/r');
  assert.is(late?.reason, CREDENTIALS_PENDING);
  assert.match(late?.message ?? '', 'registry pod(s) r-1');
  assert.match(late?.message ?? '', 'after 90 s the registry did not load its new configuration');
});

test.run();
