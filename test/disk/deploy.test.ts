// The deploy path as Ironic drives it: deploy.execute_deploy_step write_image with image_info
// and a config drive, then standby.get_partition_uuids and image.install_bootloader, against
// loop devices, a real HTTP server, images made with sgdisk/mkfs/qemu-img, and blkid/mount to
// read the result back.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { createDiskCommands } from '../../agent/commands/disk-steps.ts';
import type { StepContext } from '../../agent/commands/steps.ts';
import { decodeConfigDrive } from '../../agent/disk/configdrive.ts';
import { rescanPartitions } from '../../agent/disk/rescan.ts';
import { buildConfigDrive, buildConfigDriveImage } from '../../shared/configdrive.ts';
import { type Runner, run as realRun } from '../../shared/exec.ts';
import { createLogger } from '../../shared/log.ts';
import { type ImageServer, startImageServer } from '../support/image-server.ts';
import { createLoopDevice, type LoopDevice } from '../support/loopdev.ts';
import { MiB, sha256File } from './fixtures.ts';

const log = createLogger({ name: 'disk-test', level: 'silent' });
let dir: string;
let server: ImageServer;
let disk: LoopDevice;
const NODE_UUID = '6f1c2a34-0000-4000-8000-00000000abcd';

const NETWORK_DATA = {
  links: [{ id: 'eth0', type: 'phy', ethernet_mac_address: '52:54:00:12:34:56' }],
  networks: [
    {
      id: 'net0',
      link: 'eth0',
      type: 'ipv4',
      ip_address: '192.0.2.10',
      netmask: '255.255.255.0',
      gateway: '192.0.2.1',
    },
  ],
  services: [{ type: 'dns', address: '192.0.2.53' }],
};

function ctx(node: Record<string, unknown>): StepContext {
  return {
    log,
    signal: new AbortController().signal,
    progress: () => {},
    node,
    ports: [],
    step: { interface: 'deploy', step: 'write_image', priority: 80 } as StepContext['step'],
  };
}

async function withMount<T>(dev: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const mnt = await mkdtemp(join(tmpdir(), 'kiln-mnt-'));
  try {
    await execa('mount', ['-o', 'ro', dev, mnt]);
    try {
      return await fn(mnt);
    } finally {
      await execa('umount', [mnt]);
    }
  } finally {
    await rm(mnt, { recursive: true, force: true });
  }
}

/**
 * The config drive's files as cloud-init would see them: mounted when the kernel has iso9660,
 * else extracted with xorriso reading the partition itself (some CI kernels lack the module).
 */
async function withConfigDrive<T>(dev: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const fsTypes = await readFile('/proc/filesystems', 'utf8');
  if (/\biso9660\b/.test(fsTypes) || (await execa('modprobe', ['isofs'], { reject: false })).exitCode === 0) {
    return withMount(dev, fn);
  }
  const mnt = await mkdtemp(join(tmpdir(), 'kiln-cd-'));
  try {
    await execa(
      'xorriso',
      ['-osirrox', 'on', '-indev', `stdio:${dev}`, '-extract', '/openstack', join(mnt, 'openstack')],
      { stderr: 'ignore' },
    );
    return await fn(mnt);
  } finally {
    await rm(mnt, { recursive: true, force: true });
  }
}

async function blkidValue(dev: string, tag: string): Promise<string> {
  return (await execa('blkid', ['-p', '-o', 'value', '-s', tag, dev])).stdout.trim();
}

