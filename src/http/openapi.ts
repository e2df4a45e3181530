// The API description is generated from the route schemas (so it can't drift from the code) and
// served per version: /v1/openapi.json holds only /v1 operations, written relative to the
// blueprint's servers (https://api.medspasync.com/v1 …). /docs renders it with Scalar, whose
// bundle is served from node_modules: no CDN, works offline.
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { ErrorEnvelope } from './errors.js';

const BLUEPRINT_SERVERS = [
  { url: 'https://api.medspasync.com/v1', description: 'Production server' },
  { url: 'https://staging-api.medspasync.com/v1', description: 'Staging server' },
  { url: 'https://dev-api.medspasync.com/v1', description: 'Development server' },
];

const STATUS_DESCRIPTIONS: Record<number, string> = {
  400: 'Bad Request - Invalid request data',
  401: 'Unauthorized - Authentication required',
  403: 'Forbidden - Insufficient permissions',
  404: 'Not Found - Resource not found',
  405: 'Method Not Allowed',
  409: 'Conflict - Resource conflict',
  410: 'Gone - API version retired',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity - Validation error',
  429: 'Too Many Requests - Rate limit exceeded',
  500: 'Internal Server Error - Unexpected error',
  502: 'Bad Gateway - Upstream service error',
  503: 'Service Unavailable - Service temporarily unavailable',
  504: 'Gateway Timeout - Upstream timeout',
};

/** Response schemas for a route's error statuses, all the shared envelope. */
export function errorResponses(...statuses: number[]): Record<number, { description: string; $ref: string }> {
  return Object.fromEntries(
    statuses.map((status) => [status, { description: STATUS_DESCRIPTIONS[status] ?? 'Error', $ref: 'ErrorEnvelope#' }]),
  );
}

const RETRY_AFTER = {
  'Retry-After': { type: 'integer', minimum: 1, description: 'Seconds to wait before trying again' },
};

/**
 * What every operation's document says whether or not its route listed it: a body can be refused
 * as too large (413) or not JSON in UTF-8 (415); 429 and 503 carry Retry-After. Only the document
 * changes: the route's response schemas, which serialise its answers, are left as they are.
 */
export function documentedResponses(schema: { body?: unknown; response?: Record<string, unknown> }): Record<string, unknown> | undefined {
  if (schema.response === undefined) return undefined;
  const responses: Record<string, unknown> = { ...schema.response };
  if (schema.body !== undefined) {
    for (const status of [400, 413, 415]) responses[status] ??= errorResponses(status)[status];
  }
  for (const status of ['429', '503']) {
    const response = responses[status] as Record<string, unknown> | undefined;
    if (response !== undefined && response.headers === undefined) responses[status] = { ...response, headers: RETRY_AFTER };
  }
  return responses;
}

/**
 * The caller's view of a query string: a parameter with a default may be left out (validation fills
 * the default in), so the document must not call it required. The route schema lists it as required
 * because the handler always receives it; only the document changes, validation keeps the original.
 */
export function callerQuerystring(querystring: unknown): unknown {
  if (querystring === null || typeof querystring !== 'object') return querystring;
  const object = querystring as { required?: unknown; properties?: Record<string, { default?: unknown }> };
  if (!Array.isArray(object.required) || object.properties === undefined) return querystring;
  const properties = object.properties;
  const required = (object.required as string[]).filter((name) => properties[name]?.default === undefined);
  if (required.length === object.required.length) return querystring;
  const { required: _all, ...rest } = object;
  return required.length > 0 ? { ...rest, required } : rest;
}

export function operationIdFor(method: string, url: string): string {
  const words = url
    .replace(/^\/v\d+\//, '/')
    .split(/[/_-]+/)
    .filter(Boolean)
    .map((part) => (part.startsWith(':') ? `by ${part.slice(1)}` : part))
    .flatMap((part) => part.split(' '));
  return [method.toLowerCase(), ...words.map((w) => w[0]!.toUpperCase() + w.slice(1))].join('');
}

type OpenApiDocument = {
  openapi: string;
  servers?: unknown[];
  paths?: Record<string, unknown>;
  [key: string]: unknown;
};

/** The slice of the generated document that belongs to one version, paths relative to it. */
export function documentForVersion(full: OpenApiDocument, version: string, localBaseUrl?: string): OpenApiDocument {
  const prefix = `/${version}`;
  const paths: Record<string, unknown> = {};
  for (const [path, item] of Object.entries(full.paths ?? {})) {
    if (path.startsWith(`${prefix}/`)) paths[path.slice(prefix.length)] = item;
  }
  const servers = [
    { url: localBaseUrl ? `${localBaseUrl}${prefix}` : prefix, description: 'This server' },
    ...BLUEPRINT_SERVERS.map((server) => ({ ...server, url: server.url.replace(/\/v1$/, prefix) })),
  ];
  return { ...full, info: { ...(full.info as object), version: version === 'v1' ? '1.0.0' : '2.0.0-beta' }, servers, paths };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Top-level additions to one version's document (`x-webhooks`, from the feature that owns them). */
    openApiExtensions: Record<'v1' | 'v2', Record<string, unknown>>;
  }
}

