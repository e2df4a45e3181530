// Typed errors, thrown anywhere and formatted once by the error handler into the blueprint's
// envelope (4.1). Messages here are shown to clients: never put SQL, stack traces or PHI in them.
import { Type, type Static } from 'typebox';

export const ErrorCodes = {
  BAD_REQUEST: 400,
  VALIDATION_ERROR: 400,
  INVALID_JSON: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  GONE: 410,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNPROCESSABLE_ENTITY: 422,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  BAD_GATEWAY: 502,
  SERVICE_UNAVAILABLE: 503,
  GATEWAY_TIMEOUT: 504,
} as const;

export type ErrorCode = keyof typeof ErrorCodes | (string & {});

export interface ErrorDetail {
  field: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly statusCode: number,
    message: string,
    readonly details: ErrorDetail[] = [],
    /** Extra response headers (Retry-After, Allow, …). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const notFound = (what = 'Resource') => new AppError('NOT_FOUND', 404, `${what} not found`);
export const forbidden = (message = 'Insufficient permissions') => new AppError('FORBIDDEN', 403, message);
export const unauthorized = (message = 'Authentication required') => new AppError('UNAUTHORIZED', 401, message);
export const conflict = (code: string, message: string, details: ErrorDetail[] = []) =>
  new AppError(code, 409, message, details);
export const unprocessable = (code: string, message: string, details: ErrorDetail[] = []) =>
  new AppError(code, 422, message, details);
export const validationError = (details: ErrorDetail[], message = 'Invalid input data') =>
  new AppError('VALIDATION_ERROR', 400, message, details);
export const serviceUnavailable = (code: string, message: string, retryAfterSeconds?: number) =>
  new AppError(code, 503, message, [], retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) });

export const ErrorEnvelope = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ examples: ['VALIDATION_ERROR'] }),
      message: Type.String(),
      details: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
      timestamp: Type.String({ format: 'date-time' }),
      requestId: Type.String(),
      correlationId: Type.String(),
    }),
  },
  { $id: 'ErrorEnvelope', description: 'The error body of every non-2xx response.' },
);
export type ErrorEnvelope = Static<typeof ErrorEnvelope>;

/** The shape of every error body; requestId and correlationId tie it to the log line. */
export function envelope(
  code: string,
  message: string,
  details: ErrorDetail[],
  requestId: string,
  correlationId: string,
): ErrorEnvelope {
  return { error: { code, message, details, timestamp: new Date().toISOString(), requestId, correlationId } };
}
