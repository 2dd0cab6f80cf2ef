// The work behind provision states, Ironic's "deploy interface". The engine (engine.ts) owns the
// state machine and the reservation; a workflow only does the work of one phase and says whether
// it finished ('done') or now waits for the ramdisk to call back ('wait'). It throws to fail.
import type { Logger } from '../../shared/log.ts';
import type { ProvisionEvent } from '../../shared/states.ts';
import type { BmcCredentials, PowerDriver } from '../power/driver.ts';
import type { NodePatch, NodeRecord, Store } from '../store/store.ts';

export type PhaseResult = 'done' | 'wait';

export interface Task {
  /** The node as of the last write made under this task's reservation. */
  node: NodeRecord;
  readonly holder: string;
  readonly store: Store;
  readonly log: Logger;
  readonly actor: string;
  /** The node's power driver and credentials; throws BMC_UNSUPPORTED when the node has no BMC. */
  power(): { driver: PowerDriver; creds: BmcCredentials };
  /** Write fields of the node under the reservation; refreshes task.node. */
  update(patch: NodePatch): Promise<NodeRecord>;
  /** Record an informational event for the node (progress the operator should see in `events`). */
  note(event: string, message: string): Promise<void>;
}

export interface Workflow {
  readonly name: string;
  inspect(task: Task): Promise<PhaseResult>;
  clean(task: Task): Promise<PhaseResult>;
  deploy(task: Task): Promise<PhaseResult>;
  /** Undeploy's first half: stop the instance before cleaning. */
  tearDown(task: Task): Promise<void>;
  /**
   * A ramdisk heartbeat arrived while the node waits in `phase`; continue the work.
   * Workflows that never wait need not implement it.
   */
  resume?(task: Task, phase: 'inspect' | 'clean' | 'deploy'): Promise<PhaseResult>;
}

export type WorkflowEvent = Extract<ProvisionEvent, 'done' | 'wait'>;
