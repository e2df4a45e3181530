// pino JSON logs: one line per request, and nothing that identifies a patient or unlocks an
// account. Bodies are never logged; the redaction list is the second line of defence for
// anything a handler attaches to a log call.
import type { DestinationStream, LoggerOptions } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';

const SECRET_FIELDS = [
  'password',
  'newPassword',
  'currentPassword',
  'token',
  'mfaToken',
  'recoveryCode',
  'refreshToken',
  'accessToken',
  'apiKey',
  'secret',
  'authorization',
];
const PATIENT_FIELDS = ['firstName', 'lastName', 'dateOfBirth', 'email', 'phoneNumber', 'address', 'notes'];

/** Names hidden wherever they appear in a logged object, up to two levels deep. */
export const REDACTED_FIELDS: readonly string[] = [...SECRET_FIELDS, ...PATIENT_FIELDS];

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  ...REDACTED_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
];

/** Keeps what helps debugging (type, code, message, stack) and drops driver fields such as
 *  pg's `detail`, which quotes the offending row's values. */
export function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) {
    // A plain { name, message } (as a route logs a failure without its stack) is not "[object Object]".
    const { name, message } = (error ?? {}) as { name?: unknown; message?: unknown };
    if (typeof message === 'string') return { type: typeof name === 'string' ? name : undefined, message };
    return { message: String(error) };
  }
  const { code } = error as { code?: unknown };
  return { type: error.name, code, message: error.message, stack: error.stack };
}

export function loggerOptions(config: Config, stream?: DestinationStream): LoggerOptions & { stream?: DestinationStream } {
  return {
    level: config.logLevel,
    redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
    serializers: { err: serializeError, error: serializeError },
    base: { service: 'medspasync-pro' },
    ...(stream ? { stream } : {}),
  };
}

/** The route named in the request line and the metrics when no route matched (never the raw path). */
export const UNMATCHED_ROUTE = '(unmatched)';

/** The request line's fields: fixed, and none of them a redacted name (test/http/logging.test.ts). */
export const REQUEST_LINE_FIELDS = ['requestId', 'correlationId', 'method', 'route', 'statusCode', 'durationMs'] as const;

export function registerRequestLogging(app: FastifyInstance): void {
  // Redaction walks every field of a line against each redacted path (the wildcard ones too),
  // which cost more than writing the rest of the line. The request line has fixed fields and none
  // is redacted, so the pass could never change it: it is written by a child logger without one.
  // Everything else a request logs goes through request.log, redaction included.
  const requestLines = app.log.child({}, { redact: { paths: [] } });
  app.addHook('onResponse', (request, reply, done) => {
    const durationMs = Number(process.hrtime.bigint() - request.startedAt) / 1e6;
    requestLines.info(
      {
        requestId: request.id,
        correlationId: request.correlationId,
        method: request.method,
        route: request.routeOptions.url ?? UNMATCHED_ROUTE,
        statusCode: reply.statusCode,
        durationMs: Math.round(durationMs * 100) / 100,
      } satisfies Record<(typeof REQUEST_LINE_FIELDS)[number], unknown>,
      'request completed',
    );
    done();
  });
}
