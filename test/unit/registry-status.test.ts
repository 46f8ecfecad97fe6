import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { statefulSetRolledOut, type StatefulSetState } from '../../functions/registry-status.ts';

const template = { 'registry.mgoltzsche.github.com/rollout-checksum': 'new' };

/** A StatefulSet whose controller finished rolling out `replicas` pods of the template. */
function rolledOut(replicas: number): StatefulSetState {
  return {
    metadata: { generation: 4 },
    spec: { replicas, template: { metadata: { annotations: { ...template, other: 'x' } } } },
    status: { observedGeneration: 4, replicas, updatedReplicas: replicas, readyReplicas: replicas, currentRevision: 'reg-2', updateRevision: 'reg-2' },
  };
}

test('statefulSetRolledOut: every replica updated and ready, revisions equal, template as applied', () => {
  assert.ok(statefulSetRolledOut(rolledOut(1), template));
  assert.ok(statefulSetRolledOut(rolledOut(3), template));
  assert.ok(statefulSetRolledOut(rolledOut(1), {}), 'no annotation to check');
});

test('statefulSetRolledOut: false while the controller or the pods are behind', () => {
  const changed = (patch: (s: StatefulSetState) => void) => {
    const copy = structuredClone(rolledOut(2));
    patch(copy);
    return statefulSetRolledOut(copy, template);
  };
  assert.not.ok(statefulSetRolledOut(undefined, template));
  assert.not.ok(changed((s) => (s.status!.observedGeneration = 3)), 'latest spec not yet observed');
  assert.not.ok(changed((s) => (s.status!.updatedReplicas = 1)), 'an old pod is left');
  assert.not.ok(changed((s) => (s.status!.readyReplicas = 1)), 'a new pod is not ready');
  assert.not.ok(changed((s) => (s.status!.replicas = 3)), 'a pod too many (scaling down)');
  assert.not.ok(changed((s) => (s.status!.currentRevision = 'reg-1')), 'the controller has not completed the update');
  assert.not.ok(changed((s) => delete s.status!.currentRevision), 'no revision reported yet');
  assert.not.ok(changed((s) => (s.spec!.template!.metadata!.annotations![Object.keys(template)[0]!] = 'old')), 'another template (someone applied since)');
});

test('statefulSetRolledOut: scaled to zero is rolled out (no pod runs an older template); counts left out are 0', () => {
  const zero = rolledOut(0);
  delete zero.status!.updatedReplicas;
  delete zero.status!.readyReplicas;
  assert.ok(statefulSetRolledOut(zero, template));
});

test.run();