export async function registerOpenApi(app: FastifyInstance, config: Config): Promise<void> {
  app.addSchema(ErrorEnvelope);
  app.decorate('openApiExtensions', { v1: {}, v2: {} });
  await app.register(swagger, {
    // Keep /v1 in the generated paths: documentForVersion splits the document by that prefix.
    stripBasePath: false,
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'MedSpaSync Pro API',
        version: '1.0.0',
        description: 'HIPAA-compliant healthcare management API',
        contact: { name: 'MedSpaSync Support', email: 'support@medspasync.com' },
        license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
      },
      servers: BLUEPRINT_SERVERS,
      security: [{ BearerAuth: [] }, { ApiKeyAuth: [] }],
      components: {
        securitySchemes: {
          BearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          ApiKeyAuth: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        },
      },
      tags: [
        { name: 'Authentication', description: 'Login, tokens, MFA' },
        { name: 'Patients', description: 'Patient records (PHI)' },
        { name: 'Appointments', description: 'Scheduling without double booking' },
        { name: 'Services', description: 'The practice’s catalog of treatments' },
        { name: 'Reports', description: 'Appointment statistics and revenue' },
        { name: 'AI', description: 'Reconciliation of outside records' },
        { name: 'Webhooks', description: 'Signed event deliveries to your HTTPS endpoint (v2)' },
        { name: 'Events', description: 'Real-time event stream (Server-Sent Events)' },
        { name: 'Meta', description: 'Versions and API description' },
      ],
    },
    // Client generators name methods after operationId: derive a stable one from method and path
    // (POST /v1/auth/login → postAuthLogin) unless the route names its own.
    transform: ({ schema, url, route }) => {
      const transformed = { ...(schema as Record<string, unknown>) };
      if (transformed.operationId === undefined && typeof route.method === 'string') {
        transformed.operationId = operationIdFor(route.method, url);
      }
      if (transformed.description === undefined && typeof transformed.summary === 'string') {
        transformed.description = transformed.summary;
      }
      if (transformed.querystring !== undefined) transformed.querystring = callerQuerystring(transformed.querystring);
      const responses = documentedResponses(transformed);
      if (responses !== undefined) transformed.response = responses;
      return { schema: transformed as typeof schema, url };
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });

  for (const version of ['v1', 'v2'] as const) {
    app.get(
      `/${version}/openapi.json`,
      { schema: { hide: true }, config: { public: true } },
      async () => ({ ...documentForVersion(app.swagger() as unknown as OpenApiDocument, version, config.publicBaseUrl), ...app.openApiExtensions[version] }),
    );
  }

  // Scalar's plugin holds its 4 MB bundle as a string from the moment it is imported (about 36 MB
  // resident): it is loaded with the first visit to /docs, in an inner instance these routes answer
  // from, instead of at every start (bench/memory.ts).
  let reference: Promise<FastifyInstance> | null = null;
  const referenceApp = () => (reference ??= startReference().catch((error: unknown) => {
    reference = null;
    throw error;
  }));
  for (const url of ['/docs', '/docs/', '/docs/js/scalar.js']) {
    app.get(url, { schema: { hide: true }, config: { public: true } }, async (request, reply) => {
      const answer = await (await referenceApp()).inject({ method: 'GET', url: request.url });
      for (const header of FORWARDED_REFERENCE_HEADERS) {
        const value = answer.headers[header];
        if (value !== undefined) reply.header(header, value);
      }
      return reply.code(answer.statusCode).send(answer.rawPayload);
    });
  }
  app.addHook('onClose', async () => {
    if (reference) await (await reference).close();
  });
}

const FORWARDED_REFERENCE_HEADERS = ['content-type', 'location', 'cache-control', 'etag', 'last-modified'] as const;

async function startReference(): Promise<FastifyInstance> {
  const { default: scalar } = await import('@scalar/fastify-api-reference');
  const inner = Fastify({ logger: false });
  await inner.register(scalar, {
    routePrefix: '/docs',
    configuration: {
      url: '/v1/openapi.json',
      title: 'MedSpaSync Pro API reference',
      withDefaultFonts: false,
      hideClientButton: true,
      telemetry: false,
      // Offline and PHI-minded: none of Scalar's cloud features (AI agent, MCP, sharing).
      agent: { disabled: true },
      mcp: { disabled: true },
      showDeveloperTools: 'never',
    } as Record<string, unknown>,
  });
  await inner.ready();
  return inner;
}
