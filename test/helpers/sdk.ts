// For tests of the client SDK: the ApiError a call rejects with.
import assert from 'node:assert/strict';
import { ApiError } from '../../packages/client/src/index.js';

/** Awaits a call that must fail, and returns its ApiError (a resolved call or another error fails the test). */
export async function apiError(call: Promise<unknown>): Promise<ApiError> {
  const outcome = await call.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  // With an explicit message: assert.ok without one reads the test's source to describe the
  // expression, which takes minutes on a file that tsx compiled to one line.
  if (!('error' in outcome)) assert.fail('the call succeeded; an ApiError was expected');
  assert.ok(outcome.error instanceof ApiError, `expected an ApiError, got ${String(outcome.error)}`);
  return outcome.error;
}
