// The agent's version, sent as agent_version in heartbeats and shown by GET /v1/status.
// Ironic only requires it to be non-empty.
export const AGENT_VERSION = '0.1.0';
