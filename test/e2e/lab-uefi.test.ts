// The whole lab flow under UEFI (OVMF) with Redfish BMCs, two VMs at once: PXE through iPXE's
// EFI loader, enrollment, cleaning, a deploy whose disk then boots through UEFI, and teardown.
// lab.test.ts runs the same flow with SeaBIOS and IPMI, plus the fault run.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runLabFlow } from '../../lab/flow.ts';

describe('lab end to end (QEMU, real PXE, two UEFI VMs, Redfish BMCs)', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'kiln-e2e-uefi-'));
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  it('takes two UEFI VMs from first power-on to active, booted from disk, and back', {
    timeout: 40 * 60_000,
  }, async (t) => {
    const lines: string[] = [];
    const r = await runLabFlow({
      vms: 2,
      bmc: 'redfish',
      firmware: 'uefi',
      stateDir,
      index: 8,
      apiPort: 16386,
      say: (l) => {
        lines.push(l);
        t.diagnostic(l);
      },
    });
    assert.equal(r.nodes.length, 2, 'two machines, two nodes');
    for (const node of r.nodes) {
      assert.equal(node.provision_state, 'available');
      assert.equal(node.last_error, null);
      assert.equal(node.properties.boot_mode, 'uefi', 'the inventory saw a UEFI boot');
      assert.match(node.bmc_address ?? '', /^redfish\+http:\/\//);
    }
    for (const vm of ['vm0', 'vm1']) {
      assert.ok(
        lines.some((l) => new RegExp(`KILN-DEMO-BOOTED hostname=demo-${vm}`).test(l)),
        `${vm} booted its disk`,
      );
      assert.ok(
        lines.some((l) => new RegExp(`${vm}: disk wiped`).test(l)),
        `${vm} was wiped`,
      );
    }
  });
});
