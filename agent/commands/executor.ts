// Runs commands and keeps their result records, with IPA's rules: one command at a time (409
// "Agent is busy" while the last one is RUNNING), sync commands answer inside the request, async
// ones return a RUNNING record and finish in the background, string results are wrapped, and
// every record since boot stays listed in order.
import { randomUUID } from 'node:crypto';
import { isKilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { CommandRecord, KilnProgress } from '../../shared/wire/ipa.ts';
import {
  type AgentRestError,
  agentIsBusy,
  commandExecutionError,
  invalidParams,
  isAgentRestError,
  isInvalidContent,
} from './errors.ts';
import type { CommandRegistry } from './registry.ts';
import type { Progress } from './types.ts';

export type Status = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CLEAN_VERSION_MISMATCH';

export class CommandRun {
  readonly id = randomUUID();
  status: Status = 'RUNNING';
  error: unknown = null;
  result: unknown = null;
  progress: KilnProgress | null = null;
  readonly abort = new AbortController();
  private resolveDone!: () => void;
  readonly done = new Promise<void>((r) => {
    this.resolveDone = r;
  });

  constructor(
    /** Short name (after the dot): what Ironic matches on. */
    readonly name: string,
    readonly fullName: string,
    readonly isAsync: boolean,
  ) {}

  finish(status: Exclude<Status, 'RUNNING'>, resultOrError: unknown): void {
    this.status = status;
    if (status === 'SUCCEEDED') this.result = resultOrError;
    else this.error = resultOrError;
    this.resolveDone();
  }

  serialize(withProgress: boolean): CommandRecord {
    const rec: CommandRecord = {
      id: this.id,
      command_name: this.name,
      command_status: this.status,
      command_error: this.error,
      command_result: this.result,
    };
    if (withProgress) rec.kiln_progress = this.progress;
    return rec;
  }
}

export interface ExecutorOptions {
  registry: CommandRegistry;
  log: Logger;
  /** Called when an async command ends (the agent forces a heartbeat). */
  onAsyncDone?: (run: CommandRun) => void;
}

/** Turn anything a command threw into IPA's serialised error. */
function toRestError(e: unknown): AgentRestError {
  if (isAgentRestError(e)) return e;
  if (isKilnError(e) && e.code === 'VALIDATION_FAILED') return invalidParams(e.message);
  return commandExecutionError(e instanceof Error ? e.message : String(e));
}

export class CommandExecutor {
  readonly runs: CommandRun[] = [];
  /** Serialises command starts; a sync command holds it until it is done, like IPA's lock. */
  private lock: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ExecutorOptions) {}

  current(): CommandRun | undefined {
    const last = this.runs[this.runs.length - 1];
    return last && last.status === 'RUNNING' ? last : undefined;
  }

  get(id: string): CommandRun | undefined {
    return this.runs.find((r) => r.id === id);
  }

  /** Start a command. Throws AgentRestError for request-level failures (400/404/409). */
  execute(fullName: string, params: Record<string, unknown>): Promise<CommandRun> {
    const next = this.lock.then(() => this.start(fullName, params));
    this.lock = next.then(
      (run) => (run.isAsync ? undefined : run.done),
      () => undefined,
    );
    return next;
  }

  private async start(fullName: string, params: Record<string, unknown>): Promise<CommandRun> {
    const { command, definition } = this.opts.registry.resolve(fullName);
    const busy = this.current();
    if (busy) throw agentIsBusy(busy.name);
    const run = new CommandRun(command, fullName, definition.async);
    const log = this.opts.log.child({ command: fullName, command_id: run.id });
    const ctx = {
      log,
      signal: run.abort.signal,
      progress: (p: Progress) => {
        run.progress = {
          command_id: run.id,
          command_name: command,
          ...p,
          updated_at: new Date().toISOString(),
        };
      },
    };
    try {
      definition.validate?.(params);
    } catch (e) {
      const err = toRestError(e);
      if (isInvalidContent(err)) throw err;
      run.finish('FAILED', err.serialize());
      this.runs.push(run);
      return run;
    }
    this.runs.push(run);
    log.info({ async: definition.async }, 'command started');
    const work = (async () => {
      try {
        let result = await definition.run(params, ctx);
        if (typeof result === 'string')
          result = { result: definition.async ? `${command}: ${result}` : result };
        run.finish('SUCCEEDED', result ?? null);
        log.info({ status: run.status }, 'command finished');
      } catch (e) {
        const err = toRestError(e);
        run.finish(err.type === 'VersionMismatch' ? 'CLEAN_VERSION_MISMATCH' : 'FAILED', err.serialize());
        log.warn({ status: run.status, error: err.message }, 'command failed');
      }
      if (definition.async) this.opts.onAsyncDone?.(run);
    })();
    if (!definition.async) await work;
    return run;
  }
}
