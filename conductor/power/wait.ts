// After a BMC accepts "power on/off" the machine may take a moment to get there; callers of
// setPower expect the node to be in the new state when it returns, so poll until it is.
import { KilnError } from '../../shared/errors.ts';
import type { PowerStateValue } from './driver.ts';
import { sleep } from './retry.ts';

export async function waitForPower(
  read: () => Promise<PowerStateValue>,
  target: PowerStateValue,
  waitS: number,
  bmcLabel: string,
  signal?: AbortSignal,
): Promise<void> {
  if (waitS <= 0) return;
  const deadline = Date.now() + waitS * 1000;
  let delay = 100;
  for (;;) {
    const state = await read();
    if (state === target) return;
    if (Date.now() >= deadline) {
      throw new KilnError(
        'BMC_ERROR',
        `BMC ${bmcLabel} accepted power ${target} but still reports power ${state} after ${waitS} s; check the BMC's event log and the node's front panel, then retry`,
        { details: { bmc: bmcLabel, target, state } },
      );
    }
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal);
    delay = Math.min(delay * 2, 2000);
  }
}
