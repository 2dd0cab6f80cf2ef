// Provision states and the transition table, modelled on Ironic's state machine so that an
// operator coming from Ironic (or a stock Ironic conductor talking to our agent) finds the same
// names. The table is data: every legal move is one row, and everything else is refused.

export const ProvisionState = {
  enroll: 'enroll',
  verifying: 'verifying',
  manageable: 'manageable',
  inspecting: 'inspecting',
  inspectWait: 'inspect wait',
  inspectFailed: 'inspect failed',
  cleaning: 'cleaning',
  cleanWait: 'clean wait',
  cleanFailed: 'clean failed',
  available: 'available',
  deploying: 'deploying',
  waitCallBack: 'wait call-back',
  deployFailed: 'deploy failed',
  active: 'active',
  deleting: 'deleting',
  error: 'error',
} as const;
export type ProvisionState = (typeof ProvisionState)[keyof typeof ProvisionState];
export const PROVISION_STATES = Object.values(ProvisionState) as ProvisionState[];

/** Verbs an operator sends through the API or CLI. */
export const PROVISION_ACTIONS = [
  'manage',
  'inspect',
  'provide',
  'clean',
  'deploy',
  'rebuild',
  'undeploy',
  'abort',
] as const;
export type ProvisionAction = (typeof PROVISION_ACTIONS)[number];

/** Events the conductor raises itself while work runs. */
/**
 * `wait` parks a node until its ramdisk calls back; `done` and `fail` end a phase, from the busy
 * state or straight from the wait state when a call-back finishes the work; `done-manual` ends a
 * manual cleaning back in manageable instead of available.
 */
export type InternalEvent = 'done' | 'done-manual' | 'fail' | 'wait';
export const INTERNAL_EVENTS: readonly InternalEvent[] = ['done', 'done-manual', 'fail', 'wait'];
export type ProvisionEvent = ProvisionAction | InternalEvent;

export interface Transition {
  from: ProvisionState;
  event: ProvisionEvent;
  to: ProvisionState;
  /**
   * Where the node is headed while this transition's work runs (Ironic's target_provision_state).
   * Absent on a move into a busy or wait state: the node keeps the target it had.
   */
  target?: ProvisionState;
}

const S = ProvisionState;

export const TRANSITIONS: readonly Transition[] = [
  // Enrollment: the BMC must answer before a node becomes manageable.
  { from: S.enroll, event: 'manage', to: S.verifying, target: S.manageable },
  { from: S.verifying, event: 'done', to: S.manageable },
  { from: S.verifying, event: 'fail', to: S.enroll },

  // Inspection: in-band (agent) inspection waits for the ramdisk's inventory.
  { from: S.manageable, event: 'inspect', to: S.inspecting, target: S.manageable },
  { from: S.inspecting, event: 'wait', to: S.inspectWait, target: S.manageable },
  { from: S.inspecting, event: 'done', to: S.manageable },
  { from: S.inspecting, event: 'fail', to: S.inspectFailed },
  { from: S.inspectWait, event: 'done', to: S.manageable },
  { from: S.inspectWait, event: 'fail', to: S.inspectFailed },
  { from: S.inspectWait, event: 'abort', to: S.inspectFailed },
  { from: S.inspectFailed, event: 'inspect', to: S.inspecting, target: S.manageable },
  { from: S.inspectFailed, event: 'manage', to: S.manageable },

  // Cleaning: automated (provide → available) or manual (clean → manageable).
  { from: S.manageable, event: 'provide', to: S.cleaning, target: S.available },
  { from: S.manageable, event: 'clean', to: S.cleaning, target: S.manageable },
  { from: S.cleaning, event: 'wait', to: S.cleanWait },
  { from: S.cleanWait, event: 'done', to: S.available },
  { from: S.cleanWait, event: 'done-manual', to: S.manageable },
  { from: S.cleaning, event: 'done', to: S.available },
  { from: S.cleaning, event: 'done-manual', to: S.manageable },
  { from: S.cleaning, event: 'fail', to: S.cleanFailed },
  { from: S.cleanWait, event: 'fail', to: S.cleanFailed },
  { from: S.cleanWait, event: 'abort', to: S.cleanFailed },
  { from: S.cleanFailed, event: 'manage', to: S.manageable },
  { from: S.available, event: 'manage', to: S.manageable },

  // Deployment.
  { from: S.available, event: 'deploy', to: S.deploying, target: S.active },
  { from: S.deploying, event: 'wait', to: S.waitCallBack, target: S.active },
  { from: S.waitCallBack, event: 'done', to: S.active },
  { from: S.deploying, event: 'done', to: S.active },
  { from: S.deploying, event: 'fail', to: S.deployFailed },
  { from: S.waitCallBack, event: 'fail', to: S.deployFailed },
  { from: S.waitCallBack, event: 'abort', to: S.deployFailed },
  { from: S.deployFailed, event: 'deploy', to: S.deploying, target: S.active },
  { from: S.deployFailed, event: 'rebuild', to: S.deploying, target: S.active },
  { from: S.deployFailed, event: 'undeploy', to: S.deleting, target: S.available },
  { from: S.active, event: 'rebuild', to: S.deploying, target: S.active },

  // Teardown: undeploy always goes through cleaning so the next tenant finds no data.
  { from: S.active, event: 'undeploy', to: S.deleting, target: S.available },
  { from: S.deleting, event: 'clean', to: S.cleaning, target: S.available },
  { from: S.deleting, event: 'fail', to: S.error },
  { from: S.error, event: 'undeploy', to: S.deleting, target: S.available },
  { from: S.error, event: 'rebuild', to: S.deploying, target: S.active },
];

/** States in which the conductor holds no work of its own and waits for the ramdisk to call back. */
export const WAIT_STATES: readonly ProvisionState[] = [S.inspectWait, S.cleanWait, S.waitCallBack];

/** States where the conductor is actively working; a restart finds such nodes orphaned. */
export const BUSY_STATES: readonly ProvisionState[] = [
  S.verifying,
  S.inspecting,
  S.cleaning,
  S.deploying,
  S.deleting,
];

export function findTransition(from: ProvisionState, event: ProvisionEvent): Transition | undefined {
  return TRANSITIONS.find((t) => t.from === from && t.event === event);
}

/** The operator actions legal from a state, for "409: allowed are …" messages. */
export function allowedActions(from: ProvisionState): ProvisionAction[] {
  const acts = new Set<ProvisionAction>();
  for (const t of TRANSITIONS) {
    if (t.from === from && (PROVISION_ACTIONS as readonly string[]).includes(t.event)) {
      acts.add(t.event as ProvisionAction);
    }
  }
  return [...acts];
}

export const PowerState = {
  on: 'power on',
  off: 'power off',
} as const;
export type PowerState = (typeof PowerState)[keyof typeof PowerState] | null;

export const POWER_TARGETS = [
  'power on',
  'power off',
  'soft power off',
  'rebooting',
  'soft rebooting',
] as const;
export type PowerTarget = (typeof POWER_TARGETS)[number];
