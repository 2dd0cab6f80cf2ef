import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isKilnError } from '../shared/errors.ts';
import { loadConfig } from './config.ts';

describe('conductor config', () => {
  it('has working defaults', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.api.port, 6385);
    assert.equal(c.database.url, 'sqlite:kiln.db');
    assert.equal(c.conductor.fast_track, true);
  });

  it('layers file < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cfg-'));
    const file = join(dir, 'kiln.yaml');
    writeFileSync(
      file,
      'api:\n  port: 7000\n  host: 127.0.0.1\ndatabase:\n  url: sqlite:/var/lib/kiln/kiln.db\n',
    );
    const c = loadConfig({ file, env: { KILN_API_PORT: '7001' }, flags: { 'database.url': ':memory:' } });
    assert.equal(c.api.port, 7001);
    assert.equal(c.api.host, '127.0.0.1');
    assert.equal(c.database.url, ':memory:');
  });

  it('reports every invalid value at once, each with its source', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cfg-'));
    const file = join(dir, 'kiln.json');
    writeFileSync(
      file,
      JSON.stringify({ api: { port: 70000 }, conductor: { callback_timeout_s: -5 }, typo: 1 }),
    );
    assert.throws(
      () => loadConfig({ file, env: { KILN_LOG_LEVEL: 'loud', KILN_FAST_TRACK: 'maybe' } }),
      (e: unknown) => {
        assert.ok(isKilnError(e) && e.code === 'CONFIG_INVALID');
        const details = e.details as { path: string; source: string }[];
        const paths = details.map((d) => d.path).sort();
        assert.deepEqual(paths, [
          '',
          'api.port',
          'conductor.callback_timeout_s',
          'conductor.fast_track',
          'log.level',
        ]);
        assert.equal(details.find((d) => d.path === 'log.level')!.source, 'environment KILN_LOG_LEVEL');
        assert.equal(details.find((d) => d.path === 'api.port')!.source, `file ${file}`);
        assert.match(e.message, /5 problems/);
        return true;
      },
    );
  });

  it('names a config file that is not valid YAML', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cfg-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'api: [unclosed\n');
    assert.throws(() => loadConfig({ file }), new RegExp(`config file ${file} is not valid YAML`));
    assert.throws(() => loadConfig({ file: join(dir, 'missing.yaml') }), /cannot read config file/);
  });
});
