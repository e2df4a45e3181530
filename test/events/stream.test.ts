// GET /v2/events/stream through real sockets: a listening server and a real SSE client (the
// `eventsource` package), on every database the machine offers.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { signAccessToken } from '../../src/auth/jwt.js';
import { permissionsForRole } from '../../src/auth/rbac.js';
import { testConfig, type Config } from '../../src/config.js';
import type { Database } from '../../src/db/database.js';
import { withPractice, withSystem } from '../../src/db/scope.js';
import { OutboxRelay } from '../../src/events/relay.js';
import { streamTypes } from '../../src/events/stream.js';
import { createService } from '../appointments/scheduling-helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { waitFor } from '../helpers/process.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice, type TestPractice } from '../helpers/identity.js';
import { newPatient } from '../patients/helpers.js';
import { SseClient } from './sse-client.js';

const STREAM = '/v2/events/stream';

interface Served extends TestApp {
  baseUrl: string;
}

async function serve(db: Database, overrides: Partial<Config['events']['stream']> = {}, config: Partial<Config> = {}): Promise<Served> {
  const defaults = testConfig().events;
  const stream = { ...defaults.stream, heartbeatMs: 150, retryMs: 200, ...overrides };
  const served = await startTestApp(db, { ...config, events: { ...defaults, stream } });
  const address = await served.app.listen({ port: 0, host: '127.0.0.1' });
  return Object.assign(served, { baseUrl: address });
}

async function createPatient(app: FastifyInstance, headers: Record<string, string>): Promise<string> {
  const response = await app.inject({ method: 'POST', url: '/v1/patients', headers, payload: newPatient() });
  assert.equal(response.statusCode, 201, response.body);
  return (response.json() as { id: string }).id;
}

async function apiKey(app: FastifyInstance, admin: Record<string, string>, permissions: string[]): Promise<{ id: string; key: string }> {
  const response = await app.inject({ method: 'POST', url: '/v1/api-keys', headers: admin, payload: { name: 'stream test', permissions } });
  assert.equal(response.statusCode, 201, response.body);
  return response.json() as { id: string; key: string };
}

/** The positions and types of a practice's events in the outbox, in position order. */
async function storedEvents(db: Database, practiceId: string, after = 0): Promise<Array<{ position: number; type: string }>> {
  const { rows } = await withSystem(db, (tx) =>
    tx.query<{ position: number; type: string }>(
      'SELECT position, type FROM outbox_events WHERE practice_id = $1 AND position > $2 ORDER BY position',
      [practiceId, after],
    ),
  );
  return rows.map((row) => ({ position: Number(row.position), type: row.type }));
}

const ids = (client: SseClient) => client.events.map((message) => Number(message.id));

test('streamTypes: the filter and the permissions intersected, naming what was refused', () => {
  const staff = permissionsForRole('STAFF');
  assert.deepEqual(streamTypes(['reconciliation.*'], staff), { allowed: new Set(), denied: ['read:reconciliations'] });
  const { allowed, denied } = streamTypes(['*'], ['read:services']);
  assert.deepEqual([...allowed], ['service.created', 'service.updated']);
  assert.ok(denied.includes('read:patients') && denied.includes('read:appointments'));
  assert.deepEqual([...streamTypes(['patient.updated', 'appointment.*'], permissionsForRole('ADMIN')).allowed].sort(), [
    'appointment.booked', 'appointment.cancelled', 'appointment.rescheduled', 'appointment.status_changed', 'appointment.updated', 'patient.updated',
  ]);
});

