// Kiln's version and the Ironic API microversion range the conductor speaks towards ramdisks.
export const KILN_VERSION = '0.1.0';
/** 1.68: lookup hands out agent tokens (≥ 1.62) and heartbeats may carry agent_verify_ca. */
export const IRONIC_API_MAX_VERSION = '1.68';
export const IRONIC_API_MIN_VERSION = '1.1';
