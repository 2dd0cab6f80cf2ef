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
  | 'INTERNAL';

const STATUS: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  NODE_LOCKED: 409,
  INVALID_STATE: 409,
  IN_MAINTENANCE: 409,
  BMC_ERROR: 502,
  BMC_UNSUPPORTED: 400,
  AGENT_ERROR: 502,
  IMAGE_ORIGIN_FAILED: 502,
  CONFIG_INVALID: 400,
  INTERNAL: 500,
};

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
    this.status = opts.status ?? STATUS[code];
    this.details = opts.details ?? null;
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'KilnError' && 'code' in e;
}

/** The one error body every Kiln API answers with. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: unknown };
}

export function errorBody(e: KilnError): ErrorBody {
  return { error: { code: e.code, message: e.message, details: e.details } };
}
