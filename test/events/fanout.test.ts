// Fan-out across instances (issue 12, item 5): two real server processes on one PostgreSQL and one
// Redis; an SSE client connected to instance B receives a booking made through instance A.
// Needs DATABASE_URL (and uses REDIS_URL when set); CI sets both.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import pg from 'pg';
import { spawnServer, waitForHealthy, type ServerHandle } from '../helpers/process.js';
import { SseClient } from './sse-client.js';

const baseUrl = process.env.DATABASE_URL;
if (process.env.CI && !baseUrl) throw new Error('CI must set DATABASE_URL so the fan-out test runs');

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: baseUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function call(server: ServerHandle, method: string, path: string, token: string | null, body?: unknown) {
  const response = await fetch(`${server.baseUrl}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  assert.ok(response.status < 300, `${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

test('a booking made through instance A reaches a stream on instance B', { skip: baseUrl ? false : 'DATABASE_URL is not set', timeout: 90_000 }, async () => {
  const dbName = `medspa_fanout_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE DATABASE ${dbName}`);
  after(() => admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
  const url = new URL(baseUrl!);
  url.pathname = `/${dbName}`;
  const env = {
    DATABASE_URL: url.toString(),
    REDIS_URL: process.env.REDIS_URL,
    JWT_SECRET: randomBytes(32).toString('hex'),
    ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    MEDSPA_ADMIN_EMAIL: 'owner@fanout.example',
    MEDSPA_ADMIN_PASSWORD: 'Fan-Out-Password-1',
    // Node's fetch may leave a fresh connection with no request behind when a stream is aborted;
    // shutdown closes it after the grace period, kept short here.
    SHUTDOWN_GRACE_MS: '500',
  };
  // Started together: migrations and the first start are safe under concurrency (two-instances.test.ts).
  const [a, b] = await Promise.all([spawnServer({ env }), spawnServer({ env })]);
  await Promise.all([waitForHealthy(a), waitForHealthy(b)]);

  const { accessToken } = (await call(a, 'POST', '/v1/auth/login', null, { email: env.MEDSPA_ADMIN_EMAIL, password: env.MEDSPA_ADMIN_PASSWORD })) as { accessToken: string };
  const practitioner = await call(a, 'POST', '/v1/users', accessToken, {
    email: 'injector@fanout.example', password: 'long enough passphrase 42', role: 'PRACTITIONER', firstName: 'Ina', lastName: 'Jector',
  });
  const patient = await call(a, 'POST', '/v1/patients', accessToken, { firstName: 'Fan', lastName: 'Out', dateOfBirth: '1990-01-01', email: 'fan.out@example.test' });
  const service = await call(a, 'POST', '/v1/services', accessToken, { name: 'Fan-out facial', category: 'Facials', durationMinutes: 30, priceCents: 9000 });

  const client = new SseClient(`${b.baseUrl}/v2/events/stream?types=appointment.*`, { authorization: `Bearer ${accessToken}` });
  after(() => client.close());
  await client.untilEvent('ready');
  const start = new Date(Date.now() + 86_400_000);
  start.setUTCSeconds(0, 0);
  const booking = await call(a, 'POST', '/v1/appointments', accessToken, {
    patientId: patient.id, practitionerId: practitioner.id, serviceId: service.id, startTime: start.toISOString(),
  });
  await client.until('the booking on B', (c) => c.events.some((m) => m.event === 'appointment.booked'));
  const [event] = client.events;
  assert.equal(event!.event, 'appointment.booked');
  assert.equal((event!.data.data as { resourceId: string }).resourceId, booking.id);
  client.close();

  await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
});
