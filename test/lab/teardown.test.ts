// Everything a lab creates goes away when the process that created it is interrupted (SIGINT,
// SIGTERM), and what a SIGKILLed run left behind is removed by the next run's cleanup.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanupLabNetwork, createLabNetwork } from '../../lab/network.ts';
import { cleanupStaleVbmc } from '../../lab/vbmc.ts';
import { cleanupStaleVm } from '../../lab/vm.ts';
import { linkExists, linksStartingWith, processesWith, testLabIndex } from './support.ts';

interface Ready {
  bridge: string;
  tap: string;
  ra: boolean;
  qemu: number;
  ipmiSim: number;
  radvd: number | null;
  port: number;
}

const CHILD = join(import.meta.dirname, 'fixtures', 'lab-child.ts');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function startChild(index: number, dir: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, String(index), dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const ready = await new Promise<Ready>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`lab child not ready in 30 s: ${err}`)), 30_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /READY (\{.*\})\n/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(JSON.parse(m[1]!) as Ready);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`lab child exited with ${code}: ${err}`));
    });
  });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, s) => r(s)));
  return { child, ready, exited };
}

function assertAllGone(r: Ready, dir: string): void {
  assert.equal(linkExists(r.bridge), false, `bridge ${r.bridge} left behind`);
  assert.deepEqual(linksStartingWith(`${r.bridge}-`), [], 'taps left behind');
  assert.equal(alive(r.qemu), false, 'QEMU left running');
  assert.equal(alive(r.ipmiSim), false, 'ipmi_sim left running');
  if (r.radvd) assert.equal(alive(r.radvd), false, 'radvd left running');
  assert.deepEqual(processesWith(dir), [], 'a process still refers to the lab folder');
}

describe('lab teardown', { timeout: 120_000 }, () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} to the lab's process removes bridge, tap, QEMU, ipmi_sim and radvd`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kiln-lab-sig-'));
      dirs.push(dir);
      const index = testLabIndex(sig === 'SIGTERM' ? 31 : 32);
      const { child, ready, exited } = await startChild(index, dir);
      assert.ok(linkExists(ready.bridge));
      assert.ok(alive(ready.qemu) && alive(ready.ipmiSim));
      child.kill(sig);
      assert.equal(await exited, sig, 'the process still ends by the signal');
      assertAllGone(ready, dir);
    });
  }

  it('after SIGKILL, the next run cleans up what was left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-lab-kill-'));
    dirs.push(dir);
    const index = testLabIndex(33);
    const { child, ready, exited } = await startChild(index, dir);
    child.kill('SIGKILL');
    await exited;
    // Nothing could run: everything is still there.
    assert.ok(linkExists(ready.bridge));
    assert.ok(alive(ready.qemu));
    assert.ok(alive(ready.ipmiSim));
    assert.equal(cleanupStaleVm(join(dir, 'sig0')), true);
    cleanupStaleVbmc(join(dir, 'bmc'));
    // Creating the same lab again starts from a clean slate: stale taps, bridge and radvd are
    // removed, the radvd even though this run keeps its state in another folder.
    assert.ok(ready.radvd === null || alive(ready.radvd));
    const net = createLabNetwork({ index, stateDir: join(dir, 'net-next'), routerAdvertisements: false });
    assert.deepEqual(linksStartingWith(`${ready.bridge}-`), []);
    if (ready.radvd) assert.equal(alive(ready.radvd), false, 'stale radvd survived');
    net.down();
    cleanupLabNetwork(ready.bridge, join(dir, 'net'));
    assertAllGone(ready, dir);
    assert.equal(existsSync(join(dir, 'sig0', 'qemu.pid')), false);
  });
});
