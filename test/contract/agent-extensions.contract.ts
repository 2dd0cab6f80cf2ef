// The behaviour every command extension of the agent owes a conductor speaking IPA's protocol
// (docs/agent.md, "Command API"): each command it lists is callable through the executor as
// "<extension>.<command>"; a sync command answers a terminal record in IPA's shape (id,
// command_name, command_status SUCCEEDED/FAILED, command_result, command_error); an async one
// answers RUNNING and later reaches a terminal status; an unknown command of the extension is
// refused with IPA's InvalidCommandError; bad params are refused with InvalidCommandParamsError.
// Each extension runs this same suite (see agent-extensions.test.ts).
//
// The subject must give a call for every command the extension registers, so a command added
// later without a case here fails the suite instead of going untested.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import type { CommandExecutor } from '../../agent/commands/executor.ts';
import type { CommandRegistry } from '../../agent/commands/registry.ts';
import type { CommandExtension } from '../../agent/commands/types.ts';
import { CommandRecord } from '../../shared/wire/ipa.ts';

export interface ExtensionSubject {
  /** A fresh executor over the agent's whole registry, for each call. */
  open(): Promise<{ executor: CommandExecutor; registry: CommandRegistry }>;
  /** The extension objects registered under this name (several when a plugin adds to one). */
  extensions: readonly CommandExtension[];
  /** Params for each command: a call that reaches a terminal status without touching a disk. */
  calls: Record<string, Record<string, unknown>>;
  /** Params the command must refuse as invalid (required for every command with `validate`). */
  badParams?: Record<string, Record<string, unknown>>;
}

const TERMINAL = ['SUCCEEDED', 'FAILED', 'CLEAN_VERSION_MISMATCH'] as const;

/** IPA's serialised RESTError, as command_error carries it. */
const RestError = z.strictObject({
  type: z.string().check(z.minLength(1)),
  code: z.number().check(z.int()),
  message: z.string().check(z.minLength(1)),
  details: z.string(),
});

/** command_result: IPA's is a dict or None (strings are wrapped as {result}). */
const Result = z.nullable(z.record(z.string(), z.unknown()));

const Record_ = z.strictObject({
  id: z.uuid(),
  command_name: z.string(),
  command_status: z.enum(['RUNNING', ...TERMINAL]),
  command_error: z.nullable(RestError),
  command_result: Result,
});

function assertRecord(raw: unknown, command: string): z.infer<typeof Record_> {
  CommandRecord.parse(raw); // the shared wire schema the conductor parses with
  const r = Record_.safeParse(raw);
  assert.ok(
    r.success,
    `${command}: not IPA's command record: ${r.success ? '' : z.prettifyError(r.error)}\n${JSON.stringify(raw)}`,
  );
  const rec = r.data;
  assert.equal(rec.command_name, command, 'command_name is the part after the dot');
  if (rec.command_status === 'RUNNING' || rec.command_status === 'SUCCEEDED')
    assert.equal(rec.command_error, null, `${command}: no error while ${rec.command_status}`);
  if (rec.command_status === 'RUNNING')
    assert.equal(rec.command_result, null, `${command}: no result while RUNNING`);
  if (rec.command_status === 'FAILED' || rec.command_status === 'CLEAN_VERSION_MISMATCH') {
    assert.ok(rec.command_error, `${command}: a ${rec.command_status} record names its error`);
    assert.equal(rec.command_result, null, `${command}: no result when ${rec.command_status}`);
  }
  return rec;
}

async function assertRejectsWith(
  p: Promise<unknown>,
  type: string,
  code: number,
  message: string,
): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    const err = e as { name?: string; serialize?: () => unknown };
    assert.equal(err.name, 'AgentRestError', `expected IPA's ${type}, got ${String(e)}`);
    const s = RestError.parse(err.serialize!());
    assert.equal(s.type, type);
    assert.equal(s.code, code);
    assert.equal(s.message, message);
    return true;
  });
}

