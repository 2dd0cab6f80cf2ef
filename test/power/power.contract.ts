// The power driver contract (conductor/power/driver.ts), one suite run against every driver with
// a peer it can be checked on: fake (its own state), ipmi + ipmi_sim, redfish + the Redfish BMC
// emulator. The peer is read directly, never through the driver under test.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BmcCredentials, PowerDriver } from '../../conductor/power/driver.ts';
import { isKilnError } from '../../shared/errors.ts';

export interface ContractPeer {
  power(): 'on' | 'off';
  /** Change power behind the driver's back. */
  setPower(state: 'on' | 'off'): void;
  /** The boot device the BMC was last told, as pxe | disk | cdrom, or null for none. */
  bootDevice(): string | null;
}

export interface ContractSubject {
  driver: PowerDriver;
  creds: BmcCredentials;
  /** The same BMC with a wrong password. */
  wrongCreds: BmcCredentials;
  peer: ContractPeer;
  close(): Promise<void>;
}

export function powerContract(name: string, setup: () => Promise<ContractSubject>): void {
  describe(`power driver contract: ${name}`, () => {
    let s: ContractSubject;
    before(async () => {
      s = await setup();
    });
    after(async () => {
      await s?.close();
    });

    it('validate succeeds with the right credentials', async () => {
      await s.driver.validate(s.creds);
    });

    it('getPower reads what the BMC reports', async () => {
      s.peer.setPower('off');
      assert.equal(await s.driver.getPower(s.creds), 'off');
      s.peer.setPower('on');
      assert.equal(await s.driver.getPower(s.creds), 'on');
    });

    it('on and off reach the state and are idempotent', async () => {
      s.peer.setPower('off');
      await s.driver.setPower(s.creds, 'on');
      assert.equal(s.peer.power(), 'on');
      await s.driver.setPower(s.creds, 'on');
      assert.equal(s.peer.power(), 'on');
      await s.driver.setPower(s.creds, 'off');
      assert.equal(s.peer.power(), 'off');
      await s.driver.setPower(s.creds, 'off');
      assert.equal(s.peer.power(), 'off');
      assert.equal(await s.driver.getPower(s.creds), 'off');
    });

    it('soft is accepted on a running node and is a no-op on one that is off', async () => {
      s.peer.setPower('on');
      await s.driver.setPower(s.creds, 'soft');
      // Every peer here shuts down at once on the ACPI request.
      assert.equal(s.peer.power(), 'off');
      await s.driver.setPower(s.creds, 'soft');
      assert.equal(s.peer.power(), 'off');
    });

    it('reboot ends powered on, from off and from on', async () => {
      s.peer.setPower('off');
      await s.driver.setPower(s.creds, 'reboot');
      assert.equal(s.peer.power(), 'on');
      await s.driver.setPower(s.creds, 'reboot');
      assert.equal(s.peer.power(), 'on');
      assert.equal(await s.driver.getPower(s.creds), 'on');
    });

    it('sets the boot device, one-time and persistent', async () => {
      await s.driver.setBootDevice(s.creds, 'pxe');
      assert.equal(s.peer.bootDevice(), 'pxe');
      await s.driver.setBootDevice(s.creds, 'disk', { persistent: true });
      assert.equal(s.peer.bootDevice(), 'disk');
      await s.driver.setBootDevice(s.creds, 'cdrom', { persistent: false, mode: 'uefi' });
      assert.equal(s.peer.bootDevice(), 'cdrom');
    });

    it('a wrong password fails with BMC_ERROR naming the BMC, without the password', async () => {
      await assert.rejects(s.driver.getPower(s.wrongCreds), (e: unknown) => {
        assert.ok(isKilnError(e), `expected a KilnError, got ${String(e)}`);
        assert.equal(e.code, 'BMC_ERROR');
        assert.match(e.message, /rejected the credentials/);
        assert.ok(!e.message.includes(s.wrongCreds.password!), 'message must not carry the password');
        assert.ok(
          !JSON.stringify(e.details).includes(s.wrongCreds.password!),
          'details must not carry the password',
        );
        return true;
      });
    });
  });
}
