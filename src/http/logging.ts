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

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  ...[...SECRET_FIELDS, ...PATIENT_FIELDS].flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
];

/** Keeps what helps debugging (type, code, message, stack) and drops driver fields such as
 *  pg's `detail`, which quotes the offending row's values. */
export function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
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

export function registerRequestLogging(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    const durationMs = Number(process.hrtime.bigint() - request.startedAt) / 1e6;
    request.log.info(
      {
        correlationId: request.correlationId,
        method: request.method,
        route: request.routeOptions.url ?? '(unmatched)',
        statusCode: reply.statusCode,
        durationMs: Math.round(durationMs * 100) / 100,
      },
      'request completed',
    );
  });
}
