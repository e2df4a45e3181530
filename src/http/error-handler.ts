// One place turns every failure — ours, Fastify's, Ajv's, the database's — into the blueprint's
// envelope. Client errors keep their (safe) message; anything unexpected becomes a bare 500 whose
// details only reach the log, under the requestId the client was given.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import FindMyWay, { type HTTPVersion } from 'find-my-way';
import { AppError, envelope, type ErrorDetail } from './errors.js';
import { establishRequestContext } from './request-context.js';

interface AjvIssue {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

const CODE_BY_STATUS: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  410: 'GONE',
  411: 'LENGTH_REQUIRED',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE_ENTITY',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
  503: 'SERVICE_UNAVAILABLE',
  504: 'GATEWAY_TIMEOUT',
};

// Fastify's own messages for these are written for developers of Fastify; ours name the fix.
const FRIENDLY_MESSAGES: Record<string, { code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'INVALID_JSON', message: 'The request body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    code: 'INVALID_JSON',
    message: 'The request body is empty but Content-Type says application/json',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: 'Unsupported Content-Type: send application/json',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', message: 'The request body is larger than this endpoint accepts' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    code: 'BAD_REQUEST',
    message: 'The request body size does not match Content-Length',
  },
};

/** "body.address.postalCode" style paths, naming the missing or unexpected property itself. */
function fieldOf(issue: AjvIssue, context: string | undefined): string {
  const segments = issue.instancePath
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (issue.keyword === 'required' && typeof issue.params.missingProperty === 'string') {
    segments.push(issue.params.missingProperty);
  }
  if (issue.keyword === 'additionalProperties' && typeof issue.params.additionalProperty === 'string') {
    segments.push(issue.params.additionalProperty);
  }
  if (segments.length > 0) return segments.join('.');
  return context === 'body' || context === undefined ? '(body)' : `(${context})`;
}

function messageOf(issue: AjvIssue): string {
  switch (issue.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not an accepted field';
    case 'enum':
      return `must be one of ${(issue.params.allowedValues as unknown[]).map(String).join(', ')}`;
    case 'format':
      return `must be a valid ${String(issue.params.format)}`;
    default:
      return issue.message ?? 'is invalid';
  }
}

