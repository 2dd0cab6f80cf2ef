// The node an agent is shown (lookup, and every command's `node`) holds no secret, and still
// what the agent needs to act on (properties, root device hints, image layout).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeRecord } from '../store/store.ts';
import { agentNodeView, secureNode } from './agent-view.ts';

const node = {
  uuid: '1be26c0b-03f2-4d2d-ae87-c02d7f33c123',
  name: 'n1',
  driver: 'ipmi',
  bmc_address: 'ipmi://admin@10.0.0.5',
  bmc_password: 'bmc-Secret-1',
  properties: { cpu_arch: 'x86_64', root_device: { serial: 'S1' } },
  extra: { note: 'rack 4', api_token: 'extra-Secret-2' },
  instance_info: {
    image_uuid: 'i1',
    image_url: 'http://10.0.0.1/images/i1?node=n&sig=abc',
    image_source: 'https://user:img-Secret-3@origin.example/x.raw',
    root_gb: 10,
    configdrive: {
      user_data: '#cloud-config\npassword: tenant-Secret-4',
      public_keys: { k: 'ssh-ed25519 AAAA' },
    },
  },
  driver_internal_info: {
    agent_secret_token: 'agent-Secret-5',
    agent_url: 'https://10.0.0.9:9999',
    clean_step_index: 2,
  },
  inventory: null,
} as unknown as NodeRecord;

const SECRETS = [
  'bmc-Secret-1',
  'extra-Secret-2',
  'img-Secret-3',
  'tenant-Secret-4',
  'agent-Secret-5',
  'sig=abc',
  'AAAA',
];

test('commands and lookup carry the node without a secret, and with what the agent needs', () => {
  for (const view of [secureNode(node), agentNodeView(node, 'http://10.0.0.1:6386')]) {
    const text = JSON.stringify(view);
    for (const s of SECRETS) assert.ok(!text.includes(s), `${s} in ${text}`);
    const v = view as unknown as NodeRecord;
    assert.deepEqual(v.properties, node.properties);
    assert.equal(v.instance_info.root_gb, 10);
    assert.equal(v.instance_info.configdrive, '******');
    assert.equal(v.driver_internal_info.agent_secret_token, '******');
    assert.equal(v.driver_internal_info.clean_step_index, 2);
  }
  assert.ok(!('bmc_password' in secureNode(node)));
  assert.equal(secureNode(node).name, 'n1');
});
