// GET /v2/events/stream: the practice's events as Server-Sent Events (docs/events.md, "Real-time
// stream"). Everything that can be refused is refused before the stream starts, with the usual
// envelope: a bad `types` entry or Last-Event-ID (400), no read permission for any requested type
// (403), too many streams (429 per practice, 503 per instance). Then the reply is hijacked and the
// hub (events/stream.ts) owns the socket.
//
// reply.hijack() skips Fastify's onSend hooks, so what they would add is added here: the headers
// set so far by the onRequest hooks (security headers, X-Request-Id, X-Correlation-Id, version and
// CORS headers) are copied onto the response, and Cache-Control: no-store is set. onResponse still
// runs when the stream ends normally (the request line); a line of its own records every close.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { requestOrigin } from '../audit/audit.js';
import { auditActor, principalOf } from '../auth/guard.js';
import { forbidden, unauthorized, validationError } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { EVENT_TYPE_NAMES, isEventTypePattern } from './catalog.js';
import { EVENT_READ_PERMISSIONS, sseMessage, StreamConnection, streamTypes, type EventStreamHub } from './stream.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** This instance's real-time stream hub (events/stream.ts). */
    eventStream: EventStreamHub;
  }
}

const POSITION = '^(0|[1-9][0-9]{0,15})$';

const StreamQuery = Type.Object(
  {
    types: Type.Optional(
      Type.String({
        description: 'Comma-separated event types: exact (`appointment.booked`), a family (`appointment.*`) or `*`. Default: every type you may read.',
        examples: ['appointment.*,patient.*'],
      }),
    ),
    lastEventId: Type.Optional(
      Type.String({
        pattern: POSITION,
        description: 'For clients that cannot send the Last-Event-ID header: resume after this position (the header wins when both are sent).',
      }),
    ),
  },
  { additionalProperties: false },
);

const STREAM_DESCRIPTION = `Server-Sent Events (\`text/event-stream\`) of your practice's events, live, with resume.

Authenticate like every route (\`Authorization: Bearer <access token>\` or \`X-API-Key\`). Browsers' built-in
EventSource cannot send headers: use a fetch-based client (for example the \`eventsource\` package with a custom
\`fetch\`, or \`@microsoft/fetch-event-source\`). Never put a token in the URL.

Each event is sent only if you hold its resource's read permission (\`read:appointments\` for \`appointment.*\`,
\`read:patients\`, \`read:services\`, \`read:reconciliations\`); the stream needs at least one of them for the requested types.

Messages:
- first \`retry: <ms>\`, then \`event: ready\` (\`data: {"types": [...], "resumedAfter": <position or null>}\`), with
  \`id: <position>\` when not resuming, so that a reconnect from it misses nothing;
- one message per event: \`id: <position>\`, \`event: <type>\`, \`data: <the event JSON: id, type, version, practiceId,
  occurredAt, data>\` (no PHI values; the same envelope as a webhook body without \`resource\`);
- \`: heartbeat\` comment lines every 15 s;
- \`event: resync_required\` with \`{"code": "RESUME_WINDOW_EXCEEDED" | "RESUME_POSITION_UNKNOWN", "message"}\` and an
  \`id:\` when Last-Event-ID can't be continued from: fetch the resources again, the stream then continues live;
- a final \`event: session_expired\` (the access token's expiry), \`session_revoked\` (logout, revoked key) or
  \`shutdown\` (the server is stopping), \`{"code", "message"}\`, after which the stream closes.

Resume with the \`Last-Event-ID\` header (EventSource sends it on reconnect) or \`?lastEventId=\`: the events after it are
replayed in order, then live events follow without a gap or a duplicate, back to the retention window.
A client that stops reading is disconnected; streams per practice and per instance are limited (429, 503).`;

function patternsOf(types: string | undefined): string[] {
  if (types === undefined) return ['*'];
  const patterns = types.split(',').map((entry) => entry.trim());
  const bad = patterns.filter((pattern) => !isEventTypePattern(pattern));
  if (bad.length > 0) {
    throw validationError(
      bad.map((pattern) => ({
        field: 'types',
        message: `"${pattern.slice(0, 64)}" is not an event type, a family such as appointment.* or *; types are ${EVENT_TYPE_NAMES.join(', ')}`,
      })),
    );
  }
  return [...new Set(patterns)];
}