export function agentExtensionContract(name: string, subject: ExtensionSubject): void {
  const commands = subject.extensions.flatMap((e) => {
    assert.equal(e.name, name, 'the subject lists only extensions registered under its name');
    return Object.entries(e.commands);
  });

  describe(`agent extension contract: ${name}`, () => {
    it('lists commands, and the subject covers every one (a new command needs a case here)', () => {
      assert.ok(commands.length > 0, 'an extension has commands');
      assert.deepEqual(
        Object.keys(subject.calls).sort(),
        commands.map(([c]) => c).sort(),
        'one call per registered command',
      );
      for (const [c, def] of commands)
        if (def.validate)
          assert.ok(subject.badParams?.[c], `${name}.${c} validates params: give a bad-params case`);
    });

    it('every command is registered on the command API under <extension>.<command>', async () => {
      const { registry } = await subject.open();
      const names = registry.names();
      for (const [c] of commands)
        assert.ok(names.includes(`${name}.${c}`), `${name}.${c} in ${names.join(', ')}`);
    });

    for (const [command, def] of commands) {
      const full = `${name}.${command}`;
      if (def.async) {
        it(`${full} (async): answers RUNNING, then ends in a terminal record`, async (t) => {
          const { executor } = await subject.open();
          const run = await executor.execute(full, subject.calls[command] ?? {});
          const first = assertRecord(JSON.parse(JSON.stringify(run.serialize(false))), command);
          if (first.command_status === 'RUNNING') {
            assert.equal(executor.current()?.id, first.id, 'it is the running command');
          } else {
            // As with IPA's thread, a command that ends within the request (no I/O on this path)
            // is already terminal when the POST answers; Ironic reads either.
            assert.ok((TERMINAL as readonly string[]).includes(first.command_status), first.command_status);
            t.diagnostic(`${full} had already ended (${first.command_status}) when the POST answered`);
          }
          await run.done;
          const last = assertRecord(JSON.parse(JSON.stringify(run.serialize(false))), command);
          assert.ok((TERMINAL as readonly string[]).includes(last.command_status), last.command_status);
          assert.equal(last.id, first.id);
          assert.equal(executor.get(first.id), run, 'GET /v1/commands/{id} finds it');
          assert.equal(executor.current(), undefined, 'nothing runs any more');
          const text = (last.command_result as { result?: unknown } | null)?.result;
          if (typeof text === 'string')
            assert.ok(
              text.startsWith(`${command}: `),
              `an async string result reads "${command}: ...": ${text}`,
            );
        });
      } else {
        it(`${full} (sync): answers a terminal record inside the request`, async () => {
          const { executor } = await subject.open();
          const run = await executor.execute(full, subject.calls[command] ?? {});
          const rec = assertRecord(JSON.parse(JSON.stringify(run.serialize(false))), command);
          assert.ok(
            (TERMINAL as readonly string[]).includes(rec.command_status),
            `${full}: ${rec.command_status}`,
          );
          assert.equal(executor.current(), undefined, 'a sync command is over when it answers');
          assert.deepEqual(
            executor.runs.map((r) => r.id),
            [rec.id],
            'listed in /v1/commands',
          );
        });
      }
      const bad = subject.badParams?.[command];
      if (bad) {
        it(`${full}: bad params are refused with InvalidCommandParamsError, and nothing runs`, async () => {
          const { executor } = await subject.open();
          await assertRejectsWith(
            executor.execute(full, bad),
            'InvalidCommandParamsError',
            400,
            'Invalid command parameters',
          );
          assert.equal(executor.current(), undefined);
        });
      }
    }

    it('an unknown command of the extension is refused with InvalidCommandError, and nothing runs', async () => {
      const { executor } = await subject.open();
      await assertRejectsWith(
        executor.execute(`${name}.no_such_command`, {}),
        'InvalidCommandError',
        400,
        'Invalid command',
      );
      assert.equal(executor.runs.length, 0, 'no record for a refused request');
    });
  });
}
