// The workflow of real nodes (Ironic's "direct" deploy interface): the node boots the ramdisk
// over PXE, its agent looks up and heartbeats, and each heartbeat lets this workflow look at
// what the agent did and send it the next command. Fast-track: when the agent is alive (recent
// heartbeat, node on), the next phase starts at once instead of rebooting into the ramdisk.
import { KilnError } from '../../shared/errors.ts';
import { ImageInfoError, type ImageInfoWire, parseImageInfo } from '../../shared/wire/image-info.ts';
import {
  type CommandRecord,
  type Inventory,
  nodeBootMode,
  nodeDiskLabel,
  type Step,
} from '../../shared/wire/ipa.ts';
import { secureNode } from '../nodes/agent-view.ts';
import { addInventoryPorts, portsFromInventory, propertiesFromInventory } from '../nodes/from-inventory.ts';
import { nodeLabel } from '../nodes/service.ts';
import type { ImageRecord, NodeRecord, PortRecord } from '../store/store.ts';
import { withoutAgent } from './engine.ts';
import type { PhaseResult, Task, Workflow } from './workflow.ts';

/** What the workflow asks of an agent; conductor/ramdisk/client.ts implements it over HTTP. */
export interface AgentCommands {
  getCleanSteps(node: unknown, ports: unknown[]): Promise<Step[]>;
  executeCleanStep(
    step: Step,
    node: unknown,
    ports: unknown[],
    cleanVersion?: unknown,
  ): Promise<CommandRecord>;
  executeDeployStep(
    step: Step,
    node: unknown,
    ports: unknown[],
    deployVersion?: unknown,
  ): Promise<CommandRecord>;
  listCommands(): Promise<CommandRecord[]>;
  getPartitionUuids(): Promise<Record<string, unknown>>;
  installBootloader(params: Record<string, unknown>): Promise<CommandRecord>;
  getHardwareInfo(): Promise<Inventory>;
  powerOff(): Promise<void>;
}

export interface AgentWorkflowOptions {
  /** An agent client for a node's recorded agent_url and token. */
  clientFor(node: NodeRecord): AgentCommands;
  /**
   * URL the agent of `node` downloads an image from: the conductor's cache (a URL signed for
   * this node and image, see ImageCache.signedUrl), or the origin.
   */
  imageUrl(image: ImageRecord, node: NodeRecord): string;
  /** A gzip+base64 OpenStack config drive for the node, or undefined for none. */
  configDrive?(node: NodeRecord): Promise<string | undefined>;
  fastTrack: boolean;
  /** Seconds since the last heartbeat within which an agent counts as alive (Ironic: 300). */
  fastTrackTimeoutS?: number;
  /** Clean steps to run automatically, by name, with their priorities (higher first). */
  cleanPriorities?: Record<string, number>;
}

/** Ironic's defaults (metadata 99, full erase 10) are slow; Kiln wipes metadata, then fast-zeroes. */
export const DEFAULT_CLEAN_PRIORITIES: Record<string, number> = {
  erase_devices_metadata: 99,
  erase_devices_express: 50,
};

type Info = Record<string, unknown>;

function agentAlive(node: NodeRecord, timeoutS: number): boolean {
  const info = node.driver_internal_info;
  const last = Date.parse(String(info.agent_last_heartbeat ?? ''));
  return (
    Boolean(info.agent_url) &&
    node.power_state === 'power on' &&
    Number.isFinite(last) &&
    Date.now() - last < timeoutS * 1000
  );
}

/** The node as the agent sees it in command params: Ironic sends node.as_dict(secure=True). */
/** The node commands carry: Ironic's secure view (the config drive goes as its own argument). */
function nodeForAgent(node: NodeRecord): Record<string, unknown> {
  return secureNode(node);
}

/**
 * What Ironic adds to image_info for a partition image: the layout's size and, as
 * deploy_boot_mode and disk_label, the node's boot mode and label (left out when the node says
 * nothing, so the agent uses the mode its ramdisk booted in).
 */
