// Transport-level protection: security headers (helmet), CORS from an allow-list, server timeouts
// against slow clients, a per-request deadline, optional native TLS and HSTS when serving it.
//
// - Headers: helmet's set on every response, computed once at start (it depends on nothing in the
//   request; building it per request cost more than the rest of the header work). API responses
//   get a CSP that allows nothing (`default-src 'none'`): they are JSON, never rendered. /docs
//   (the Scalar reference) gets a CSP that allows exactly its own bundle, the SHA-256 hash of its
//   inline start-up script, inline styles (Scalar injects CSS at runtime) and fetches to this
//   origin.
// - HSTS only on responses that travelled over HTTPS: natively (TLS_CERT_FILE) or, behind a
//   TRUST_PROXY, with X-Forwarded-Proto: https from that proxy. HSTS over plain HTTP is ignored by
//   browsers and would only mislead.
// - Cache-Control: no-store on every API and health response unless the route chose otherwise:
//   PHI must not sit in browser or proxy caches.
// - Deadline: a request still unanswered after REQUEST_TIMEOUT_MS gets 504 GATEWAY_TIMEOUT with
//   the envelope. Node cannot cancel the handler; whatever it was doing may still finish, which
//   the message says (504 means "outcome unknown", unlike 503 "not done, retry").
import cors from '@fastify/cors';
import helmet, { type HelmetOptions } from 'helmet';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { STATUS_CODES, type IncomingMessage, type ServerOptions, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { replyWithError } from './error-handler.js';
import { AppError, envelope } from './errors.js';
import { newCorrelationId, newRequestId } from './request-context.js';

export const HSTS_VALUE = 'max-age=31536000; includeSubDomains';

/** For JSON responses: nothing may load, nothing may frame them. */
const API_CSP = {
  'default-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
};

const HELMET_OPTIONS: HelmetOptions = {
  contentSecurityPolicy: { useDefaults: false, directives: API_CSP },
  strictTransportSecurity: false, // set per request, only over HTTPS
  crossOriginEmbedderPolicy: false,
  crossOriginResourcePolicy: { policy: 'same-origin' },
  referrerPolicy: { policy: 'no-referrer' },
  xFrameOptions: { action: 'deny' },
};

/** The headers helmet sets for these options, recorded by running its middleware once. */
function helmetHeaders(options: HelmetOptions): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: string | number) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  let finished = false;
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error;
    finished = true;
  });
  // helmet's middleware is synchronous for static options; anything else would need the request.
  if (!finished) throw new Error('helmet did not finish synchronously: its headers depend on the request');
  return Object.freeze(headers);
}

/** The headers a browser client may read (CORS), beyond the CORS-safelisted ones. */
export const EXPOSED_HEADERS = [
  'x-request-id',
  'x-correlation-id',
  'location',
  'retry-after',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'ratelimit-policy',
  'ratelimit',
  'deprecation',
  'sunset',
  'link',
  'api-version',
  'www-authenticate',
];

// ---------------------------------------------------------------------------------------------
// Server options (used by buildApp's Fastify() call)

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
}

/** The PEM files named by TLS_CERT_FILE / TLS_KEY_FILE, or null for plain HTTP. */
export function readTls(config: Pick<Config, 'tlsCertFile' | 'tlsKeyFile'>): TlsMaterial | null {
  if (config.tlsCertFile === undefined || config.tlsKeyFile === undefined) return null;
  return { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) };
}

type TimeoutConfig = Pick<
  Config,
  'httpHeadersTimeoutMs' | 'httpRequestTimeoutMs' | 'httpKeepAliveTimeoutMs' | 'tlsCertFile' | 'tlsKeyFile'
>;

/**
 * Fastify options for the Node server: headers must arrive within HTTP_HEADERS_TIMEOUT_MS, the
 * whole request (headers and body) within HTTP_REQUEST_TIMEOUT_MS, and an idle keep-alive
 * connection is closed after HTTP_KEEP_ALIVE_TIMEOUT_MS. Node checks the first two every
 * `connectionsCheckingInterval` (30 s by default, far too coarse for a 10 s limit): 1 s here.
 * With TLS the same server options travel in `https`, which Fastify passes to https.createServer.
 *
 * Typed as the plain-HTTP variant: Fastify's instance types differ only in `server`'s class, and
 * nothing in this code base depends on which one it is.
 */
export function serverOptions(config: TimeoutConfig, tls: TlsMaterial | null = readTls(config)): {
  requestTimeout: number;
  keepAliveTimeout: number;
  http: ServerOptions;
} {
  const requestTimeout = config.httpRequestTimeoutMs;
  const node: ServerOptions = {
    headersTimeout: Math.min(config.httpHeadersTimeoutMs, requestTimeout), // Node refuses headers > request
    requestTimeout,
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    connectionsCheckingInterval: 1000,
    // Node would answer a Host-less HTTP/1.1 request itself (a bare 400); the request hook below
    // refuses it instead, with the envelope and headers every other error has.
    requireHostHeader: false,
  };
  const base = { requestTimeout, keepAliveTimeout: config.httpKeepAliveTimeoutMs };
  if (tls === null) return { ...base, http: node };
  return { ...base, https: { ...node, key: tls.key, cert: tls.cert, minVersion: 'TLSv1.2' } } as unknown as {
    requestTimeout: number;
    keepAliveTimeout: number;
    http: ServerOptions;
  };
}

const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, code: 'HEADERS_TOO_LARGE', message: 'The request headers are larger than this server accepts' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'REQUEST_TIMEOUT', message: 'The request did not arrive in time' },
};
const NOT_HTTP = { status: 400, code: 'BAD_REQUEST', message: 'The request is not valid HTTP' };

