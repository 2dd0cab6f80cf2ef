// The agent commands and steps that use the disk engine, in IPA's names:
//   standby.prepare_image (async), standby.get_partition_uuids (sync), image.install_bootloader (async)
//   deploy steps: write_image (what Ironic's deploy.execute_deploy_step carries), erase_devices_metadata
//   clean steps:  erase_devices, erase_devices_metadata, erase_devices_express
// Wiring (agent main): const disk = createDiskCommands({ run });
//   registry.add(...disk.extensions); disk.register(cleanTable, deployTable);
import type { Runner } from '../../shared/exec.ts';
import { ImageInfoError, parseImageInfo } from '../../shared/wire/image-info.ts';
import { DiskEngine, type EraseTier, type RunContext } from '../disk/engine.ts';
import { AgentRestError, invalidParams } from './errors.ts';
import type { StepContext, StepHandler, StepTable } from './steps.ts';
import type { CommandContext, CommandExtension } from './types.ts';

export interface DiskCommandsOptions {
  run?: Runner;
  /** Confine the engine to these devices (development: --allow-device; tests: loop devices). */
  allowOnly?: readonly string[];
  /** The message for a device outside allowOnly (which, why, how to allow it). */
  refusal?: (devices: readonly string[]) => string;
  /** false: never change EFI boot entries (not in the Kiln ramdisk: they are this machine's own). */
  nvram?: boolean;
  /** Whether the ramdisk booted in UEFI mode (default: /sys/firmware/efi exists). */
  bootedInUefi?: () => Promise<boolean>;
  engine?: DiskEngine;
}

export interface DiskCommands {
  engine: DiskEngine;
  extensions: CommandExtension[];
  cleanSteps: Record<string, StepHandler>;
  deploySteps: Record<string, StepHandler>;
  /** Implement the disk steps in the clean and deploy step tables. */
  register(clean: StepTable, deploy: StepTable): void;
}

const code = (e: unknown) => (e as { code?: string }).code;

/** IPA's error types for image failures, so Ironic's messages read as they do with IPA. */
function imageError(e: unknown, imageId: string): AgentRestError {
  const msg = (e as Error).message ?? String(e);
  switch (code(e)) {
    case 'DOWNLOAD_FAILED':
      return new AgentRestError(
        'ImageDownloadError',
        500,
        'Error downloading image',
        `Download of image ${imageId} failed: ${msg}`,
      );
    case 'CHECKSUM_MISMATCH':
      return new AgentRestError('ImageChecksumError', 500, 'Error verifying image checksum', msg);
    case 'INVALID_IMAGE_INFO':
      return invalidParams(msg);
    case 'UNSUPPORTED_IMAGE':
      return new AgentRestError('InvalidImage', 500, 'Invalid image', msg);
    case 'DISK_SELECTION_FAILED':
      return new AgentRestError(
        'DeviceNotFound',
        404,
        'Error finding the disk or partition device to deploy the image onto',
        msg,
      );
    default:
      return new AgentRestError('ImageWriteError', 500, 'Error writing image to device', msg);
  }
}

function runContext(ctx: CommandContext): RunContext {
  return { log: ctx.log, signal: ctx.signal, progress: (p) => ctx.progress(p) };
}

function rec(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function createDiskCommands(opts: DiskCommandsOptions = {}): DiskCommands {
  const { engine: given, ...engineOpts } = opts;
  const engine = given ?? new DiskEngine(engineOpts);

  const prepare = async (
    imageInfo: unknown,
    configdrive: unknown,
    node: Record<string, unknown>,
    ctx: CommandContext,
  ) => {
    const id = String(rec(imageInfo).id ?? 'unknown');
    try {
      const r = await engine.prepareImage(imageInfo, configdrive, node, runContext(ctx));
      return `image (${id}) written to device ${r.device} root_uuid=${r.uuids['root uuid'] ?? 'None'}`;
    } catch (e) {
      throw e instanceof AgentRestError ? e : imageError(e, id);
    }
  };

  const validateImageInfo = (params: Record<string, unknown>) => {
    const configdrive = params.configdrive;
    if (configdrive !== undefined && configdrive !== null && typeof configdrive !== 'string')
      throw invalidParams(`configdrive must be a string (base64 gzip or a URL), got ${typeof configdrive}`);
    try {
      parseImageInfo(params.image_info, rec(params.node));
    } catch (e) {
      if (e instanceof ImageInfoError) throw invalidParams(e.message);
      throw e;
    }
  };

  const standby: CommandExtension = {
    name: 'standby',
    commands: {
      prepare_image: {
        async: true,
        validate: validateImageInfo,
        run: (params, ctx) => prepare(params.image_info, params.configdrive, rec(params.node), ctx),
      },
      get_partition_uuids: {
        async: false,
        run: async () => engine.partitionUuids ?? {},
      },
    },
  };

  const image: CommandExtension = {
    name: 'image',
    commands: {
      install_bootloader: {
        async: true,
        run: async (params, ctx) => {
          try {
            const r = await engine.installBootloader(params, runContext(ctx));
            // IPA answers nothing; a skipped install says why ({"result": "install_bootloader: ..."}).
            return r.action === 'skipped' ? `skipped: ${r.reason}` : null;
          } catch (e) {
            if (params.ignore_bootloader_failure === true) {
              ctx.log.warn({ err: e }, 'bootloader install failed; ignored as requested');
              return null;
            }
            throw new AgentRestError(
              'CommandExecutionError',
              500,
              'Command execution failed',
              `Installing the bootloader failed: ${(e as Error).message}`,
            );
          }
        },
      },
    },
  };

  const erase =
    (tier: EraseTier): StepHandler =>
    async (args, ctx: StepContext) => {
      try {
        const reports = await engine.erase(tier, ctx.node, args, runContext(ctx));
        return { erased: reports };
      } catch (e) {
        throw new AgentRestError(
          'BlockDeviceEraseError',
          500,
          'Error erasing block device',
          (e as Error).message,
        );
      }
    };

  const writeImageStep: StepHandler = async (args, ctx) => {
    const text = await prepare(args.image_info, args.configdrive, ctx.node, ctx);
    // IPA's write_image step returns the prepare_image command's result.
    return { result: `prepare_image: ${text}` };
  };

  const cleanSteps: Record<string, StepHandler> = {
    erase_devices: erase('full'),
    erase_devices_metadata: erase('metadata'),
    erase_devices_express: erase('express'),
  };
  const deploySteps: Record<string, StepHandler> = {
    write_image: writeImageStep,
    erase_devices_metadata: erase('metadata'),
  };

  return {
    engine,
    extensions: [standby, image],
    cleanSteps,
    deploySteps,
    register(clean, deploy) {
      for (const [name, h] of Object.entries(cleanSteps)) clean.implement(name, h);
      for (const [name, h] of Object.entries(deploySteps)) deploy.implement(name, h);
    },
  };
}
