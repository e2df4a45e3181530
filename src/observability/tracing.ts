// OpenTelemetry tracing: the NodeSDK with the HTTP, Fastify, pg and ioredis instrumentations,
// configured by the standard OTEL_* variables (endpoint, protocol, headers, sampler, service name).
// Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and then
// this module is the only one that imports OpenTelemetry, and only inside startTracing(): an
// instance without tracing never loads a line of it (bench/memory.ts).
//
// It must start before fastify, pg and ioredis are imported, because instrumentation works by
// patching those modules as they load: src/main.ts starts it before it imports the app, and
// tracing-bootstrap.ts does the same for `node --import`.
//
// No PHI in spans: query strings (a patient search) are cut from the HTTP spans' URLs, SQL is
// recorded with its $n placeholders and never its values, and Redis commands by name only (their
// keys hold hashed client addresses and accounts).
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyRequest } from 'fastify';
import { setSpanAnnotator } from './span-annotation.js';

export const TRACING_ENDPOINT_VARIABLES = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] as const;

export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return TRACING_ENDPOINT_VARIABLES.some((name) => (env[name] ?? '').trim() !== '') && env.OTEL_SDK_DISABLED !== 'true';
}

export interface TracingOptions {
  /** Instead of the OTLP exporter the OTEL_* variables describe (tests collect spans in memory). */
  spanProcessors?: SpanProcessor[];
}

/** The modules whose imports are intercepted for instrumentation; every other import is left alone. */
const INSTRUMENTED_MODULES = ['fastify', 'pg', 'pg-pool', 'ioredis'];

const SERVER_SPAN = Symbol('medspa.serverSpan');

/** Attributes that may carry a URL's query string (HTTP and Fastify spans, old and stable semantic conventions). */
const URL_ATTRIBUTES = ['http.url', 'http.target', 'url.full', 'url.path', 'url.query'];

let started: Promise<() => Promise<void>> | null = null;

/**
 * Starts tracing once per process (a `--import` bootstrap and main.ts may both ask; the first
 * one's options win); resolves to the function that flushes and stops it (call it on shutdown).
 */
export function startTracing(options: TracingOptions = {}): Promise<() => Promise<void>> {
  started ??= start(options);
  return started;
}

async function start(options: TracingOptions): Promise<() => Promise<void>> {
  const { register } = await import('node:module');
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include: INSTRUMENTED_MODULES } });

  const [{ NodeSDK }, { HttpInstrumentation }, { PgInstrumentation }, { IORedisInstrumentation }, { FastifyOtelInstrumentation }, api] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/instrumentation-http'),
      import('@opentelemetry/instrumentation-pg'),
      import('@opentelemetry/instrumentation-ioredis'),
      import('@fastify/otel'),
      import('@opentelemetry/api'),
    ]);

  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME ?? 'medspasync-pro',
    ...(options.spanProcessors ? { spanProcessors: options.spanProcessors } : {}),
    instrumentations: [
      new HttpInstrumentation({
        requestHook: (span, request) => {
          withoutQueryStrings(span);
          // Kept on the incoming message, so the request's ids can reach the trace's root span too.
          (request as { [SERVER_SPAN]?: unknown })[SERVER_SPAN] = span;
        },
        // Outgoing calls without a parent (a webhook delivery, the OTLP exporter itself) are not traces of a request.
        requireParentforOutgoingSpans: true,
      }),
      // Hook spans would add a dozen near-empty spans to every request: the request, its handler and its queries tell the story.
      new FastifyOtelInstrumentation({ registerOnInitialization: true, instrumentHooks: false, requestHook: (span) => withoutQueryStrings(span) }),
      new PgInstrumentation({ enhancedDatabaseReporting: false, requireParentSpan: true }),
      new IORedisInstrumentation({ dbStatementSerializer: (command) => command, requireParentSpan: true }),
    ],
  });
  sdk.start();

  setSpanAnnotator((request: FastifyRequest) => {
    const attributes = { 'app.correlation_id': request.correlationId, 'app.request_id': request.id };
    // The HTTP server span (the trace's root) and the active one (Fastify's request span).
    (request.raw as { [SERVER_SPAN]?: { setAttributes(a: object): void } })[SERVER_SPAN]?.setAttributes(attributes);
    api.trace.getActiveSpan()?.setAttributes(attributes);
  });

  return async () => {
    setSpanAnnotator(null);
    await sdk.shutdown();
  };
}

/** Replaces the URL attributes of an HTTP span with the URL up to its query string. */
function withoutQueryStrings(span: unknown): void {
  const recorded = (span as { attributes?: Record<string, unknown> }).attributes ?? {};
  const setter = span as { setAttribute(key: string, value: string): void };
  for (const key of URL_ATTRIBUTES) {
    const value = recorded[key];
    if (typeof value !== 'string') continue;
    if (key === 'url.query') setter.setAttribute(key, '[REDACTED]');
    else if (value.includes('?')) setter.setAttribute(key, value.slice(0, value.indexOf('?')));
  }
}