for (const target of databaseTargets()) {
  describe(`the event stream on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const served = await serve(db);
    const { app, baseUrl } = served;
    const practice = await createTestPractice(app, 'Stream Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const admin = practice.users.ADMIN.headers;
    const clients: SseClient[] = [];
    const open = (path: string, headers: Record<string, string>, options: { lastEventId?: string } = {}) => {
      const client = new SseClient(`${baseUrl}${path}`, headers, options);
      clients.push(client);
      return client;
    };
    after(() => clients.forEach((client) => client.close()));

    test('the stream starts with its headers: event-stream, no-store, no proxy buffering, ids and security headers', async () => {
      const controller = new AbortController();
      const response = await fetch(`${baseUrl}${STREAM}`, { headers: { ...admin, 'x-correlation-id': 'corr-stream-1' }, signal: controller.signal });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(response.headers.get('cache-control'), 'no-store');
      assert.equal(response.headers.get('x-accel-buffering'), 'no');
      assert.match(response.headers.get('x-request-id') ?? '', /^req_/);
      assert.equal(response.headers.get('x-correlation-id'), 'corr-stream-1');
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      const reader = response.body!.getReader();
      let text = '';
      while (!text.includes('event: ready')) text += new TextDecoder().decode((await reader.read()).value);
      assert.match(text, /^retry: 200\n\n/);
      assert.match(text, /id: \d+\nevent: ready\ndata: \{"types":\[/);
      controller.abort();
    });

    test('/v2/openapi.json documents the stream as text/event-stream with its message format', async () => {
      const doc = (await app.inject({ url: '/v2/openapi.json' })).json() as { paths: Record<string, { get: { description: string; responses: Record<string, { content?: Record<string, unknown> }> } }> };
      const operation = doc.paths['/events/stream']!.get;
      assert.ok(operation.responses['200']!.content!['text/event-stream']);
      assert.match(operation.description, /Last-Event-ID/);
      assert.ok(['400', '401', '403', '429', '503'].every((status) => operation.responses[status]));
    });

    test('opening a stream is audited with who and which types', async () => {
      const client = open(`${STREAM}?types=service.*`, practice.users.STAFF.headers);
      await client.untilEvent('ready');
      await app.auditWriter.flush();
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ actor_id: string; details: { types: string[]; requested: string[] } }>(
          "SELECT actor_id, details FROM audit_events WHERE action = 'event_stream.open' AND practice_id = $1 ORDER BY id DESC LIMIT 1",
          [practice.id],
        ),
      );
      assert.equal(rows[0]?.actor_id, practice.users.STAFF.id);
      assert.deepEqual(rows[0]?.details.types, ['service.created', 'service.updated']);
      assert.deepEqual(rows[0]?.details.requested, ['service.*']);
      client.close();
    });

    test('types filter: a service.* stream gets service events and never a patient event', async () => {
      const client = open(`${STREAM}?types=service.*`, admin);
      await client.untilEvent('ready');
      await createPatient(app, admin);
      const service = await createService(app, admin);
      await client.until('the service event', (c) => c.events.some((m) => (m.data.data as { resourceId: string }).resourceId === service.id));
      assert.deepEqual(client.events.map((m) => m.event), ['service.created']);
      const envelope = client.events[0]!.data;
      assert.deepEqual(Object.keys(envelope).sort(), ['data', 'id', 'occurredAt', 'practiceId', 'type', 'version']);
      assert.equal(envelope.practiceId, practice.id);
      client.close();
    });

    test('a typo in types is a 400 naming the entry, not a stream that matches nothing', async () => {
      const response = await fetch(`${baseUrl}${STREAM}?types=appointment.*,apointment.booked`, { headers: admin });
      assert.equal(response.status, 400);
      const body = (await response.json()) as { error: { code: string; details: Array<{ field: string; message: string }> } };
      assert.equal(body.error.code, 'VALIDATION_ERROR');
      assert.equal(body.error.details.length, 1);
      assert.match(body.error.details[0]!.message, /"apointment\.booked" is not an event type/);
      const badId = await fetch(`${baseUrl}${STREAM}`, { headers: { ...admin, 'last-event-id': 'abc' } });
      assert.equal(badId.status, 400);
      assert.equal(((await badId.json()) as { error: { details: Array<{ field: string }> } }).error.details[0]!.field, 'Last-Event-ID');
    });

    test('a stream without credentials is a 401, and a token in the query string is not a credential', async () => {
      const response = await fetch(`${baseUrl}${STREAM}?access_token=${practice.users.ADMIN.token}`);
      assert.equal(response.status, 401);
    });

    test('a STAFF user asking only for reconciliation events is refused with 403 naming read:reconciliations', async () => {
      const response = await fetch(`${baseUrl}${STREAM}?types=reconciliation.*`, { headers: practice.users.STAFF.headers });
      assert.equal(response.status, 403);
      const body = (await response.json()) as { error: { message: string } };
      assert.match(body.error.message, /read:reconciliations/);
    });

    test('an API key without read:patients never receives patient events, even when it asks for them all', async () => {
      const { key } = await apiKey(app, admin, ['read:services']);
      const refused = await fetch(`${baseUrl}${STREAM}?types=patient.*`, { headers: { 'x-api-key': key } });
      assert.equal(refused.status, 403);
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, /read:patients/);
      const client = open(STREAM, { 'x-api-key': key });
      await client.untilEvent('ready');
      assert.deepEqual(client.messages[0]!.data.types, ['service.created', 'service.updated']);
      await createPatient(app, admin);
      const service = await createService(app, admin);
      await client.until('the service event', (c) => c.events.some((m) => (m.data.data as { resourceId: string }).resourceId === service.id));
      assert.deepEqual(client.events.map((m) => m.event), ['service.created']);
      client.close();
    });

    test("practice B's stream never sees practice A's events", async () => {
      const client = open(STREAM, other.users.ADMIN.headers);
      await client.untilEvent('ready');
      await createPatient(app, admin);
      await createService(app, admin);
      const sentinel = await createService(app, other.users.ADMIN.headers);
      await client.until('B’s own event', (c) => c.events.some((m) => (m.data.data as { resourceId: string }).resourceId === sentinel.id));
      assert.deepEqual(new Set(client.events.map((m) => m.data.practiceId)), new Set([other.id]));
      // And asking to resume from the start replays only B's events.
      const replay = open(STREAM, other.users.ADMIN.headers, { lastEventId: '0' });
      await replay.until('the replay', (c) => c.events.length >= 1);
      assert.deepEqual(ids(replay), (await storedEvents(db, other.id)).map((e) => e.position));
      client.close();
      replay.close();
    });

    test('Last-Event-ID resume replays exactly the missed events in order, then live ones follow', async () => {
      const first = open(STREAM, admin);
      await first.untilEvent('ready');
      await createService(app, admin);
      await first.until('one event', (c) => c.events.length === 1);
      const lastSeen = first.events[0]!.id;
      first.close();
      await createPatient(app, admin);
      await createService(app, admin);
      await createPatient(app, admin);
      await app.outboxRelay.drain();
      const missed = await storedEvents(db, practice.id, Number(lastSeen));
      assert.equal(missed.length, 3);
      const resumed = open(STREAM, admin, { lastEventId: lastSeen });
      await resumed.until('the replay', (c) => c.events.length === 3);
      const live = await createService(app, admin);
      await resumed.until('the live event', (c) => c.events.length === 4);
      assert.deepEqual(ids(resumed).slice(0, 3), missed.map((e) => e.position));
      assert.deepEqual(resumed.events.slice(0, 3).map((m) => m.event), missed.map((e) => e.type));
      assert.equal((resumed.events[3]!.data.data as { resourceId: string }).resourceId, live.id);
      assert.equal(resumed.messages.filter((m) => m.event === 'ready').length, 1);
      resumed.close();

      // ?lastEventId= for clients that cannot send the header: the same replay.
      const byQuery = open(`${STREAM}?lastEventId=${lastSeen}`, admin);
      await byQuery.until('the replay', (c) => c.events.length === 4);
      assert.deepEqual(ids(byQuery), ids(resumed));
      byQuery.close();
    });

    test('replay hands over to live with no gap and no duplicate while changes keep coming', async () => {
      await app.outboxRelay.drain();
      const start = (await storedEvents(db, practice.id)).at(-1)?.position ?? 0;
      for (let i = 0; i < 20; i++) await createService(app, admin);
      let writing = true;
      const writer = (async () => {
        let n = 0;
        while (writing && n < 40) {
          await createService(app, admin);
          n++;
        }
      })();
      const client = open(STREAM, admin, { lastEventId: String(start) });
      await client.until('some live events', (c) => c.events.length >= 30);
      writing = false;
      await writer;
      await app.outboxRelay.drain();
      const expected = (await storedEvents(db, practice.id, start)).map((e) => e.position);
      await client.until('every event', (c) => c.events.length >= expected.length);
      assert.deepEqual(ids(client), expected);
      client.close();
    });

    test('a Last-Event-ID older than the retention window gets resync_required, then the stream goes on live', async () => {
      await createService(app, admin);
      await app.outboxRelay.drain();
      const before = (await storedEvents(db, practice.id)).at(-1)!.position;
      // A relay whose clock is 31 days ahead purges everything but the newest event.
      const future = new OutboxRelay({ db, redis: null, log: app.log, retentionDays: 30, now: () => Date.now() + 31 * 86_400_000 });
      assert.ok((await future.purge()) > 0);
      const client = open(STREAM, admin, { lastEventId: '1' });
      await client.untilEvent('resync_required');
      const resync = client.messages.find((m) => m.event === 'resync_required')!;
      assert.equal(resync.data.code, 'RESUME_WINDOW_EXCEEDED');
      assert.ok(Number(resync.id) >= before, 'the error carries the id to continue from');
      assert.equal(client.events.length, 0, 'nothing is replayed');
      const live = await createService(app, admin);
      await client.until('the live event', (c) => c.events.some((m) => (m.data.data as { resourceId: string }).resourceId === live.id));
      client.close();

      const future2 = open(STREAM, admin, { lastEventId: '999999999' });
      await future2.untilEvent('resync_required');
      assert.equal(future2.messages.find((m) => m.event === 'resync_required')!.data.code, 'RESUME_POSITION_UNKNOWN');
      future2.close();
    });

    test('heartbeats arrive as comment lines', async () => {
      const response = await fetch(`${baseUrl}${STREAM}`, { headers: admin });
      const reader = response.body!.getReader();
      let text = '';
      while (!text.includes(': heartbeat\n\n')) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
    });

    test('the stream ends at the access token’s expiry with session_expired', async () => {
      const user = practice.users.MANAGER;
      const { token } = signAccessToken(
        { sub: user.id, email: user.email, role: user.role, practiceId: practice.id, permissions: permissionsForRole(user.role) },
        { secret: app.auth.signingSecret, kid: app.auth.signingKid, issuer: app.config.jwtIssuer, audience: app.config.jwtAudience, ttlSeconds: 2 },
      );
      const client = open(STREAM, { authorization: `Bearer ${token}` });
      await client.untilEvent('ready');
      await client.untilEvent('session_expired', 5000);
      const last = client.messages.at(-1)!;
      assert.equal(last.event, 'session_expired');
      assert.equal(last.data.code, 'TOKEN_EXPIRED');
      // EventSource reconnects with the expired token: refused with 401, and it stops.
      await client.until('the refused reconnect', (c) => c.source.readyState === c.source.CLOSED, 5000);
      client.close();
    });

    test('logout ends the stream of that token with session_revoked', async () => {
      const user = await createTestPractice(app, 'Logout Spa');
      const client = open(STREAM, user.users.STAFF.headers);
      await client.untilEvent('ready');
      const logout = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: user.users.STAFF.headers });
      assert.equal(logout.statusCode, 204, logout.body);
      await client.untilEvent('session_revoked');
      assert.equal(client.messages.at(-1)!.data.code, 'CREDENTIALS_REVOKED');
      client.close();
    });

    test('revoking an API key ends its stream', async () => {
      const { id, key } = await apiKey(app, admin, ['read:appointments']);
      const client = open(STREAM, { 'x-api-key': key });
      await client.untilEvent('ready');
      const revoke = await app.inject({ method: 'DELETE', url: `/v1/api-keys/${id}`, headers: admin });
      assert.ok(revoke.statusCode < 300, revoke.body);
      await client.untilEvent('session_revoked');
      client.close();
    });

    describe('limits', async () => {
      const limited = await serve(db, { maxConnectionsPerPractice: 2, maxBufferedBytes: 16 * 1024 });
      const spa: TestPractice = await createTestPractice(limited.app, 'Limited Spa');

      test('a practice over its stream limit gets a 429 envelope with Retry-After; a closed stream frees its place', async () => {
        const a = new SseClient(`${limited.baseUrl}${STREAM}`, spa.users.ADMIN.headers);
        const b = new SseClient(`${limited.baseUrl}${STREAM}`, spa.users.STAFF.headers);
        clients.push(a, b);
        await a.untilEvent('ready');
        await b.untilEvent('ready');
        const third = await fetch(`${limited.baseUrl}${STREAM}`, { headers: spa.users.MANAGER.headers });
        assert.equal(third.status, 429);
        assert.ok(Number(third.headers.get('retry-after')) > 0);
        const body = (await third.json()) as { error: { code: string; requestId: string } };
        assert.equal(body.error.code, 'RATE_LIMITED');
        assert.equal(body.error.requestId, third.headers.get('x-request-id'));
        // Another practice is not affected.
        const elsewhere = new SseClient(`${limited.baseUrl}${STREAM}`, practice.users.ADMIN.headers);
        clients.push(elsewhere);
        await elsewhere.untilEvent('ready');
        elsewhere.close();
        a.close();
        await waitFor('the closed stream’s place', () => limited.app.eventStream.connectionCount === 1);
        const again = new SseClient(`${limited.baseUrl}${STREAM}`, spa.users.MANAGER.headers);
        clients.push(again);
        await again.until('a place', (c) => c.messages.some((m) => m.event === 'ready'));
        again.close();
        b.close();
      });

      test('a slow client that never reads is disconnected instead of buffered without limit', async () => {
        // Wait for the previous test's streams to be gone.
        await new Promise((resolve) => setTimeout(resolve, 300));
        const url = new URL(limited.baseUrl);
        const socket = connect(Number(url.port), url.hostname);
        let received = 0;
        let closed = false;
        socket.on('data', (chunk) => {
          received += chunk.length;
          socket.pause(); // read the headers, then never again
        });
        socket.on('close', () => (closed = true));
        socket.on('error', () => {});
        socket.write(`GET ${STREAM} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${spa.users.ADMIN.headers.authorization}\r\n\r\n`);
        while (received === 0) await new Promise((resolve) => setTimeout(resolve, 20));
        // 20,000 events of this practice at once (about 7 MB of stream): far more than the socket buffers hold.
        await withPractice(limited.app.db, spa.id, (tx) =>
          tx.query(
            `INSERT INTO outbox_events (practice_id, type, resource_type, resource_id, payload)
             SELECT $1, 'service.updated', 'service', gen_random_uuid(), jsonb_build_object('resourceType', 'service', 'n', g)
               FROM generate_series(1, 20000) AS g`,
            [spa.id],
          ),
        );
        await waitFor('the server to cut the slow client off', () =>
          limited.logs.find((entry) => entry.msg === 'event stream closed' && entry.reason === 'slow_client'),
        );
        assert.equal(limited.app.eventStream.connectionCount, 0);
        // What the client can still read is what the kernel buffers held, not the whole stream.
        socket.removeAllListeners('data');
        socket.on('data', (chunk) => (received += chunk.length));
        socket.resume();
        await waitFor('the end of the connection', () => closed);
        assert.ok(received < 7_000_000 / 2, `read ${received} bytes after the cut`);
        socket.destroy();
      });
    });

    test('app.close() ends open streams at once with a final shutdown event', async () => {
      const closing = await serve(db);
      const client = new SseClient(`${closing.baseUrl}${STREAM}`, practice.users.ADMIN.headers);
      clients.push(client);
      await client.untilEvent('ready');
      // Without the hub's preClose hook, close() would wait for the open stream forever.
      await closing.app.close();
      await client.untilEvent('shutdown', 2000);
      assert.equal(client.messages.find((m) => m.event === 'shutdown')!.data.code, 'SERVER_SHUTTING_DOWN');
      client.close();
    });
  });
}
