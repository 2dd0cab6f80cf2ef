// The configs docs/install.md ships (docs/examples/) load with the conductor's own parser, and the
// page shows them as they are, so the installation docs can't rot.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from './config.ts';
import { bootSettings } from './server.ts';

describe('installation docs', () => {
  it('loads every example config shipped in docs/examples; the DHCP server snippets parse', () => {
    const dir = resolve(import.meta.dirname, '..', 'docs', 'examples');
    const files = readdirSync(dir);
    const kiln = files.filter((f) => /^kiln-.*\.yaml$/.test(f)).sort();
    assert.deepEqual(kiln, ['kiln-full-dhcp.yaml', 'kiln-own-dhcp.yaml', 'kiln-proxy-dhcp.yaml']);
    const modes = kiln.map((f) => {
      const c = loadConfig({ file: join(dir, f), env: {} });
      assert.deepEqual(c.boot.interfaces, ['eno2'], f);
      assert.equal(c.database.url, 'sqlite:/var/lib/kiln/kiln.db', f);
      assert.equal(bootSettings(c).enabled, true, f);
      return c.boot.dhcp.mode;
    });
    assert.deepEqual(modes, ['full', 'off', 'proxy']);
    const kea = JSON.parse(readFileSync(join(dir, 'kea-dhcp4-kiln.json'), 'utf8'));
    assert.equal(kea.Dhcp4['client-classes'][0].name, 'kiln-ipxe');
    const dnsmasq = spawnSync('dnsmasq', ['--test', `--conf-file=${join(dir, 'dnsmasq-kiln.conf')}`], {
      encoding: 'utf8',
    });
    if (!dnsmasq.error) assert.match(dnsmasq.stderr + dnsmasq.stdout, /syntax check OK/);
  });

  it('docs/install.md shows each example file as it is', () => {
    const docs = resolve(import.meta.dirname, '..', 'docs');
    const md = readFileSync(join(docs, 'install.md'), 'utf8');
    // "[examples/NAME](examples/NAME):" followed by the file in a fenced block.
    const shown = [
      ...md.matchAll(/\[examples\/(kiln-[\w-]+\.yaml)\]\(examples\/\1\):\n\n```yaml\n([\s\S]*?)```/g),
    ];
    assert.deepEqual(shown.map((m) => m[1]).sort(), [
      'kiln-full-dhcp.yaml',
      'kiln-own-dhcp.yaml',
      'kiln-proxy-dhcp.yaml',
    ]);
    for (const [, name, block] of shown) {
      const file = readFileSync(join(docs, 'examples', name!), 'utf8');
      // The file's own header comment is not repeated in the page.
      assert.equal(block, file.replace(/^(#.*\n)+/, ''), name);
    }
    const unit = readFileSync(
      resolve(import.meta.dirname, '..', 'contrib', 'systemd', 'kiln-conductor.service'),
      'utf8',
    );
    assert.match(unit, /^Restart=on-failure$/m);
    assert.match(unit, /^StateDirectory=kiln$/m);
    assert.match(md, /contrib\/systemd\/kiln-conductor\.service/);
  });
});
