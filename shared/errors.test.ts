import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_TABLE, EXIT, errorBody, isErrorCode, isKilnError, KilnError } from './errors.ts';

describe('error codes', () => {
  it('take their HTTP status from the one table, unless a caller names another', () => {
    for (const [code, row] of Object.entries(ERROR_TABLE)) {
      assert.ok(isErrorCode(code));
      const e = new KilnError(code as keyof typeof ERROR_TABLE, 'x');
      assert.equal(e.status, row.status, code);
      assert.ok(isKilnError(e));
      assert.deepEqual(errorBody(e), { error: { code, message: 'x', details: null } });
    }
    assert.equal(new KilnError('NOT_FOUND', 'no such method', { status: 405 }).status, 405);
  });

  it('map bad input to the usage exit code and the rest by kind', () => {
    assert.equal(ERROR_TABLE.VALIDATION_FAILED.exit, EXIT.usage);
    assert.equal(ERROR_TABLE.CONFIG_INVALID.exit, EXIT.usage);
    assert.equal(ERROR_TABLE.NOT_FOUND.exit, EXIT.notFound);
    for (const c of ['CONFLICT', 'NODE_LOCKED', 'INVALID_STATE', 'IN_MAINTENANCE'] as const)
      assert.equal(ERROR_TABLE[c].exit, EXIT.conflict, c);
    for (const c of ['BMC_ERROR', 'AGENT_ERROR', 'IMAGE_ORIGIN_FAILED', 'INTERNAL'] as const)
      assert.equal(ERROR_TABLE[c].exit, EXIT.error, c);
    assert.equal(isErrorCode('toString'), false, 'only own keys are codes');
    assert.equal(isErrorCode('NOPE'), false);
  });
});
