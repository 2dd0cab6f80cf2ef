import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKilnError } from '../../shared/errors.ts';
import type { NodeRecord } from '../store/store.ts';
import { createPowerRegistry, credsForNode } from './registry.ts';

type NodeBits = Pick<NodeRecord, 'uuid' | 'bmc_address' | 'bmc_password' | 'properties'>;
const node = (bits: Partial<NodeBits>): NodeBits => ({
  uuid: '5b3c1a52-2a7e-4f0c-9a43-0f5f7c1f6a10',
  bmc_address: null,
  bmc_password: null,
  properties: {},
  ...bits,
});

describe('createPowerRegistry', () => {
  it('serves ipmi, redfish and fake', async () => {
    const r = createPowerRegistry();
    assert.deepEqual(r.names(), ['ipmi', 'redfish', 'fake']);
    for (const n of r.names()) assert.equal(r.get(n).name, n);
    await r.close();
  });

  it('answers an unknown driver with BMC_UNSUPPORTED', () => {
    const r = createPowerRegistry();
    assert.throws(
      () => r.get('none'),
      (e: unknown) =>
        isKilnError(e) &&
        e.code === 'BMC_UNSUPPORTED' &&
        /power driver "none" is not supported/.test(e.message),
    );
  });
});

describe('credsForNode', () => {
  it('parses the address and takes the stored password and bmc_options', () => {
    const c = credsForNode(
      node({
        bmc_address: 'ipmi://admin@10.0.0.5:6230',
        bmc_password: 's3cret',
        properties: { bmc_options: { cipher_suite: 17 }, cpus: 8 },
      }),
    );
    assert.equal(c.bmc.driver, 'ipmi');
    assert.equal(c.bmc.host, '10.0.0.5');
    assert.equal(c.bmc.port, 6230);
    assert.equal(c.bmc.username, 'admin');
    assert.equal(c.password, 's3cret');
    assert.deepEqual(c.options, { cipher_suite: 17 });
  });

  it('falls back to a password left in the address, and never keeps it in bmc', () => {
    const c = credsForNode(
      node({ bmc_address: 'redfish+https://root:calvin@bmc.example/redfish/v1/Systems/A' }),
    );
    assert.equal(c.password, 'calvin');
    assert.equal(c.bmc.password, null);
    assert.equal(c.bmc.path, '/redfish/v1/Systems/A');
    assert.equal(c.options, undefined);
  });

  it('accepts bmc_options stored as JSON text, as the CLI --property writes it', () => {
    const c = credsForNode(
      node({ bmc_address: 'ipmi://a@h', properties: { bmc_options: '{"cipher_suite": 17}' } }),
    );
    assert.deepEqual(c.options, { cipher_suite: 17 });
  });

  it('refuses a node without a BMC, an unparseable address and non-object options', () => {
    assert.throws(
      () => credsForNode(node({})),
      (e: unknown) => isKilnError(e) && e.code === 'BMC_UNSUPPORTED',
    );
    assert.throws(
      () => credsForNode(node({ bmc_address: 'snmp://pdu1' })),
      (e: unknown) => isKilnError(e) && e.code === 'BMC_UNSUPPORTED' && /snmp/.test(e.message),
    );
    assert.throws(
      () => credsForNode(node({ bmc_address: 'ipmi://a@h', properties: { bmc_options: 'fast' } })),
      (e: unknown) => isKilnError(e) && e.code === 'VALIDATION_FAILED',
    );
  });
});