function partitionImageInfo(node: NodeRecord): Partial<ImageInfoWire> {
  const bootMode = nodeBootMode(node);
  const diskLabel = nodeDiskLabel(node);
  return {
    image_type: 'partition',
    root_mb: Number(node.instance_info.root_mb ?? 0) || undefined,
    boot_option: 'local',
    ...(bootMode ? { deploy_boot_mode: bootMode } : {}),
    ...(diskLabel ? { disk_label: diskLabel } : {}),
  };
}

/** The agent no longer lists the step we started: it restarted, or the ramdisk rebooted. */
function agentLost(task: Task, what: string): KilnError {
  return new KilnError(
    'AGENT_ERROR',
    `the agent at ${String(task.node.driver_internal_info.agent_url)} no longer knows the ${what} it was running (the agent process restarted or the ramdisk rebooted), so the step did not finish`,
  );
}

function failedCommand(cmd: CommandRecord, what: string): KilnError {
  const err = cmd.command_error as { message?: string; details?: string } | null | undefined;
  return new KilnError(
    'AGENT_ERROR',
    `${what} failed in the agent: ${err?.details || err?.message || 'no error given'}`,
  );
}

export function createAgentWorkflow(opts: AgentWorkflowOptions): Workflow {
  const timeoutS = opts.fastTrackTimeoutS ?? 300;
  const priorities = opts.cleanPriorities ?? DEFAULT_CLEAN_PRIORITIES;

  const ports = (task: Task): Promise<PortRecord[]> => task.store.ports.list({ node_uuid: task.node.uuid });
  const setInfo = (task: Task, patch: Info, drop: string[] = []) => {
    const info: Info = { ...task.node.driver_internal_info, ...patch };
    for (const k of drop) delete info[k];
    return task.update({ driver_internal_info: info });
  };

  /** Reboot into the ramdisk over PXE. The old agent's URL and token die with it. */
  async function bootRamdisk(task: Task, why: string): Promise<PhaseResult> {
    const { driver, creds } = task.power();
    const mode = (task.node.properties.boot_mode as 'uefi' | 'bios' | undefined) ?? undefined;
    await driver.setBootDevice(creds, 'pxe', { persistent: false, mode });
    await driver.setPower(creds, 'reboot');
    await task.update({
      power_state: 'power on',
      driver_internal_info: withoutAgent(task.node.driver_internal_info),
    });
    await task.note('boot_ramdisk', `rebooting into the ramdisk over PXE to ${why}`);
    return 'wait';
  }

  async function lastCommand(task: Task): Promise<CommandRecord | undefined> {
    const cmds = await opts.clientFor(task.node).listCommands();
    return cmds.at(-1);
  }

  // ---- inspection ------------------------------------------------------------------------

  async function inspectNow(task: Task): Promise<PhaseResult> {
    const inv = await opts.clientFor(task.node).getHardwareInfo();
    await applyInventory(task, inv);
    return 'done';
  }

  async function applyInventory(task: Task, inv: Inventory): Promise<void> {
    const props: Info = { ...task.node.properties, ...propertiesFromInventory(inv) };
    await task.update({ inventory: inv as unknown as Info, properties: props });
    await addInventoryPorts(task.store, task.node.uuid, portsFromInventory(inv).ports);
    await task.note(
      'inventory',
      `inventory stored: ${inv.cpu?.count ?? '?'} CPUs, ${props.memory_mb ?? '?'} MiB, ${(inv.disks ?? []).length} disks`,
    );
  }

  // ---- cleaning --------------------------------------------------------------------------

  async function startCleaning(task: Task): Promise<PhaseResult> {
    const client = opts.clientFor(task.node);
    const manual = task.node.driver_internal_info.clean_steps as Step[] | undefined;
    let steps: Step[];
    if (task.node.target_provision_state === 'manageable' && manual?.length) {
      steps = manual.map((s) => ({ ...s, priority: 0 }));
    } else {
      const offered = await client.getCleanSteps(nodeForAgent(task.node), await ports(task));
      steps = offered
        .filter((s) => priorities[s.step] !== undefined)
        .map((s) => ({ ...s, priority: priorities[s.step]! }))
        .sort((a, b) => (b.priority as number) - (a.priority as number));
    }
    await setInfo(task, { clean_step_list: steps, clean_step_index: 0 });
    if (steps.length === 0) return finishCleaning(task);
    await task.note('clean_steps', `clean steps: ${steps.map((s) => `${s.interface}.${s.step}`).join(', ')}`);
    return runCleanStep(task, 0);
  }

  async function runCleanStep(task: Task, index: number): Promise<PhaseResult> {
    const steps = task.node.driver_internal_info.clean_step_list as Step[];
    const step = steps[index]!;
    await setInfo(task, { clean_step_index: index, clean_step: step });
    const cmd = await opts
      .clientFor(task.node)
      .executeCleanStep(step, nodeForAgent(task.node), await ports(task));
    if (cmd.command_status === 'FAILED') throw failedCommand(cmd, `clean step ${step.step}`);
    return 'wait';
  }

  async function finishCleaning(task: Task): Promise<PhaseResult> {
    await setInfo(task, {}, ['clean_step_list', 'clean_step_index', 'clean_step', 'clean_steps']);
    if (!opts.fastTrack) {
      const { driver, creds } = task.power();
      await driver.setPower(creds, 'off');
      await task.update({
        power_state: 'power off',
        driver_internal_info: withoutAgent(task.node.driver_internal_info),
      });
    }
    return 'done';
  }

  async function continueCleaning(task: Task): Promise<PhaseResult> {
    const info = task.node.driver_internal_info;
    if (!Array.isArray(info.clean_step_list)) return startCleaning(task);
    const cmd = await lastCommand(task);
    const current = info.clean_step as Step | undefined;
    if (cmd?.command_name !== 'execute_clean_step') {
      if (current) throw agentLost(task, `clean step ${current.step}`);
      return runCleanStep(task, Number(info.clean_step_index ?? 0));
    }
    if (cmd.command_status === 'RUNNING') return 'wait';
    if (cmd.command_status === 'FAILED') throw failedCommand(cmd, `clean step ${current?.step ?? ''}`);
    const done = (cmd.command_result as { clean_step?: Step } | null)?.clean_step;
    if (current && done && (done.step !== current.step || done.interface !== current.interface))
      return 'wait';
    const next = Number(info.clean_step_index ?? 0) + 1;
    if (next < (info.clean_step_list as Step[]).length) return runCleanStep(task, next);
    return finishCleaning(task);
  }

  // ---- deployment ------------------------------------------------------------------------

  async function startDeploy(task: Task): Promise<PhaseResult> {
    const imageUuid = task.node.instance_info.image_uuid as string | undefined;
    const image = imageUuid ? await task.store.images.get(imageUuid) : undefined;
    if (!image)
      throw new KilnError(
        'NOT_FOUND',
        `the image of node ${nodeLabel(task.node)} is no longer in the catalog`,
      );
    const imageInfo: ImageInfoWire = {
      id: image.name,
      urls: [opts.imageUrl(image, task.node)],
      disk_format: image.format === 'qcow2' ? 'qcow2' : 'raw',
      container_format: 'bare',
      stream_raw_images: true,
      node_uuid: task.node.uuid,
      ...(image.checksum_algo === 'md5'
        ? { checksum: image.checksum }
        : { os_hash_algo: image.checksum_algo, os_hash_value: image.checksum }),
      // IPA's name: the agent checks the download against it.
      ...(image.size !== null ? { image_size: image.size } : {}),
      ...(image.image_type === 'partition' ? partitionImageInfo(task.node) : {}),
    };
    // The same parser the agent reads it with: a catalog entry it would refuse is refused here.
    try {
      parseImageInfo(imageInfo, nodeForAgent(task.node));
    } catch (e) {
      if (!(e instanceof ImageInfoError)) throw e;
      throw new KilnError(
        'VALIDATION_FAILED',
        `cannot deploy image ${image.name} to node ${nodeLabel(task.node)}: ${e.message}`,
      );
    }
    const configdrive = await opts.configDrive?.(task.node);
    const step: Step = {
      interface: 'deploy',
      step: 'write_image',
      priority: 80,
      args: { image_info: imageInfo, configdrive: configdrive ?? null },
    };
    await setInfo(task, { deploy_step: { interface: 'deploy', step: 'write_image' } });
    await task.note(
      'write_image',
      `streaming ${image.name} from ${imageInfo.urls} (${image.checksum_algo} verified while writing)`,
    );
    const cmd = await opts
      .clientFor(task.node)
      .executeDeployStep(step, nodeForAgent(task.node), await ports(task));
    if (cmd.command_status === 'FAILED') throw failedCommand(cmd, 'write_image');
    return 'wait';
  }

  async function finishDeploy(task: Task): Promise<PhaseResult> {
    const client = opts.clientFor(task.node);
    const uuids = await client.getPartitionUuids();
    if (nodeBootMode(task.node) === 'uefi') {
      const cmd = await client.installBootloader({
        root_uuid: uuids['root uuid'],
        efi_system_part_uuid: uuids['efi system partition uuid'],
        prep_boot_part_uuid: uuids['PReP Boot partition uuid'],
        target_boot_mode: 'uefi',
      });
      if (cmd.command_status === 'FAILED') throw failedCommand(cmd, 'install_bootloader');
    }
    const { driver, creds } = task.power();
    await driver.setBootDevice(creds, 'disk', { persistent: true });
    // Ask the agent to sync and power off; the BMC makes sure of it either way.
    await client.powerOff().catch(() => {});
    await driver.setPower(creds, 'off');
    await driver.setPower(creds, 'on');
    await task.update({
      power_state: 'power on',
      instance_info: { ...task.node.instance_info, root_uuid: uuids['root uuid'] ?? null },
      driver_internal_info: withoutAgent(
        Object.fromEntries(
          Object.entries(task.node.driver_internal_info).filter(([k]) => k !== 'deploy_step'),
        ),
      ),
    });
    await task.note('boot_instance', 'image written and verified; booting the node from its disk');
    return 'done';
  }

  async function continueDeploy(task: Task): Promise<PhaseResult> {
    if (!task.node.driver_internal_info.deploy_step) return startDeploy(task);
    const cmd = await lastCommand(task);
    if (cmd?.command_name !== 'execute_deploy_step') throw agentLost(task, 'write_image');
    if (cmd.command_status === 'RUNNING') return 'wait';
    if (cmd.command_status === 'FAILED') throw failedCommand(cmd, 'write_image');
    return finishDeploy(task);
  }

  return {
    name: 'agent',
    async inspect(task) {
      return opts.fastTrack && agentAlive(task.node, timeoutS)
        ? inspectNow(task)
        : bootRamdisk(task, 'inspect it');
    },
    async clean(task) {
      await setInfo(task, {}, ['clean_step_list', 'clean_step_index', 'clean_step']);
      return opts.fastTrack && agentAlive(task.node, timeoutS)
        ? startCleaning(task)
        : bootRamdisk(task, 'clean it');
    },
    async deploy(task) {
      await setInfo(task, {}, ['deploy_step']);
      return opts.fastTrack && agentAlive(task.node, timeoutS)
        ? startDeploy(task)
        : bootRamdisk(task, 'deploy it');
    },
    async tearDown(task) {
      const { driver, creds } = task.power();
      await driver.setPower(creds, 'off');
      await task.update({
        power_state: 'power off',
        driver_internal_info: withoutAgent(task.node.driver_internal_info),
      });
    },
    async resume(task, phase) {
      if (!task.node.driver_internal_info.agent_url) return 'wait';
      if (phase === 'inspect') return inspectNow(task);
      if (phase === 'clean') return continueCleaning(task);
      return continueDeploy(task);
    },
  };
}
