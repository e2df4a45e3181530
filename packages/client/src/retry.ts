// When a refused request may be sent again, and after how long. Pure functions: the transport
// (transport.ts) asks them after every answer, the unit tests pin the rules
// (packages/client/README.md, "Retries").

export interface RetryPolicy {
  /** Sends of one call in all, the first included (1: never retry). */
  maxAttempts: number;
  /** The longest the client sleeps between sends of one call, all waits together. A Retry-After that would pass it is not waited for. */
  maxTotalWaitMs: number;
  /** The wait before retry n when the answer has no Retry-After: baseDelayMs × 2^(n-1). */
  baseDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 3, maxTotalWaitMs: 10_000, baseDelayMs: 250 };

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * Retry-After in milliseconds from now: delta seconds ("120") or an HTTP date
 * ("Wed, 21 Oct 2026 07:28:00 GMT"). null when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date names its day and month ("Wed, 21 Oct 2026 07:28:00 GMT"); Date.parse alone would also take "-5".
  const at = /^[A-Za-z]{3}, /.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * Whether sending the same request again can't do the work twice.
 * - 429: the rate limiter refuses before any handler runs (an onRequest hook, before the token is
 *   even checked), so nothing was done: always safe.
 * - 503: the server was overloaded, closing, or a dependency was down. Usually nothing was done,
 *   but the client can't know that (a proxy may answer 503 after the server did the work), so only
 *   a request that is harmless to repeat is retried: an idempotent method, or a POST carrying an
 *   Idempotency-Key (the server replays a stored answer instead of running it again).
 * - anything else: not retried here (401 has its own path: one refresh).
 */
export function isSafeToRetry(status: number, method: string, hasIdempotencyKey: boolean): boolean {
  if (status === 429) return true;
  if (status !== 503) return false;
  const upper = method.toUpperCase();
  return IDEMPOTENT_METHODS.has(upper) || (upper === 'POST' && hasIdempotencyKey);
}

export interface RetryContext {
  status: number;
  method: string;
  hasIdempotencyKey: boolean;
  retryAfter: string | null;
  /** Sends of this call so far, the one just answered included. */
  attempts: number;
  /** Milliseconds slept for this call so far. */
  waitedMs: number;
}

/** Milliseconds to wait before sending again, or null: give the answer to the caller. */
export function retryDelay(context: RetryContext, policy: RetryPolicy, now = Date.now()): number | null {
  if (!isSafeToRetry(context.status, context.method, context.hasIdempotencyKey)) return null;
  if (context.attempts >= policy.maxAttempts) return null;
  const delay = parseRetryAfter(context.retryAfter, now) ?? policy.baseDelayMs * 2 ** (context.attempts - 1);
  if (context.waitedMs + delay > policy.maxTotalWaitMs) return null;
  return delay;
}
