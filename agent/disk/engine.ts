// The disk engine as the agent's commands use it: choose the disk, write a whole-disk or
// partition image (plus config drive), remember the partition UUIDs for get_partition_uuids,
// install a UEFI boot entry, and run the erase tiers over the eligible disks.
import { run as defaultRun, type Runner } from '../../shared/exec.ts';
import type { Logger } from '../../shared/log.ts';
import { type ImageInfo, parseImageInfo } from '../../shared/wire/image-info.ts';
import {
  BIOS_RAMDISK_SKIP,
  type BootloaderResult,
  installBootloader,
  ramdiskBootedInUefi,
} from './bootloader.ts';
import { decodeConfigDrive, writeConfigDrive } from './configdrive.ts';
import {
  type BlockDevice,
  DiskSelectionError,
  devName,
  type Hints,
  listBlockDevices,
  pickRootDevice,
  type SelectionPolicy,
  selectEraseTargets,
  selectRootDevice,
} from './devices.ts';
import { canonicalDevice, TargetGuard, TargetNotAllowedError } from './guard.ts';
import { resolveChecksum } from './image-info.ts';
import { makePartitionLayout, type PartitionLayout } from './partition-image.ts';
import { rescanPartitions } from './rescan.ts';
import { DownloadError } from './stream/http-source.ts';
import type { ProgressSink } from './stream/progress.ts';
import { type WriteImageResult, writeImage } from './stream/write-image.ts';
import { type PartitionUuids, partitionUuids } from './uuids.ts';
import { type EraseOptions, type EraseReport, eraseExpress, eraseFull, eraseMetadata } from './wipe.ts';

export interface DiskEngineOptions {
  run?: Runner;
  /**
   * The only devices anything may be written to (outside the Kiln ramdisk: --allow-device;
   * tests: their loop devices). A step that needs another device fails naming it.
   */
  allowOnly?: readonly string[];
  /** The message for devices refused by allowOnly: why, and how to allow them. */
  refusal?: (devices: readonly string[]) => string;
  /**
   * May install_bootloader change the firmware's EFI boot entries (default true)? Only the
   * ramdisk's firmware is the node's; anywhere else they are this machine's own.
   */
  nvram?: boolean;
  /**
   * Whether the ramdisk itself booted in UEFI mode (default: /sys/firmware/efi exists): the
   * partition layout's boot mode when the node says nothing, and whether UEFI boot entries can
   * be written at all.
   */
  bootedInUefi?: () => Promise<boolean>;
  /** Test knob: skip O_DIRECT. */
  direct?: boolean;
  retryDelayMs?: number;
}

export interface RunContext {
  log: Logger;
  signal: AbortSignal;
  progress: ProgressSink;
}

export interface PrepareImageResult {
  device: string;
  image: WriteImageResult;
  uuids: PartitionUuids;
  configdrive: string | null;
}

export type EraseTier = 'metadata' | 'express' | 'full';

/** Why install_bootloader leaves EFI boot entries alone outside the Kiln ramdisk. */
export const NVRAM_NOT_OURS =
  "UEFI boot entry not written: the agent is not running in the Kiln ramdisk, so the firmware's boot entries are this machine's own and are left alone";

