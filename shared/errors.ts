// One error type for the whole project. Callers match on `code`, never on `instanceof`:
// the agent bundle carries its own copy of this module, so class identity does not survive.

export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'NODE_LOCKED'
  | 'INVALID_STATE'
  | 'IN_MAINTENANCE'
  | 'BMC_ERROR'
  | 'BMC_UNSUPPORTED'
  | 'AGENT_ERROR'
  | 'IMAGE_ORIGIN_FAILED'
  | 'CONFIG_INVALID'
  | 'VERSION_UNSUPPORTED'
  | 'EXEC_FAILED'
  | 'DHCP_MALFORMED'
  | 'INVALID_IMAGE_INFO'
  | 'BMC_AUTH'
  | 'BMC_UNREACHABLE'
  | 'RETRIES_EXHAUSTED'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'INTERNAL';

/** CLI exit codes, shared by every command: scripts branch on them. */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  unreachable: 5,
  denied: 6,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * The one table from error code to what each wire makes of it: the HTTP status the API answers
 * with, and the exit code the CLI ends with when the API answers that code. A code is added here
 * or nowhere; the type makes a missing row a compile error.
 */
export const ERROR_TABLE: Record<ErrorCode, { status: number; exit: ExitCode }> = {
  VALIDATION_FAILED: { status: 400, exit: EXIT.usage },
  NOT_FOUND: { status: 404, exit: EXIT.notFound },
  CONFLICT: { status: 409, exit: EXIT.conflict },
  NODE_LOCKED: { status: 409, exit: EXIT.conflict },
  INVALID_STATE: { status: 409, exit: EXIT.conflict },
  IN_MAINTENANCE: { status: 409, exit: EXIT.conflict },
  BMC_ERROR: { status: 502, exit: EXIT.error },
  BMC_UNSUPPORTED: { status: 400, exit: EXIT.usage },
  AGENT_ERROR: { status: 502, exit: EXIT.error },
  IMAGE_ORIGIN_FAILED: { status: 502, exit: EXIT.error },
  CONFIG_INVALID: { status: 400, exit: EXIT.usage },
  /** An API microversion outside the supported range (Ironic's 406). */
  VERSION_UNSUPPORTED: { status: 406, exit: EXIT.usage },
  /** An external tool (ipmitool, sgdisk, …) failed, timed out or is not installed. */
  EXEC_FAILED: { status: 500, exit: EXIT.error },
  /** A DHCP packet that can't be parsed; dropped, never answered. */
  DHCP_MALFORMED: { status: 400, exit: EXIT.usage },
  /** image_info that does not describe a writable image (shared/wire/image-info.ts). */
  INVALID_IMAGE_INFO: { status: 400, exit: EXIT.usage },
  /** The BMC refused the credentials or the user's privilege. */
  BMC_AUTH: { status: 502, exit: EXIT.error },
  /** The BMC did not answer, refused the connection, or its name does not resolve. */
  BMC_UNREACHABLE: { status: 502, exit: EXIT.error },
  /** A transient failure lasted through every retry (the last one is the cause). */
  RETRIES_EXHAUSTED: { status: 502, exit: EXIT.error },
  /** No API token, or one that is unknown, revoked or expired. */
  UNAUTHENTICATED: { status: 401, exit: EXIT.denied },
  /** The token's role does not allow this. */
  FORBIDDEN: { status: 403, exit: EXIT.denied },
  /** Too many requests from one source or for one MAC; retry after the Retry-After header. */
  RATE_LIMITED: { status: 429, exit: EXIT.error },
  INTERNAL: { status: 500, exit: EXIT.error },
};

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && Object.hasOwn(ERROR_TABLE, v);
}

export class KilnError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  constructor(
    code: ErrorCode,
    message: string,
    opts: { details?: unknown; cause?: unknown; status?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KilnError';
    this.code = code;
    this.status = opts.status ?? ERROR_TABLE[code].status;
    this.details = opts.details ?? null;
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'KilnError' && 'code' in e;
}

/**
 * For the few error classes that carry a code of the union without being KilnErrors (their own
 * fields clash with KilnError's, e.g. OriginError's origin `status`): match on the code.
 */
export function hasErrorCode<C extends ErrorCode>(e: unknown, code: C): e is { code: C; message: string } {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

/** The one error body every Kiln API answers with. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: unknown };
}

export function errorBody(e: KilnError): ErrorBody {
  return { error: { code: e.code, message: e.message, details: e.details } };
}
