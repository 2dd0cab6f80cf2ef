// The collector seam: each collector fills part of the inventory. A collector that throws, or
// reports a partial failure through ctx.fail, never stops the others; the failures travel with
// the inventory (kiln_collector_failures) so the conductor can show what is missing and why.
import type { Runner } from '../../shared/exec.ts';
import type { Logger } from '../../shared/log.ts';
import type { Inventory } from '../../shared/wire/ipa.ts';

export interface CollectorContext {
  run: Runner;
  readFile(path: string): Promise<string>;
  readdir(path: string): Promise<string[]>;
  readlink(path: string): Promise<string>;
  exists(path: string): Promise<boolean>;
  log: Logger;
  settings: { collectLldp: boolean; lldpTimeoutS: number; bootif: string | null };
  /** Record something this collector could not find out, and carry on. */
  fail(message: string): void;
}

export interface Collector {
  name: string;
  collect(ctx: CollectorContext): Promise<Partial<Inventory>>;
}