/** A whole-disk GPT image: ESP with a shim, ext4 root with /etc/hostname; returned as qcow2. */
async function makeWholeDiskImage(): Promise<{ path: string; ptuuid: string; espUuid: string }> {
  const raw = join(dir, 'whole.raw');
  const build = await createLoopDevice(256 * MiB);
  try {
    await execa('sgdisk', ['-n', '1:0:+64M', '-t', '1:ef00', '-n', '2:0:0', '-t', '2:8300', build.path]);
    const parts = await rescanPartitions(build.path);
    await execa('mkfs.vfat', ['-F', '32', parts[0]!.path]);
    await execa('mmd', ['-i', parts[0]!.path, '::/EFI', '::/EFI/debian', '::/EFI/BOOT']);
    const loader = join(dir, 'shimx64.efi');
    await writeFile(loader, 'not really a loader');
    await execa('mcopy', ['-i', parts[0]!.path, loader, '::/EFI/debian/shimx64.efi']);
    await execa('mcopy', ['-i', parts[0]!.path, loader, '::/EFI/BOOT/BOOTX64.EFI']);
    const rootDir = join(dir, 'rootfs');
    await mkdir(join(rootDir, 'etc'), { recursive: true });
    await writeFile(join(rootDir, 'etc', 'hostname'), 'golden\n');
    await execa('mkfs.ext4', ['-q', '-F', '-d', rootDir, parts[1]!.path]);
    await execa('dd', [`if=${build.path}`, `of=${raw}`, 'bs=4M', 'status=none', 'conv=sparse']);
    const ptuuid = await blkidValue(raw, 'PTUUID');
    const espUuid = (await execa('sgdisk', ['-i', '1', raw])).stdout
      .match(/unique GUID: ([0-9A-F-]+)/)![1]!
      .toLowerCase();
    const path = join(dir, 'whole.qcow2');
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, path]);
    return { path, ptuuid, espUuid };
  } finally {
    await build.destroy();
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-deploy-'));
  server = await startImageServer();
  disk = await createLoopDevice(1024 * MiB);
});
after(async () => {
  await server?.close();
  await disk?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('config drive', () => {
  test('built by the conductor-side builder, read back as ISO 9660 labelled config-2', async () => {
    const b64 = await buildConfigDrive({
      hostname: 'node-1',
      uuid: NODE_UUID,
      public_keys: { default: 'ssh-ed25519 AAAAC3Nza test@kiln' },
      network_data: NETWORK_DATA,
      user_data: '#cloud-config\n',
    });
    const iso = await decodeConfigDrive(b64);
    const f = join(dir, 'cd.iso');
    await writeFile(f, iso);
    assert.equal(await blkidValue(f, 'TYPE'), 'iso9660');
    assert.equal(await blkidValue(f, 'LABEL'), 'config-2');
  });
  test('the FAT fallback carries the same files', async () => {
    const img = await buildConfigDriveImage({ hostname: 'node-2', uuid: NODE_UUID }, { format: 'vfat' });
    const f = join(dir, 'cd.vfat');
    await writeFile(f, img);
    assert.equal(await blkidValue(f, 'TYPE'), 'vfat');
    const meta = JSON.parse((await execa('mtype', ['-i', f, '::/openstack/latest/meta_data.json'])).stdout);
    assert.equal(meta.hostname, 'node-2');
  });
  test('a config drive over 64 MiB is refused', async () => {
    const { gzipSync } = await import('node:zlib');
    const big = gzipSync(Buffer.alloc(65 * MiB)).toString('base64');
    await assert.rejects(decodeConfigDrive(big), /larger than 64 MiB/);
  });
});

describe('whole-disk image (qcow2, GPT, UEFI)', () => {
  let img: { path: string; ptuuid: string; espUuid: string };
  const efiCalls: string[][] = [];
  // efibootmgr needs EFI variables this machine doesn't have: record its calls, run the rest for real.
  const run: Runner = async (file, args, opts) => {
    if (file === 'efibootmgr') {
      efiCalls.push([...args]);
      return {
        stdout: args.length === 0 ? 'BootCurrent: 0001\nBoot0003* debian\tHD(1,GPT,...)' : '',
        stderr: '',
        exitCode: 0,
      };
    }
    return realRun(file, args, opts);
  };
  // Whether the "ramdisk" booted in UEFI mode: the seam that decides if boot entries are written.
  let uefiRamdisk = true;
  const cmds = () =>
    createDiskCommands({ run, allowOnly: [disk.path], bootedInUefi: async () => uefiRamdisk });
  let disk2: ReturnType<typeof cmds>;

  before(async () => {
    img = await makeWholeDiskImage();
    server.serve('whole.qcow2', img.path);
    disk2 = cmds();
  });

  test('write_image deploy step writes the image and the config drive', async () => {
    const configdrive = await buildConfigDrive({
      hostname: 'node-1',
      uuid: NODE_UUID,
      public_keys: { default: 'ssh-ed25519 AAAAC3Nza test@kiln' },
      network_data: NETWORK_DATA,
      user_data: '#cloud-config\nhostname: node-1\n',
    });
    const node = { uuid: NODE_UUID, instance_info: { root_device: { name: disk.path } } };
    const image_info = {
      id: 'whole.qcow2',
      urls: [server.url('whole.qcow2')],
      disk_format: 'qcow2',
      container_format: 'bare',
      stream_raw_images: true,
      os_hash_algo: 'sha256',
      os_hash_value: await sha256File(img.path),
      node_uuid: NODE_UUID,
    };
    const res = (await disk2.deploySteps.write_image!({ image_info, configdrive }, ctx(node))) as {
      result: string;
    };
    assert.match(
      res.result,
      new RegExp(
        `^prepare_image: image \\(whole.qcow2\\) written to device ${disk.path} root_uuid=${img.ptuuid}$`,
      ),
    );
    const parts = await rescanPartitions(disk.path);
    assert.equal(parts.length, 3);
    const cd = parts[2]!;
    assert.equal(await blkidValue(cd.path, 'LABEL'), 'config-2');
    assert.equal(cd.start + cd.size + 33 * 512 <= disk.bytes, true);
    assert.ok(cd.start >= disk.bytes - 65 * MiB, 'config drive is in the last 64 MiB');
    await withConfigDrive(cd.path, async (m) => {
      const meta = JSON.parse(await readFile(join(m, 'openstack/latest/meta_data.json'), 'utf8'));
      assert.equal(meta.hostname, 'node-1');
      assert.equal(meta.uuid, NODE_UUID);
      assert.equal(meta.public_keys.default, 'ssh-ed25519 AAAAC3Nza test@kiln');
      const net = JSON.parse(await readFile(join(m, 'openstack/latest/network_data.json'), 'utf8'));
      assert.equal(net.networks[0].ip_address, '192.0.2.10');
      assert.match(await readFile(join(m, 'openstack/latest/user_data'), 'utf8'), /hostname: node-1/);
    });
    await withMount(parts[1]!.path, async (m) => {
      assert.equal(await readFile(join(m, 'etc/hostname'), 'utf8'), 'golden\n');
    });
  });

  test('get_partition_uuids answers in IPA shape', async () => {
    const r = (await disk2.extensions
      .find((e) => e.name === 'standby')!
      .commands.get_partition_uuids!.run({}, ctx({}))) as Record<string, unknown>;
    assert.equal(r['root uuid'], img.ptuuid);
    assert.equal(r['efi system partition uuid'], img.espUuid);
    assert.deepEqual(r.partitions, {
      efi_system_partition: disk.part(1),
      configdrive: disk.part(3),
      root: disk.part(2),
    });
  });

  test('install_bootloader (UEFI) points an NVRAM entry at the image shim, replacing the old one', async () => {
    await disk2.extensions
      .find((e) => e.name === 'image')!
      .commands.install_bootloader!.run(
        { root_uuid: img.ptuuid, efi_system_part_uuid: img.espUuid, target_boot_mode: 'uefi' },
        ctx({}),
      );
    assert.deepEqual(efiCalls, [
      [],
      ['-b', '0003', '-B'],
      ['-c', '-d', disk.path, '-p', '1', '-w', '-L', 'debian', '-l', '\\EFI\\debian\\shimx64.efi'],
    ]);
  });

  test('install_bootloader (UEFI) in a BIOS-booted ramdisk is skipped, saying why; efibootmgr never runs', async () => {
    const before = efiCalls.length;
    uefiRamdisk = false;
    try {
      const r = await disk2.extensions
        .find((e) => e.name === 'image')!
        .commands.install_bootloader!.run(
          { root_uuid: img.ptuuid, efi_system_part_uuid: img.espUuid, target_boot_mode: 'uefi' },
          ctx({}),
        );
      assert.match(String(r), /^skipped: UEFI boot entry not written: this ramdisk booted in BIOS mode/);
      assert.equal(efiCalls.length, before, 'no efibootmgr call');
    } finally {
      uefiRamdisk = true;
    }
  });

  test('root-device hints that match nothing fail with DeviceNotFound', async () => {
    const node = { instance_info: { root_device: { serial: 'no-such-serial' } } };
    await assert.rejects(
      disk2.deploySteps.write_image!(
        {
          image_info: {
            id: 'x',
            urls: [server.url('whole.qcow2')],
            os_hash_algo: 'sha256',
            os_hash_value: '0'.repeat(64),
          },
        },
        ctx(node),
      ),
      (e: { type?: string; details?: string }) => {
        assert.equal(e.type, 'DeviceNotFound');
        assert.match(e.details ?? '', /no disk matches the root-device hints/);
        return true;
      },
    );
  });
});

describe('partition image', () => {
  /** Write a partition image with a config drive; returns what get_partition_uuids says. */
  async function deployPartitionImage(
    name: string,
    imageInfo: Record<string, unknown>,
    node: Record<string, unknown>,
    bootedInUefi: boolean,
  ) {
    const rootDir = join(dir, `rootfs-${name}`);
    await mkdir(join(rootDir, 'etc'), { recursive: true });
    await writeFile(join(rootDir, 'etc', 'hostname'), `part-${name}\n`);
    const fs = join(dir, `root-${name}.img`);
    await execa('truncate', ['-s', '96M', fs]);
    await execa('mkfs.ext4', ['-q', '-F', '-d', rootDir, fs]);
    const fsUuid = await blkidValue(fs, 'UUID');
    await execa('gzip', ['-1', '-k', '-f', fs]);
    server.serve(`root-${name}.img.gz`, `${fs}.gz`);
    const cmds = createDiskCommands({ allowOnly: [disk.path], bootedInUefi: async () => bootedInUefi });
    const fullNode = {
      uuid: NODE_UUID,
      ...node,
      instance_info: { root_device: { name: disk.path }, ...(node.instance_info as object) },
    };
    const image_info = {
      id: `root-${name}`,
      urls: [server.url(`root-${name}.img.gz`)],
      disk_format: 'raw',
      os_hash_algo: 'sha512',
      os_hash_value: await sha256File(`${fs}.gz`, 'sha512'),
      image_type: 'partition',
      root_mb: 128,
      swap_mb: 16,
      ephemeral_mb: 0,
      ...imageInfo,
    };
    const configdrive = await buildConfigDrive({ hostname: `part-${name}`, uuid: NODE_UUID });
    const standby = cmds.extensions.find((e) => e.name === 'standby')!;
    await standby.commands.prepare_image!.run({ image_info, configdrive, node: fullNode }, ctx(fullNode));
    const uuids = (await standby.commands.get_partition_uuids!.run({}, ctx({}))) as {
      'root uuid': string;
      'efi system partition uuid': string | null;
      partitions: Record<string, string>;
    };
    return { uuids, fsUuid, pttype: await blkidValue(disk.path, 'PTTYPE') };
  }

  for (const mode of ['bios', 'uefi'] as const) {
    test(`${mode}: layout, root filesystem streamed into its partition, config drive, fs UUID as root uuid`, async () => {
      const { uuids, fsUuid, pttype } = await deployPartitionImage(
        mode,
        { deploy_boot_mode: mode },
        {},
        mode === 'bios',
      );
      assert.equal(uuids['root uuid'], fsUuid);
      assert.equal(pttype, mode === 'uefi' ? 'gpt' : 'dos');
      if (mode === 'uefi') assert.match(uuids['efi system partition uuid'] ?? '', /^[0-9a-f-]{36}$/);
      assert.equal(await blkidValue(uuids.partitions.root!, 'UUID'), fsUuid);
      await withMount(uuids.partitions.root!, async (m) => {
        assert.equal(await readFile(join(m, 'etc/hostname'), 'utf8'), `part-${mode}\n`);
      });
      assert.equal(await blkidValue(uuids.partitions.configdrive!, 'LABEL'), 'config-2');
      await withConfigDrive(uuids.partitions.configdrive!, async (m) => {
        assert.equal(
          JSON.parse(await readFile(join(m, 'openstack/latest/meta_data.json'), 'utf8')).hostname,
          `part-${mode}`,
        );
      });
      const swap = (await rescanPartitions(disk.path)).find((p) => p.size === 16 * MiB);
      assert.ok(swap);
      assert.equal(await blkidValue(swap.path, 'TYPE'), 'swap');
    });
  }

  // Who decides the layout: the node (IPA's get_node_boot_mode order), and the ramdisk's own boot
  // mode only when the node says nothing.
  const cases: Array<{ name: string; node: Record<string, unknown>; uefiRamdisk: boolean; esp: boolean }> = [
    {
      name: 'node capabilities say bios, the ramdisk booted in UEFI',
      node: { properties: { capabilities: 'boot_mode:bios' } },
      uefiRamdisk: true,
      esp: false,
    },
    {
      name: "Kiln's properties.boot_mode says bios, the ramdisk booted in UEFI",
      node: { properties: { boot_mode: 'bios' } },
      uefiRamdisk: true,
      esp: false,
    },
    {
      name: 'instance_info.deploy_boot_mode uefi beats properties, the ramdisk booted in BIOS',
      node: { properties: { boot_mode: 'bios' }, instance_info: { deploy_boot_mode: 'uefi' } },
      uefiRamdisk: false,
      esp: true,
    },
    { name: 'the node says nothing, the ramdisk booted in BIOS', node: {}, uefiRamdisk: false, esp: false },
    { name: 'the node says nothing, the ramdisk booted in UEFI', node: {}, uefiRamdisk: true, esp: true },
  ];
  for (const [i, c] of cases.entries()) {
    test(`boot mode: ${c.name} → ${c.esp ? 'GPT with an ESP' : 'MBR, no ESP'}`, async () => {
      const { uuids, fsUuid, pttype } = await deployPartitionImage(`who-${i}`, {}, c.node, c.uefiRamdisk);
      assert.equal(uuids['root uuid'], fsUuid);
      assert.equal(pttype, c.esp ? 'gpt' : 'dos');
      assert.equal(Boolean(uuids.partitions.efi_system_partition), c.esp);
    });
  }
});
