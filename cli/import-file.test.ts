import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImportFile } from './import-file.ts';

describe('bulk import file parser', () => {
  it('reads the hardware_info format and reports each bad line by number', () => {
    const text = [
      '# BMC-IP MAC USER PASSWORD',
      '10.1.91.4 00:1B:24:78:4C:B2 root password',
      '',
      '10.1.91.5 00:1B:24:78:4C:B3 root',
      '10.1.91.6 not-a-mac root pw',
      '10.1.91.7 00-1b-24-78-4c-b5 admin s3cret',
      '300.1.1.1@ 00:1b:24:78:4c:b6 admin pw',
    ].join('\n');
    const r = parseImportFile(text, 'hardware_info');
    assert.equal(r.format, 'hardware_info');
    assert.deepEqual(
      r.entries.map((e) => [e.line, e.node.bmc_address, e.node.bmc_password, e.node.ports]),
      [
        [2, 'ipmi://root@10.1.91.4', 'password', ['00:1b:24:78:4c:b2']],
        [6, 'ipmi://admin@10.1.91.7', 's3cret', ['00:1b:24:78:4c:b5']],
      ],
    );
    assert.deepEqual(
      r.problems.map((p) => p.line),
      [4, 5, 7],
    );
    assert.match(r.problems[0]!.message, /expected 4 fields/);
    assert.match(r.problems[1]!.message, /not a MAC address/);
  });

  it('reads a YAML list and reports bad entries by index', () => {
    const text = [
      '- name: a1',
      '  bmc_address: ipmi://admin@10.0.0.1',
      '  ports: ["52:54:00:00:00:01"]',
      '- name: "bad name"',
      '- name: a3',
      '  colour: blue',
    ].join('\n');
    const r = parseImportFile(text, 'nodes.yaml');
    assert.equal(r.format, 'yaml');
    assert.deepEqual(
      r.entries.map((e) => [e.line, e.node.name]),
      [[1, 'a1']],
    );
    assert.deepEqual(
      r.problems.map((p) => p.line),
      [2, 3],
    );
  });

  it('reads JSON, with or without a nodes: wrapper', () => {
    assert.equal(parseImportFile('[{"name":"j1"},{"name":"j2"}]', 'x.json').entries.length, 2);
    assert.equal(parseImportFile('{"nodes":[{"name":"j1"}]}', 'x.json').entries.length, 1);
    const bad = parseImportFile('[{"name":', 'x.json');
    assert.equal(bad.entries.length, 0);
    assert.match(bad.problems[0]!.message, /not valid JSON/);
  });
});
