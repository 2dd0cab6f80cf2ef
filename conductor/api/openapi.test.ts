// The OpenAPI document describes the node's inventory with the very schema the conductor
// validates inventories with, and every reference in it resolves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openApiDocument } from './openapi.ts';

test('the node view documents its inventory with the wire schema; every $ref resolves', () => {
  const doc = openApiDocument('test');
  const schemas = doc.components.schemas as Record<string, Record<string, unknown>>;
  const inv = schemas.Inventory!;
  assert.equal(inv.type, 'object');
  assert.equal('$schema' in inv, false, 'a component, not a standalone document');
  for (const k of ['interfaces', 'cpu', 'memory', 'disks', 'system_vendor', 'boot'])
    assert.ok((inv.required as string[]).includes(k), k);
  assert.equal((inv.required as string[]).includes('kiln_collector_failures'), false, 'Kiln-only, optional');
  assert.deepEqual(inv.additionalProperties, {}, "hardware managers' extra keys are allowed");
  const nic = (inv.properties as Record<string, { items: { required: string[] } }>).interfaces!.items;
  assert.ok(nic.required.includes('mac_address'));
  const show = doc.paths['/v1/nodes/{ident}'].get.responses['200'].content['application/json'].schema;
  assert.deepEqual(show, { $ref: '#/components/schemas/Node' });

  const refs: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) k === '$ref' ? refs.push(String(x)) : walk(x);
  };
  walk(doc);
  assert.ok(refs.includes('#/components/schemas/Inventory'));
  for (const r of refs) {
    const name = r.replace('#/components/schemas/', '');
    assert.ok(r.startsWith('#/components/schemas/') && schemas[name], `${r} resolves`);
  }
  JSON.stringify(doc);
});
