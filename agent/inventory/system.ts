// System vendor, serial, UUID and firmware: SMBIOS as the kernel exports it in sysfs, with
// systeminformation (dmidecode) filling what sysfs lacks.
import type { InventorySystemVendor } from '../../shared/wire/ipa.ts';
import type { Collector } from './types.ts';

const DMI = '/sys/class/dmi/id';

const clean = (v: string | null | undefined): string | null => {
  const s = (v ?? '').trim();
  // Boards ship these placeholders in SMBIOS; they are as good as unknown.
  return s === '' || /^(-|to be filled by o\.e\.m\.|not specified|default string|none)$/i.test(s) ? null : s;
};

export const systemCollector: Collector = {
  name: 'system_vendor',
  async collect(ctx) {
    const read = async (f: string) => {
      try {
        return clean(await ctx.readFile(`${DMI}/${f}`));
      } catch {
        return null;
      }
    };
    const sv: InventorySystemVendor = {
      product_name: await read('product_name'),
      serial_number: await read('product_serial'),
      manufacturer: await read('sys_vendor'),
      firmware: {
        vendor: await read('bios_vendor'),
        version: await read('bios_version'),
        build_date: await read('bios_date'),
      },
      system_uuid: (await read('product_uuid'))?.toLowerCase() ?? null,
    };
    if (!sv.manufacturer || !sv.product_name || !sv.serial_number || !sv.firmware.version) {
      try {
        const mod = await import('systeminformation/lib/system.js');
        const m =
          typeof (mod as Partial<typeof mod>).system === 'function'
            ? mod
            : (mod as unknown as { default: typeof mod }).default;
        const [sys, bios] = await Promise.all([m.system(), m.bios()]);
        sv.manufacturer ??= clean(sys.manufacturer);
        // systeminformation names the model "Docker Container" when it sees /.dockerenv: a guess, not SMBIOS.
        sv.product_name ??= sys.model === 'Docker Container' ? null : clean(sys.model);
        sv.serial_number ??= clean(sys.serial);
        sv.system_uuid ??= clean(sys.uuid)?.toLowerCase() ?? null;
        sv.firmware.vendor ??= clean(bios.vendor);
        sv.firmware.version ??= clean(bios.version);
        sv.firmware.build_date ??= clean(bios.releaseDate);
      } catch (e) {
        ctx.log.debug({ err: String(e) }, 'systeminformation could not read SMBIOS');
      }
    }
    if (!sv.manufacturer && !sv.product_name)
      ctx.fail('no SMBIOS system information (no /sys/class/dmi/id, no dmidecode)');
    return { system_vendor: sv };
  },
};
