// The whole of Kiln end to end, as `kiln lab up` runs it: two QEMU VMs at once PXE-boot on an
// isolated bridge, enroll themselves as two nodes, are cleaned, deployed with the demo image
// (after a fault run on the first, in which its agent is killed mid-write and the deploy fails,
// then a retry succeeds), boot the image, which prints the hostname from its config drive, and
// are undeployed and wiped again. BIOS with IPMI BMCs here; lab-uefi.test.ts does UEFI with
// Redfish.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runLabFlow } from '../../lab/flow.ts';

describe('lab end to end (QEMU, real PXE, two BIOS VMs, IPMI BMCs)', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'kiln-e2e-'));
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  it('takes two VMs from first power-on to active and back to available, surviving a killed agent', {
    timeout: 40 * 60_000,
  }, async (t) => {
    const lines: string[] = [];
    const r = await runLabFlow({
      vms: 2,
      bmc: 'ipmi',
      stateDir,
      index: 7,
      apiPort: 16385,
      faultRun: true,
      say: (l) => {
        lines.push(l);
        t.diagnostic(l);
      },
    });
    assert.equal(r.nodes.length, 2, 'two machines, two nodes');
    for (const node of r.nodes) {
      assert.equal(node.provision_state, 'available');
      assert.equal(node.last_error, null);
      assert.equal(node.bmc_password, '******');
      assert.ok(node.inventory, 'inventory stored at enrollment');
      assert.deepEqual(node.instance_info, {}, 'undeploy forgot the instance');
    }
    assert.deepEqual(r.nodes.map((n) => n.name).sort(), ['lab-vm0', 'lab-vm1']);
    const phases = r.timings.map((p) => p.phase);
    for (const p of [
      'power on → enrolled + inspected',
      'provide (cleaning)',
      'fault run: agent killed → deploy failed',
      'deploy (stream + verify + reboot)',
      'boot from disk → marker with hostname',
      'undeploy (cleaning, verified)',
    ]) {
      assert.ok(phases.includes(p), `phase ${p} ran`);
    }
    assert.ok(
      lines.some((l) =>
        // The agent, restarted by the ramdisk's init, looks up again while its token is out: a
        // security event that fails the deploy (or, if the conductor notices first, a plain failure).
        /deploy failed as expected: (deploying failed|wait call-back failed|security: a second ramdisk lookup .* while the agent token handed out for this boot is still outstanding)/.test(
          l,
        ),
      ),
      lines.join('\n'),
    );
    assert.ok(lines.some((l) => /KILN-DEMO-BOOTED hostname=demo-vm0/.test(l)));
    assert.ok(lines.some((l) => /KILN-DEMO-BOOTED hostname=demo-vm1/.test(l)));
  });
});
