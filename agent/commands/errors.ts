// IPA's REST errors: each serialises as {type, code, message, details} inside a command record,
// and as a WSME fault {faultcode, faultstring: "<message>: <details>"} when it fails a request.
// Matched by `name`, not instanceof, so commands from other modules can throw them too.

export class AgentRestError extends Error {
  constructor(
    readonly type: string,
    readonly code: number,
    readonly restMessage: string,
    readonly details: string,
  ) {
    super(`${restMessage}: ${details}`);
    this.name = 'AgentRestError';
  }

  serialize(): { type: string; code: number; message: string; details: string } {
    return { type: this.type, code: this.code, message: this.restMessage, details: this.details };
  }
}

export function isAgentRestError(e: unknown): e is AgentRestError {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'AgentRestError';
}

export const invalidCommand = (details: string) =>
  new AgentRestError('InvalidCommandError', 400, 'Invalid command', details);
export const invalidParams = (details: string) =>
  new AgentRestError('InvalidCommandParamsError', 400, 'Invalid command parameters', details);
export const extensionNotFound = (name: string) =>
  new AgentRestError(
    'RequestedObjectNotFoundError',
    404,
    'Not found',
    `Extension with id ${name} not found.`,
  );
export const agentIsBusy = (commandName: string) =>
  new AgentRestError('AgentIsBusy', 409, 'Agent is busy', `executing command ${commandName}`);
/** IPA's answer for a step (method) that no hardware manager implements. */
export const hardwareManagerMethodNotFound = (method: string, why: string) =>
  new AgentRestError(
    'HardwareManagerMethodNotFound',
    500,
    'No HardwareManager found to handle method',
    `Could not find method: ${method} (${why})`,
  );
export const commandExecutionError = (details: string) =>
  new AgentRestError('CommandExecutionError', 500, 'Command execution failed', details);
export const versionMismatch = (agent: unknown, node: unknown) =>
  new AgentRestError(
    'VersionMismatch',
    409,
    'Hardware managers version mismatch, reload agent with correct version',
    `Current versions: ${JSON.stringify(agent)}, versions used by ironic: ${JSON.stringify(node)}`,
  );

/** Errors that reject the request itself (HTTP 400) instead of becoming a FAILED record. */
export function isInvalidContent(e: AgentRestError): boolean {
  return (
    e.type === 'InvalidCommandError' ||
    e.type === 'InvalidCommandParamsError' ||
    e.type === 'InvalidContentError'
  );
}
