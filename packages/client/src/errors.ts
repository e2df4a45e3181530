// Every non-2xx answer of the API is one envelope (README, "Every error"); the client turns it into
// an ApiError carrying the same fields, so a caller branches on `code` and quotes `requestId`.
import type { components } from './v1.js';

export type ErrorEnvelope = components['schemas']['ErrorEnvelope'];
export type ErrorDetail = ErrorEnvelope['error']['details'][number];

function isEnvelope(body: unknown): body is ErrorEnvelope {
  if (body === null || typeof body !== 'object') return false;
  const error = (body as { error?: unknown }).error;
  return error !== null && typeof error === 'object' && typeof (error as { code?: unknown }).code === 'string';
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  /** The HTTP status. */
  readonly status: number;
  /** The envelope's code (RATE_LIMITED, TIME_SLOT_CONFLICT…), or HTTP_<status> when the body was not an envelope (a proxy's page). */
  readonly code: string;
  readonly details: ErrorDetail[];
  /** Quote it when reporting a problem: it finds the server's log line. */
  readonly requestId: string | null;
  readonly correlationId: string | null;
  /** The envelope as received, null when the body was not one. */
  readonly envelope: ErrorEnvelope | null;

  constructor(status: number, body: unknown, headers?: Headers) {
    const envelope = isEnvelope(body) ? body : null;
    const error = envelope?.error;
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? `HTTP_${status}`;
    this.details = Array.isArray(error?.details) ? error.details : [];
    this.requestId = error?.requestId ?? headers?.get('x-request-id') ?? null;
    this.correlationId = error?.correlationId ?? headers?.get('x-correlation-id') ?? null;
    this.envelope = envelope;
  }

  /** Reads the body of a non-2xx response (consuming it) into an ApiError. */
  static async from(response: Response): Promise<ApiError> {
    const text = await response.text().catch(() => '');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: a proxy or load balancer answered; the status is all there is.
    }
    return new ApiError(response.status, body, response.headers);
  }
}
