// The clean.* and deploy.* extensions: list steps, and run one step by name from a StepTable.
import { isDeepStrictEqual } from 'node:util';
import { checkWire, ExecuteCleanStepParams, ExecuteDeployStepParams } from '../../shared/wire/ipa.ts';
import { commandExecutionError, hardwareManagerMethodNotFound, versionMismatch } from './errors.ts';
import { HARDWARE_MANAGER, HARDWARE_MANAGER_VERSION, type StepTable } from './steps.ts';
import type { CommandExtension } from './types.ts';

function asRecord(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function stepsExtension(table: StepTable): CommandExtension {
  const kind = table.kind;
  return {
    name: kind,
    commands: {
      [`get_${kind}_steps`]: {
        async: false,
        run: async () => ({
          [`${kind}_steps`]: { [HARDWARE_MANAGER]: table.list() },
          hardware_manager_version: { ...HARDWARE_MANAGER_VERSION },
        }),
      },
      [`execute_${kind}_step`]: {
        async: true,
        run: async (params, ctx) => {
          const requested = params[`${kind}_version`];
          // Ironic passes back the versions it saw in get_*_steps; a different agent means
          // the step list may differ, so it must start over (CLEAN_VERSION_MISMATCH).
          if (
            requested !== undefined &&
            requested !== null &&
            !isDeepStrictEqual(requested, HARDWARE_MANAGER_VERSION)
          ) {
            throw versionMismatch(HARDWARE_MANAGER_VERSION, requested);
          }
          const checked = checkWire(
            kind === 'clean' ? ExecuteCleanStepParams : ExecuteDeployStepParams,
            params,
          );
          if (!checked.ok) {
            throw commandExecutionError(
              `Malformed execute_${kind}_step params (${checked.message}): ${JSON.stringify(params.step)}`,
            );
          }
          const step = checked.data.step;
          const handler = table.handler(step.step);
          if (!handler) {
            throw hardwareManagerMethodNotFound(
              step.step,
              `${kind} step ${step.step} is not implemented by this agent; get_${kind}_steps lists the ones it has`,
            );
          }
          ctx.log.info({ step: step.step, interface: step.interface }, `executing ${kind} step`);
          const result = await handler(asRecord(step.args), {
            ...ctx,
            node: checked.data.node ?? {},
            ports: checked.data.ports ?? [],
            step,
          });
          return { [`${kind}_result`]: result ?? null, [`${kind}_step`]: step };
        },
      },
    },
  };
}
