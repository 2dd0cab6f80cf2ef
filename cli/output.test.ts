// Output formats on their own: every -f format, -c, --sort, --long, tables fitted to a terminal
// (and never cut when piped), human units, and the in-place progress line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { CliError, EXIT } from './client.ts';
import { bytes, duration, type ListSpec, type OutputOpts, renderList, renderShow, table } from './output.ts';
import { ProgressView, statusLine } from './progress.ts';

const rows = [
  { uuid: 'u-2', name: 'beta', provision_state: 'clean wait', size: 10, note: 'say "hi", ok' },
  { uuid: 'u-1', name: 'alpha', provision_state: 'available', size: 9, note: null },
];
const spec: ListSpec = { key: 'nodes', columns: ['uuid', 'name'], long: ['uuid', 'name', 'provision_state'] };
const o = (over: Partial<OutputOpts>): OutputOpts => ({ format: 'table', ...over });

describe('renderList', () => {
  it('prints every format with the default columns, raw values, and the API shape in json/yaml', () => {
    assert.equal(renderList(rows, spec, o({})), 'UUID  NAME\nu-2   beta\nu-1   alpha');
    assert.deepEqual(JSON.parse(renderList(rows, spec, o({ format: 'json' }))), { nodes: rows });
    assert.deepEqual(parseYaml(renderList(rows, spec, o({ format: 'yaml' }))), { nodes: rows });
    assert.equal(renderList(rows, spec, o({ format: 'value' })), 'u-2 beta\nu-1 alpha');
    assert.equal(renderList(rows, spec, o({ format: 'csv' })), '"uuid","name"\n"u-2","beta"\n"u-1","alpha"');
  });

  it('-c picks columns in every format, csv escapes quotes, --long adds columns', () => {
    const c = o({ columns: ['name', 'note'] });
    assert.equal(renderList(rows, spec, { ...c, format: 'value' }), 'beta say "hi", ok\nalpha ');
    assert.equal(
      renderList(rows, spec, { ...c, format: 'csv' }),
      '"name","note"\n"beta","say ""hi"", ok"\n"alpha",""',
    );
    assert.deepEqual(JSON.parse(renderList(rows, spec, { ...c, format: 'json' })), {
      nodes: [
        { name: 'beta', note: 'say "hi", ok' },
        { name: 'alpha', note: null },
      ],
    });
    assert.match(
      renderList(rows, spec, o({ long: true })),
      /^UUID\s+NAME\s+PROVISION_STATE\nu-2\s+beta\s+clean wait/,
    );
  });

  it('--sort orders by one or more keys, numbers as numbers', () => {
    assert.equal(renderList(rows, spec, o({ format: 'value', sort: 'name' })), 'u-1 alpha\nu-2 beta');
    assert.equal(renderList(rows, spec, o({ format: 'value', sort: 'size:desc' })), 'u-2 beta\nu-1 alpha');
    assert.equal(
      renderList(
        [...rows, { uuid: 'u-3', name: 'alpha', size: 1 }],
        spec,
        o({ format: 'value', sort: 'name,size' }),
      ),
      'u-3 alpha\nu-1 alpha\nu-2 beta',
    );
  });

  it('refuses an unknown column or sort key as a usage error naming the columns there are', () => {
    for (const bad of [o({ columns: ['nmae'] }), o({ sort: 'nmae' }), o({ sort: 'name:up' })])
      assert.throws(
        () => renderList(rows, spec, bad),
        (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage && /nmae|name:up/.test(e.message),
      );
    assert.throws(
      () => renderList(rows, spec, o({ columns: ['nmae'] })),
      /columns are uuid, name, provision_state/,
    );
  });
});

describe('tables and the terminal', () => {
  const wide = [{ uuid: '0b6f3c9e-8a51-4cf5-9d0c-1f1e2d3c4b5a', last_error: 'x'.repeat(120), name: 'n1' }];
  it('cuts the widest columns with … to fit the terminal width', () => {
    const t = table(wide, ['uuid', 'name', 'last_error'], 60);
    for (const line of t.split('\n')) assert.ok(line.length <= 60, `${line.length}: ${line}`);
    assert.match(t, /x…$/m);
    assert.match(t, /n1/);
  });
  it('never cuts when there is no terminal (piped), nor in json, csv or value', () => {
    assert.ok(table(wide, ['uuid', 'name', 'last_error']).includes('x'.repeat(120)));
    for (const format of ['json', 'csv', 'value'] as const)
      assert.ok(
        renderList(wide, { key: 'nodes', columns: ['uuid', 'last_error'] }, { format, width: 40 }).includes(
          'x'.repeat(120),
        ),
        format,
      );
  });
});

describe('renderShow', () => {
  const img = { uuid: 'u1', name: 'deb', size: 2147483648, checksum: 'ab' };
  const human = (i: Record<string, unknown>) => ({ ...i, size: bytes(i.size as number) });
  it('shows human units in the table and raw values in json, yaml, value and csv; -c narrows all', () => {
    assert.match(renderShow(img, o({}), human), /^size\s+2\.0 GiB$/m);
    assert.equal(JSON.parse(renderShow(img, o({ format: 'json' }), human)).size, 2147483648);
    assert.equal(parseYaml(renderShow(img, o({ format: 'yaml' }), human)).size, 2147483648);
    assert.equal(
      renderShow(img, o({ format: 'value', columns: ['name', 'size'] }), human),
      'deb\n2147483648',
    );
    assert.equal(renderShow(img, o({ format: 'csv', columns: ['size'] }), human), '"size"\n"2147483648"');
    assert.equal(renderShow(img, o({ columns: ['size'] }), human), 'size  2.0 GiB');
  });
});

describe('units and progress', () => {
  it('bytes and durations', () => {
    assert.equal(bytes(512), '512 B');
    assert.equal(bytes(16 * 1024 ** 3), '16.0 GiB');
    assert.equal(duration(45), '45s');
    assert.equal(duration(200), '3m 20s');
    assert.equal(duration(3700), '1h 01m');
  });

  const status = {
    name: 'n1',
    provision_state: 'deploying',
    target_provision_state: 'active',
    progress: {
      phase: 'write_image',
      bytes_done: 1024 ** 3,
      bytes_total: 4 * 1024 ** 3,
      rate_bps: 100 * 1024 ** 2,
      eta_s: 31,
      step: 2,
      steps: 4,
    },
  };
  it('a status line with bar, bytes, rate, ETA and step', () => {
    assert.equal(
      statusLine(status, true),
      'deploying → active  write_image  [#####---------------] 25%  1.0 GiB of 4.0 GiB  100.0 MiB/s  ETA 31s  step 2 of 4',
    );
  });
  it('rewrites one line in place on a terminal, appends lines when piped', () => {
    const tty = { text: '', write: (s: string) => (tty.text += s), isTTY: true, columns: 200 };
    const v = new ProgressView(tty);
    v.show(status);
    v.show({ ...status, progress: { ...status.progress, bytes_done: 2 * 1024 ** 3 } });
    v.end();
    assert.equal(tty.text.split('\n').length, 2, 'one line, ended once');
    assert.equal(tty.text.match(/\r/g)?.length, 2);
    // Each draw clears the rest of the line (ESC [K); the last one is the newest.
    const draws = tty.text.split('\r').slice(1);
    assert.ok(draws.every((d) => d.includes('\u001b[K')));
    assert.match(draws.at(-1)!, /50%.*\n$/);
    const pipe = { text: '', write: (s: string) => (pipe.text += s), isTTY: false };
    const p = new ProgressView(pipe);
    p.show(status);
    p.show(status);
    p.show({ ...status, provision_state: 'active', target_provision_state: null, progress: null });
    assert.match(
      pipe.text,
      /^\d\d:\d\d:\d\d {2}n1 {2}deploying → active {2}write_image {2}25%.*\n\d\d:\d\d:\d\d {2}n1 {2}active\n$/,
    );
    assert.ok(!pipe.text.includes('\r') && !pipe.text.includes('#'));
  });
});