function rec(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function hintsFromNode(node: Record<string, unknown>): { hints: Hints | null; skip: Hints[] } {
  const ii = rec(node.instance_info);
  const props = rec(node.properties);
  const hints = (ii.root_device ?? props.root_device ?? null) as Hints | null;
  const skip = Array.isArray(props.skip_block_devices) ? (props.skip_block_devices as Hints[]) : [];
  return { hints, skip };
}

export class DiskEngine {
  private readonly run: Runner;
  /** Set by the last successful prepare_image; what get_partition_uuids answers. */
  partitionUuids: PartitionUuids | null = null;
  lastDevice: string | null = null;
  private lastLayout: PartitionLayout | null = null;

  constructor(private readonly opts: DiskEngineOptions = {}) {
    this.run = opts.run ?? defaultRun;
  }

  private bootedInUefi(): Promise<boolean> {
    return (this.opts.bootedInUefi ?? ramdiskBootedInUefi)();
  }

  private async ramdiskBootMode(): Promise<'uefi' | 'bios'> {
    return (await this.bootedInUefi()) ? 'uefi' : 'bios';
  }

  private policy(skip: Hints[] = []): SelectionPolicy {
    return { allowOnly: this.opts.allowOnly, skip };
  }

  private async devices(): Promise<BlockDevice[]> {
    const allow = this.opts.allowOnly;
    if (allow && allow.length === 0) return [];
    return listBlockDevices(this.run, allow ? [...allow] : []);
  }

  /** A guard for this step's targets, never reaching outside allowOnly. */
  private guard(targets: readonly string[]): TargetGuard {
    const allow = this.opts.allowOnly;
    return new TargetGuard(targets, allow ? { devices: allow, refusal: this.opts.refusal } : undefined);
  }

  private refuse(devices: readonly string[], why?: string): TargetNotAllowedError {
    const message =
      this.opts.refusal?.(devices) ??
      `refusing to write to ${devices.join(', ') || 'any disk'}: outside the devices this agent may write (${this.opts.allowOnly?.join(', ') || 'none'})`;
    return new TargetNotAllowedError(devices.join(', ') || null, why ? `${message} (${why})` : message);
  }

  async selectRoot(node: Record<string, unknown>): Promise<BlockDevice> {
    const { hints, skip } = hintsFromNode(node);
    const allow = this.opts.allowOnly;
    try {
      return await selectRootDevice(await this.devices(), hints, this.policy(skip));
    } catch (e) {
      if (!allow || !(e instanceof DiskSelectionError)) throw e;
      // Name the disk the node would get without the allow-list (or, for hints, any block device
      // they name, loop devices included), so the refusal says what to allow.
      const all = await listBlockDevices(this.run).catch(() => []);
      const pick = (policy: SelectionPolicy) => {
        try {
          return pickRootDevice(all, hints, policy);
        } catch {
          return null;
        }
      };
      const outside = pick({ skip }) ?? (hints ? pick({ skip, allowOnly: all.map((d) => d.path) }) : null);
      const allowed = new Set(allow.map(canonicalDevice));
      if (outside && !allowed.has(outside.path))
        throw this.refuse(
          [outside.path],
          allow.length ? `none of the allowed ones fits: ${e.message}` : undefined,
        );
      if (allow.length === 0) throw this.refuse([]);
      throw e;
    }
  }

  async prepareImage(
    rawInfo: unknown,
    configdrive: unknown,
    node: Record<string, unknown>,
    ctx: RunContext,
  ): Promise<PrepareImageResult> {
    const info = parseImageInfo(rawInfo, node);
    const disk = await this.selectRoot(node);
    const guard = this.guard([disk.path]);
    const log = ctx.log.child({ device: disk.path, image: info.id });
    log.info({ size: disk.size, model: disk.model, serial: disk.serial }, 'selected install disk');
    let layout: PartitionLayout | null = null;
    let target = disk.path;
    let targetBytes = disk.size;
    if (info.partition) {
      // The node's boot mode decides the layout; only a node that says nothing gets the ramdisk's.
      const bootMode = info.bootMode ?? (await this.ramdiskBootMode());
      log.info(
        { boot_mode: bootMode, from: info.bootMode ? 'node' : 'ramdisk' },
        'partition layout boot mode',
      );
      layout = await makePartitionLayout(
        disk.path,
        { ...info.partition, bootMode },
        { guard, run: this.run, log },
      );
      target = layout.root.path;
      targetBytes = layout.root.size;
    } else {
      // Leftover signatures or a backup GPT from the previous tenant would confuse the new image.
      await eraseMetadata(disk.path, { guard, run: this.run, log });
    }
    const image = await this.writeFromUrls(info, target, targetBytes, guard, ctx, log);
    let parts = await rescanPartitions(disk.path, this.run);
    if (!info.partition) {
      const pt = await this.run('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', disk.path]).catch(() => null);
      // Move the image's backup GPT to the real end of the disk (IPA does the same).
      if (pt?.stdout.trim() === 'gpt') {
        await this.run('sgdisk', ['-e', disk.path]);
        parts = await rescanPartitions(disk.path, this.run);
      }
      if (parts.length === 0) log.warn({}, 'the image has no partition table; it may not boot');
    }
    let cdPath: string | null = null;
    const cdValue = configdrive ?? rec(rawInfo).configdrive;
    if (typeof cdValue === 'string' && cdValue) {
      const cd = await decodeConfigDrive(cdValue, ctx.signal);
      cdPath = (await writeConfigDrive(disk.path, cd, { guard, run: this.run, log })).path;
    }
    await this.run('blockdev', ['--flushbufs', disk.path]).catch(() => {});
    const uuids = await partitionUuids(disk.path, { layout, run: this.run });
    this.partitionUuids = uuids;
    this.lastDevice = disk.path;
    this.lastLayout = layout;
    log.info({ uuids }, 'image deployed');
    return { device: disk.path, image, uuids, configdrive: cdPath };
  }

  private async writeFromUrls(
    info: ImageInfo,
    target: string,
    targetBytes: number,
    guard: TargetGuard,
    ctx: RunContext,
    log: Logger,
  ): Promise<WriteImageResult> {
    let last: unknown;
    for (const url of info.urls) {
      try {
        const checksum = await resolveChecksum(info.checksum, url, info.id);
        return await writeImage({
          url,
          device: target,
          deviceBytes: targetBytes,
          guard,
          checksum,
          declaredFormat: info.diskFormat,
          expectedBytes: info.imageSize,
          progress: ctx.progress,
          log,
          signal: ctx.signal,
          direct: this.opts.direct,
          download:
            this.opts.retryDelayMs !== undefined ? { retryDelayMs: this.opts.retryDelayMs } : undefined,
        });
      } catch (e) {
        last = e;
        // Another mirror only helps when this one failed to serve; a bad image stays bad.
        if (!(e instanceof DownloadError)) throw e;
        log.warn({ url, err: e }, 'image URL failed; trying the next one');
      }
    }
    throw last;
  }

  async installBootloader(params: Record<string, unknown>, ctx: RunContext): Promise<BootloaderResult> {
    const mode = params.target_boot_mode === 'bios' ? 'bios' : 'uefi';
    if (mode === 'uefi' && this.opts.nvram === false) {
      const reason = `${NVRAM_NOT_OURS}; a real node would get an entry for the image's loader on ${this.lastDevice ?? 'its disk'}`;
      ctx.log.warn({ target_boot_mode: mode }, reason);
      return { action: 'skipped', reason };
    }
    if (mode === 'uefi' && !(await this.bootedInUefi())) {
      ctx.log.warn({ target_boot_mode: mode }, BIOS_RAMDISK_SKIP);
      return { action: 'skipped', reason: BIOS_RAMDISK_SKIP };
    }
    const disk = this.lastDevice ?? (await this.selectRoot(rec(params.node))).path;
    return installBootloader({
      disk,
      bootMode: mode,
      efiPartUuid: typeof params.efi_system_part_uuid === 'string' ? params.efi_system_part_uuid : null,
      partitionImage: this.lastLayout !== null,
      run: this.run,
      log: ctx.log,
    });
  }

  /** Erase every eligible disk (or only `names`) with one tier; up to `concurrency` at once. */
  async erase(
    tier: EraseTier,
    node: Record<string, unknown>,
    args: Record<string, unknown>,
    ctx: RunContext,
  ): Promise<EraseReport[]> {
    const dii = rec(node.driver_internal_info);
    const { skip } = hintsFromNode(node);
    const names = Array.isArray(args.devices) ? (args.devices as string[]).map(devName) : null;
    const allow = this.opts.allowOnly;
    if (allow) {
      const allowed = new Set(allow.map(canonicalDevice));
      const refused = (names ?? []).filter((n) => !allowed.has(canonicalDevice(n)));
      if (refused.length) throw this.refuse(refused);
      if (!names && allowed.size === 0) {
        // Name what a real erase would have taken, so the refusal says what to allow.
        const all = await selectEraseTargets(await listBlockDevices(this.run).catch(() => []), null, {
          skip,
        });
        throw this.refuse(all.targets.map((d) => d.path));
      }
    }
    const sel = await selectEraseTargets(await this.devices(), names, this.policy(skip));
    const skipReadOnly = dii.agent_erase_skip_read_only === true;
    for (const s of sel.skipped) {
      if (s.reason === 'read-only' && !skipReadOnly && tier !== 'metadata') {
        throw new Error(
          `${s.path} is read-only and can't be erased; set driver_internal_info agent_erase_skip_read_only to skip it`,
        );
      }
      ctx.log.warn({ device: s.path, reason: s.reason }, 'disk skipped by erase');
    }
    const opts: EraseOptions = {
      ataSecureErase: dii.agent_enable_ata_secure_erase !== false,
      nvmeSecureErase: dii.agent_enable_nvme_secure_erase !== false,
      continueIfSecureEraseFailed:
        dii.agent_continue_if_secure_erase_failed === true || dii.agent_continue_if_ata_erase_failed === true,
    };
    const guard = this.guard(sel.targets.map((d) => d.path));
    const concurrency = Math.max(1, Number(dii.disk_erasure_concurrency ?? 4));
    const queue = [...sel.targets];
    const reports: EraseReport[] = [];
    const worker = async () => {
      for (let d = queue.shift(); d; d = queue.shift()) {
        const ectx = { guard, run: this.run, log: ctx.log, progress: ctx.progress, signal: ctx.signal };
        reports.push(
          tier === 'metadata'
            ? await eraseMetadata(d.path, ectx)
            : tier === 'express'
              ? await eraseExpress(d.path, ectx, opts)
              : await eraseFull(d.path, ectx, opts),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
    return reports.sort((a, b) => a.device.localeCompare(b.device));
  }
}