/**
 * Node's answer to a request it could not parse (a malformed request line or header, conflicting
 * Content-Length and Transfer-Encoding, headers over the size limit, too slow to arrive), which
 * never reaches Fastify: the envelope with fresh ids and the security headers, like every other
 * error, and the connection closed (after a parse error nothing more can be read from it).
 */
export function clientErrorHandler(this: FastifyInstance | undefined, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const { status, code, message } = CLIENT_ERRORS[error.code ?? ''] ?? NOT_HTTP;
  const requestId = newRequestId();
  const correlationId = newCorrelationId();
  const body = JSON.stringify(envelope(code, message, [], requestId, correlationId));
  const headers: Record<string, string | number> = {
    ...SECURITY_HEADERS,
    ...('encrypted' in socket ? { 'strict-transport-security': HSTS_VALUE } : {}),
    'cache-control': 'no-store',
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'x-correlation-id': correlationId,
    connection: 'close',
  };
  // The line the requestId finds (Fastify binds this handler to the instance).
  this?.log.info({ requestId, correlationId, statusCode: status, code: error.code }, 'request refused by the HTTP parser');
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}`).join('\r\n');
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${head}\r\n\r\n${body}`);
}

// ---------------------------------------------------------------------------------------------
// /docs content security policy

/** 'sha256-…' sources for every inline <script> in an HTML page. */
export function inlineScriptHashes(html: string): string[] {
  const hashes: string[] = [];
  for (const match of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
    const [, attributes = '', body = ''] = match;
    if (/\bsrc\s*=/i.test(attributes) || body === '') continue;
    hashes.push(`'sha256-${createHash('sha256').update(body, 'utf8').digest('base64')}'`);
  }
  return hashes;
}

export function docsCsp(scriptHashes: string[]): string {
  return [
    "default-src 'self'",
    "base-uri 'self'",
    `script-src 'self' ${scriptHashes.join(' ')}`.trim(),
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function isDocs(request: FastifyRequest): boolean {
  return request.url === '/docs' || request.url.startsWith('/docs/') || request.url.startsWith('/docs?');
}

/** The reference page fetches /v1/openapi.json from this origin; nothing else needs relaxing. */
function docsHeaders(reply: FastifyReply, payload: unknown): void {
  const type = String(reply.getHeader('content-type') ?? '');
  const html = type.startsWith('text/html') && (typeof payload === 'string' || Buffer.isBuffer(payload));
  reply.header('content-security-policy', docsCsp(html ? inlineScriptHashes(String(payload)) : []));
}

// ---------------------------------------------------------------------------------------------
// Registration

declare module 'fastify' {
  interface FastifyRequest {
    deadlineTimer: NodeJS.Timeout | null;
  }
}

const SECURITY_HEADERS = helmetHeaders(HELMET_OPTIONS);

/** The security headers of every response; also used for errors raised before any hook runs. */
export function setSecurityHeaders(request: FastifyRequest, reply: FastifyReply): void {
  reply.headers(SECURITY_HEADERS);
  if (request.protocol === 'https') reply.header('strict-transport-security', HSTS_VALUE);
}

/**
 * Registers headers, CORS and the deadline. Call right after request context and error handling
 * and before rate limits and the auth guard: their refusals then carry the headers too, and the
 * deadline covers the time they take.
 */
export async function registerSecurity(app: FastifyInstance, config: Config): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    setSecurityHeaders(request, reply);
    if (request.raw.httpVersionMajor === 1 && request.raw.httpVersionMinor >= 1 && request.headers.host === undefined) {
      return done(new AppError('BAD_REQUEST', 400, 'An HTTP/1.1 request needs a Host header (RFC 9112)'));
    }
    done();
  });

  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins, // exact matches only
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'x-api-key', 'x-correlation-id', 'idempotency-key', 'accept'],
      exposedHeaders: EXPOSED_HEADERS,
      credentials: false, // bearer tokens and API keys, never cookies
      maxAge: 600,
      strictPreflight: true,
    });
  }

  app.addHook('onSend', (request, reply, payload, done) => {
    if (isDocs(request)) {
      docsHeaders(reply, payload);
    } else if (!reply.hasHeader('cache-control')) {
      reply.header('cache-control', 'no-store');
    }
    done(null, payload);
  });

  // The deadline: started before anything else a request waits for (rate-limit store, guard,
  // body, handler), cleared when the response is done or the client went away.
  app.decorateRequest('deadlineTimer', null);
  app.addHook('onRequest', (request, reply, done) => {
    const override = request.routeOptions.config?.requestTimeoutMs;
    const ms = override === undefined ? config.requestTimeoutMs : override;
    if (ms !== false) {
      request.deadlineTimer = setTimeout(() => {
        request.deadlineTimer = null;
        if (reply.sent || reply.raw.headersSent || request.raw.destroyed) return;
        request.log.error({ deadlineMs: ms, route: request.routeOptions.url }, 'request deadline exceeded');
        replyWithError(
          request,
          reply,
          new AppError(
            'GATEWAY_TIMEOUT',
            504,
            `The request did not complete within ${ms} ms. It may still complete on the server: check before retrying a change.`,
          ),
        );
      }, ms);
    }
    done();
  });
  const clear = (request: FastifyRequest) => {
    if (request.deadlineTimer !== null) {
      clearTimeout(request.deadlineTimer);
      request.deadlineTimer = null;
    }
  };
  app.addHook('onResponse', (request, _reply, done) => {
    clear(request);
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    clear(request);
    done();
  });
}