export function validationDetails(issues: AjvIssue[], context: string | undefined): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  const seen = new Set<string>();
  for (const issue of issues) {
    // anyOf/oneOf branches repeat the same complaint per branch; one line per field is enough.
    if (issue.keyword === 'anyOf' || issue.keyword === 'oneOf') continue;
    const detail = { field: fieldOf(issue, context), message: messageOf(issue) };
    const key = `${detail.field}\u0000${detail.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      details.push(detail);
    }
  }
  return details;
}

/** Database errors that mean "the database is not there right now", as opposed to a bug. */
export function isDatabaseUnavailable(error: unknown): boolean {
  const err = error as { code?: string; message?: string } | null;
  if (err === null || typeof err !== 'object') return false;
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004'].includes(err.code ?? '')) {
    return true;
  }
  // pg's client after its connection dropped mid-query (a database restart) says "not queryable".
  return /timeout exceeded when trying to connect|Connection terminated|not queryable|PGlite is closed/i.test(err.message ?? '');
}

function send(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  details: ErrorDetail[] = [],
  headers: Record<string, string> = {},
) {
  return reply
    .code(status)
    .headers(headers)
    .type('application/json; charset=utf-8')
    .send(envelope(code, message, details, request.id, request.correlationId));
}

// Routing errors carry the path in Fastify's messages: never echoed (it may hold an id or a name).
const ROUTING_MESSAGES: Record<string, string> = {
  FST_ERR_BAD_URL: 'The URL is not valid (bad percent-encoding)',
  FST_ERR_MAX_PARAM_LENGTH: 'A segment of the URL is longer than any identifier this API uses',
};

/**
 * Errors Fastify raises while routing, before any hook runs (an undecodable URL, a path parameter
 * over the length limit): same envelope, same ids, and (no onSend hook runs for these) the
 * response headers set here.
 */
export function frameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  establishRequestContext(request, reply);
  reply.header('cache-control', 'no-store');
  const status = error.statusCode ?? 400;
  const message = ROUTING_MESSAGES[error.code] ?? 'The request could not be routed';
  // The line the requestId finds (no request line is written for these); never the path.
  request.log.info({ requestId: request.id, correlationId: request.correlationId, statusCode: status, code: error.code }, 'request refused while routing');
  return send(request, reply, status, CODE_BY_STATUS[status] ?? 'BAD_REQUEST', message);
}

// PostgreSQL refusing a value the schema let through (a NUL character, a date out of its range):
// the client sent it, so it is a 400, and the failed statement wrote nothing.
const CLIENT_DATA_ERRORS: Record<string, string> = {
  '22021': 'The request contains a character that cannot be stored (such as NUL)',
  '22P05': 'The request contains a character that cannot be stored (such as NUL)',
  '22008': 'A date or time in the request is out of range',
  '22007': 'A date or time in the request is not valid',
  '22003': 'A number in the request is out of range',
  '22009': 'A date or time in the request is out of range',
  '22P02': 'A value in the request is not valid',
};

// Two requests changing the same rows at once: the database picked one to fail. Nothing was
// written by it, and the same request will most likely succeed if sent again.
const RETRYABLE_CONFLICTS = new Set(['40P01', '40001']);

export function replyWithError(request: FastifyRequest, reply: FastifyReply, error: unknown) {
  if (error instanceof AppError) {
    if (error.statusCode >= 500) request.log.warn({ code: error.code }, error.message);
    return send(request, reply, error.statusCode, String(error.code), error.message, error.details, error.headers);
  }
  const fastifyError = error as FastifyError & { validation?: AjvIssue[]; validationContext?: string };
  if (Array.isArray(fastifyError.validation)) {
    return send(
      request,
      reply,
      400,
      'VALIDATION_ERROR',
      'Invalid input data',
      validationDetails(fastifyError.validation, fastifyError.validationContext),
    );
  }
  const friendly = fastifyError.code ? FRIENDLY_MESSAGES[fastifyError.code] : undefined;
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return send(
      request,
      reply,
      status,
      friendly?.code ?? CODE_BY_STATUS[status] ?? 'BAD_REQUEST',
      friendly?.message ?? fastifyError.message,
    );
  }
  const sqlState = (error as { code?: unknown } | null)?.code;
  if (typeof sqlState === 'string' && CLIENT_DATA_ERRORS[sqlState] !== undefined) {
    return send(request, reply, 400, 'BAD_REQUEST', CLIENT_DATA_ERRORS[sqlState]);
  }
  if (typeof sqlState === 'string' && RETRYABLE_CONFLICTS.has(sqlState)) {
    request.log.warn({ err: error }, 'concurrent update conflict');
    return send(request, reply, 409, 'CONCURRENT_UPDATE', 'Another request changed the same data at the same time; retry', [], {
      'retry-after': '1',
    });
  }
  if (isDatabaseUnavailable(error)) {
    request.log.error({ err: error }, 'database unavailable');
    return send(request, reply, 503, 'SERVICE_UNAVAILABLE', 'The database is unavailable; try again shortly', [], {
      'retry-after': '5',
    });
  }
  request.log.error({ err: error }, 'unexpected error');
  return send(request, reply, 500, 'INTERNAL_ERROR', 'An unexpected error occurred');
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export function registerErrorHandling(app: FastifyInstance): void {
  // A shadow router of every route's path, so an unmatched request can tell "no such path" (404)
  // from "path exists, not with this method" (405 with Allow).
  const paths = FindMyWay<HTTPVersion.V1>();
  app.addHook('onRoute', (route) => {
    // A catch-all (CORS answers preflights with OPTIONS *) says nothing about which paths exist:
    // with it, every unknown path would look like a 405.
    if (route.url.includes('*')) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      try {
        paths.on(method as (typeof METHODS)[number], route.url, () => {});
      } catch {
        // the same method and path registered twice (HEAD for GET); nothing to add
      }
    }
  });

  app.setErrorHandler((error, request, reply) => replyWithError(request, reply, error));

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = METHODS.filter((method) => paths.find(method, path) !== null);
    if (allowed.length > 0) {
      return send(request, reply, 405, 'METHOD_NOT_ALLOWED', `${request.method} is not allowed on this path`, [], {
        allow: allowed.join(', '),
      });
    }
    return send(request, reply, 404, 'NOT_FOUND', 'No such endpoint');
  });
}
