// A realistic inventory, as ironic-python-agent posts it, for tests of enrollment and inspection.
import type { Inventory } from '../../shared/wire/ipa.ts';

/** What IPA 9.4.3 posts for a small QEMU VM (GenericHardwareManager.list_hardware_info). */
export function fakeInventory(
  over: { macs?: string[]; uuid?: string | null; serial?: string | null; bmc?: string | null } = {},
): Inventory {
  const macs = over.macs ?? ['52:54:00:12:34:01', '52:54:00:12:34:02'];
  return {
    interfaces: macs.map((m, i) => ({
      name: `eth${i}`,
      mac_address: m,
      ipv4_address: i === 0 ? '192.168.122.10' : null,
      ipv6_address: null,
      has_carrier: true,
      lldp: null,
      vendor: '0x1af4',
      product: '0x0001',
      client_id: null,
      biosdevname: null,
      speed_mbps: null,
    })),
    cpu: {
      model_name: 'QEMU',
      frequency: null,
      count: 2,
      architecture: 'x86_64',
      flags: [],
      socket_count: 1,
    },
    memory: { total: 1073741824, physical_mb: 1024 },
    disks: [
      {
        name: '/dev/vda',
        model: null,
        size: 8 * 1024 ** 3,
        rotational: true,
        wwn: null,
        serial: null,
        vendor: '0x1af4',
        wwn_with_extension: null,
        wwn_vendor_extension: null,
        hctl: null,
        by_path: '/dev/disk/by-path/pci-0000:00:04.0',
      },
    ],
    system_vendor: {
      product_name: 'Standard PC',
      serial_number: over.serial === undefined ? 'SN-1' : over.serial,
      manufacturer: 'QEMU',
      firmware: { vendor: null, version: null, build_date: null },
      system_uuid: over.uuid === undefined ? '5c5fd1a8-0000-4000-8000-000000000001' : over.uuid,
    },
    boot: { current_boot_mode: 'bios', pxe_interface: `01-${macs[0]!.replace(/:/g, '-')}` },
    bmc_address: over.bmc ?? null,
    bmc_v6address: null,
    bmc_mac: null,
    hostname: 'localhost',
  };
}
