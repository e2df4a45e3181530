// For `node --import ./dist/observability/tracing-bootstrap.js dist/main.js`: starts tracing (when
// OTEL_EXPORTER_OTLP_ENDPOINT is set) before anything else is loaded. main.ts does the same by
// itself, so this is only needed to trace another entry point (the CLI) or to be explicit.
import { startTracing, tracingRequested } from './tracing.js';

if (tracingRequested()) await startTracing();