/** Last-Event-ID (header first, then ?lastEventId), or null for a fresh stream. */
function resumePosition(request: FastifyRequest, lastEventId: string | undefined): number | null {
  const header = request.headers['last-event-id'];
  const raw = typeof header === 'string' ? header.trim() : lastEventId;
  if (raw === undefined || raw === '') return null;
  if (!new RegExp(POSITION).test(raw)) {
    throw validationError([{ field: 'Last-Event-ID', message: 'must be the id of an event of this stream (a whole number)' }]);
  }
  return Number(raw);
}

export async function eventStreamRoutes(base: FastifyInstance): Promise<void> {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const { retryMs } = app.config.events.stream;

  app.get(
    '/events/stream',
    {
      schema: {
        tags: ['Events'],
        summary: 'Real-time event stream (Server-Sent Events)',
        description: STREAM_DESCRIPTION,
        querystring: StreamQuery,
        headers: Type.Object({
          'last-event-id': Type.Optional(Type.String({ description: 'Resume after this position (the `id:` of the last message received).' })),
        }),
        response: {
          200: {
            description: 'The stream: `text/event-stream`, open until the client leaves, the token expires or the server stops.',
            content: {
              'text/event-stream': {
                schema: { type: 'string', description: 'SSE messages as described above' },
                example: 'retry: 3000\n\nid: 41\nevent: ready\ndata: {"types":["appointment.booked"],"resumedAfter":null}\n\nid: 42\nevent: appointment.booked\ndata: {"id":"0b8f…","type":"appointment.booked","version":1,"practiceId":"5d1c…","occurredAt":"2027-03-14T14:02:11.512Z","data":{"resourceType":"appointment","resourceId":"9a41…"}}\n\n: heartbeat\n\n',
              },
            },
          },
          ...errorResponses(400, 401, 403, 429, 503),
        },
      },
      // Needs one of the event read permissions; the handler narrows to the requested types.
      config: { permissionOneOf: EVENT_READ_PERMISSIONS, requestTimeoutMs: false },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      // The guard allows a clock skew past `exp`; a stream would end at once and its client would
      // reconnect in a loop. Refused instead, so the client refreshes its token.
      if (principal.expiresAt !== null && principal.expiresAt * 1000 <= Date.now()) throw unauthorized('Access token expired');
      const hub = request.server.eventStream;
      const patterns = patternsOf(request.query.types);
      const { allowed, denied } = streamTypes(patterns, principal.permissions);
      if (allowed.size === 0) throw forbidden(`Missing permission ${denied.join(', ')} for the requested event types`);
      const after = resumePosition(request, request.query.lastEventId);
      const reservation = hub.reserve(principal.practiceId);
      try {
        // Like a read: who opened which stream. Its events carry no PHI, so they are not audited one by one.
        await request.server.auditWriter.record({
          ...auditActor(principal),
          ...requestOrigin(request),
          action: 'event_stream.open',
          resourceType: 'event_stream',
          outcome: 'success',
          details: { types: [...allowed], requested: patterns, resumeAfter: after },
        });
      } catch (error) {
        reservation.release();
        throw error;
      }

      reply.hijack();
      const res = reply.raw;
      // The connection closes with the stream: nothing to keep alive for, and shutdown never waits on it.
      res.shouldKeepAlive = false;
      res.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no', // nginx and friends: don't buffer the stream
      });
      const connection = new StreamConnection(res, principal, allowed, app.config.events.stream.maxBufferedBytes);
      const openedAt = Date.now();
      res.once('close', () => {
        request.log.info(
          { requestId: request.id, correlationId: request.correlationId, reason: connection.closeReason, messages: connection.sent, durationMs: Date.now() - openedAt },
          'event stream closed',
        );
      });
      const startedAt = hub.attach(connection, reservation, after === null);
      connection.write(
        `retry: ${retryMs}\n\n` + sseMessage('ready', { types: [...allowed], resumedAfter: after }, after === null ? startedAt : undefined),
      );
      if (after !== null) {
        hub.resume(connection, after, startedAt).catch((error: unknown) => {
          request.log.error({ err: error }, 'event stream: replay failed');
          connection.destroy('replay_failed');
        });
      }
    },
  );
}
