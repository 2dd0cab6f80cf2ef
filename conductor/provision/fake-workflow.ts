// The workflow of nodes with the `fake` BMC driver, like Ironic's fake-hardware: every phase
// finishes at once without touching hardware. It exists for demos, API development and for
// testing the state machine; real nodes use the agent workflow.
import type { PhaseResult, Task, Workflow } from './workflow.ts';

export interface FakeWorkflowOptions {
  /** Milliseconds each phase takes, to exercise concurrency in tests. */
  delayMs?: number;
  /** Phases that throw, to exercise failure paths. */
  failIn?: ReadonlyArray<'inspect' | 'clean' | 'deploy' | 'tearDown'>;
}

export function createFakeWorkflow(opts: FakeWorkflowOptions = {}): Workflow {
  const phase = async (
    task: Task,
    name: 'inspect' | 'clean' | 'deploy' | 'tearDown',
  ): Promise<PhaseResult> => {
    if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
    if (opts.failIn?.includes(name)) throw new Error(`fake ${name} failure requested by the test`);
    await task.note(`fake_${name}`, `fake workflow: ${name} finished without touching hardware`);
    return 'done';
  };
  return {
    name: 'fake',
    inspect: (t) => phase(t, 'inspect'),
    clean: (t) => phase(t, 'clean'),
    deploy: (t) => phase(t, 'deploy'),
    tearDown: async (t) => {
      await phase(t, 'tearDown');
    },
  };
}
