import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allowedActions, findTransition, PROVISION_STATES, TRANSITIONS, WAIT_STATES } from './states.ts';

describe('provision state table', () => {
  it('has no duplicate (from, event) rows', () => {
    const keys = TRANSITIONS.map((t) => `${t.from}|${t.event}`);
    assert.equal(new Set(keys).size, keys.length);
  });

  it('only names known states', () => {
    for (const t of TRANSITIONS) {
      assert.ok(PROVISION_STATES.includes(t.from), t.from);
      assert.ok(PROVISION_STATES.includes(t.to), t.to);
      if (t.target) assert.ok(PROVISION_STATES.includes(t.target), t.target);
    }
  });

  it('reaches every state from enroll', () => {
    const seen = new Set<string>(['enroll']);
    let grew = true;
    while (grew) {
      grew = false;
      for (const t of TRANSITIONS) {
        if (seen.has(t.from) && !seen.has(t.to)) {
          seen.add(t.to);
          grew = true;
        }
      }
    }
    assert.deepEqual([...seen].sort(), [...PROVISION_STATES].sort());
  });

  it('lets every wait state be aborted and failed', () => {
    for (const s of WAIT_STATES) {
      assert.ok(findTransition(s, 'abort'), `${s} abort`);
      assert.ok(findTransition(s, 'fail'), `${s} fail`);
    }
  });

  it('lists operator actions only', () => {
    assert.deepEqual(allowedActions('manageable').sort(), ['clean', 'inspect', 'provide']);
    assert.deepEqual(allowedActions('active').sort(), ['rebuild', 'undeploy']);
    assert.deepEqual(allowedActions('cleaning'), []);
  });
});
