// The one point where request handling meets tracing, without importing OpenTelemetry: when
// tracing is off (the default) the annotator is null and a request pays one comparison; when
// tracing.ts has started, it installs a function that puts the request's ids on its spans.
import type { FastifyRequest } from 'fastify';

export type SpanAnnotator = (request: FastifyRequest) => void;

let annotator: SpanAnnotator | null = null;

export function setSpanAnnotator(next: SpanAnnotator | null): void {
  annotator = next;
}

/** Called once the request's correlationId is known (http/request-context.ts). */
export function annotateRequestSpans(request: FastifyRequest): void {
  if (annotator !== null) annotator(request);
}
