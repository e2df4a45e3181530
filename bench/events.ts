// npm run bench:events — the event backbone end to end, on real server processes sharing one
// PostgreSQL and one Redis (docs/events.md). Three phases, each printing its figures:
//
// 1. Stream: BENCH_SSE_CONNECTIONS (default 1,000) Server-Sent Events connections to one instance,
//    spread over BENCH_SSE_PRACTICES practices (default 10), while BENCH_RATE changes a second
//    (default 200: PATCH of a patient) arrive for BENCH_SECONDS (default 20). Latency is each
//    message's arrival here minus its event's occurredAt (stamped in the change's transaction, on
//    this machine's clock), for every connection that receives it; messages missing are counted.
//    The server's resident memory before and after opening the connections gives the cost of one.
// 2. Webhooks: a subscription to a local receiver, then an import of BENCH_WEBHOOK_EVENTS patients
//    (default 5,000 events in one transaction): deliveries a second until the last arrives.
// 3. SIGKILL: a second instance joins; patients are created through both at BENCH_KILL_RATE a
//    second (default 100) for BENCH_KILL_SECONDS (default 10), and the first instance is SIGKILLed
//    halfway, while the receiver answers slowly (deliveries in flight die with it). Every
//    acknowledged creation (201) must reach the receiver, whichever instance had claimed its
//    delivery (leases of 5 s here); the count of missing ones is printed (and makes the run fail).
//
// Environment: DATABASE_URL (a server where the bench may CREATE DATABASE; default the local test
// server), REDIS_URL (default redis://127.0.0.1:6379/14). Targets (issue 12): stream p99 under
// 100 ms at 200 changes/s with 1,000 connections; at least 500 deliveries/s; nothing lost.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { keyIdFor, signAccessToken } from '../src/auth/jwt.js';
import { permissionsForRole } from '../src/auth/rbac.js';
import { openPostgres } from '../src/db/database.js';
import { withSystem } from '../src/db/scope.js';
import { insertPractice, insertUser } from '../src/users/first-start.js';
import { rssMiB, sleep, startInstance, stopInstances, type Instance } from './instances.js';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/14';
const SSE_CONNECTIONS = Number(process.env.BENCH_SSE_CONNECTIONS ?? 1000);
const SSE_PRACTICES = Number(process.env.BENCH_SSE_PRACTICES ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const WEBHOOK_EVENTS = Number(process.env.BENCH_WEBHOOK_EVENTS ?? 5000);
const KILL_RATE = Number(process.env.BENCH_KILL_RATE ?? 100);
const KILL_SECONDS = Number(process.env.BENCH_KILL_SECONDS ?? 10);
/** BENCH_ONLY=stream: phase 1 alone (to study the stream's latency). */
const ONLY_STREAM = process.env.BENCH_ONLY === 'stream';
const PATIENTS_PER_PRACTICE = 20;
/** The receiver answers this slowly in phase 3, so the killed instance dies with deliveries in flight. */
const KILL_RECEIVER_DELAY_MS = 300;
const LEASE_MS = 5000;

const JWT_SECRET = randomBytes(32).toString('base64url');
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

interface Practice {
  id: string;
  token: string;
  patients: string[];
}

/** A distinct letters-only name part for row i (names take letters, not digits). */
const letters = (i: number): string => (i < 26 ? '' : letters(Math.floor(i / 26) - 1)) + String.fromCharCode(97 + (i % 26));

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function latencySummary(samples: number[]): string {
  const sorted = Float64Array.from(samples).sort();
  return `p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${percentile(sorted, 100).toFixed(1)} ms (${sorted.length} samples)`;
}

/** A JSON request over the keep-alive agent: status and parsed body. */
function request(base: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${path}`,
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** An ADMIN of a new practice with patients, seeded in SQL; its token signed with the servers' key. */
async function seedPractices(databaseUrl: string, count: number): Promise<Practice[]> {
  const db = await openPostgres({ connectionString: databaseUrl, poolSize: 2 });
  try {
    const practices: Practice[] = [];
    for (let i = 0; i < count; i++) {
      const seeded = await withSystem(db, async (tx) => {
        const practiceId = await insertPractice(tx, { name: `Event Spa ${i + 1}`, timeZone: 'America/New_York' });
        const email = `events.${i}.${randomBytes(3).toString('hex')}@example.test`;
        const userId = await insertUser(tx, practiceId, { email, password: 'correct horse battery staple', role: 'ADMIN' });
        const { rows } = await tx.query<{ id: string }>(
          `INSERT INTO patients (practice_id, first_name, last_name) SELECT $1, 'Bench', 'Events' || g FROM generate_series(1, $2) g RETURNING id`,
          [practiceId, PATIENTS_PER_PRACTICE],
        );
        return { practiceId, userId, email, patients: rows.map((row) => row.id) };
      });
      const { token } = signAccessToken(
        { sub: seeded.userId, email: seeded.email, role: 'ADMIN', practiceId: seeded.practiceId, permissions: permissionsForRole('ADMIN') },
        { secret: JWT_SECRET, kid: keyIdFor(JWT_SECRET), issuer: 'medspasync-pro', audience: 'medspasync-pro-api', ttlSeconds: 3600 },
      );
      practices.push({ id: seeded.practiceId, token, patients: seeded.patients });
    }
    return practices;
  } finally {
    await db.close();
  }
}

interface StreamClient {
  received: number;
  close(): void;
}

/**
 * One SSE connection, parsed line by line. `onMessage` gets the message's id and data text; the
 * data is parsed by the caller only once per event, not once per connection.
 */
function openStream(base: string, token: string, onMessage: (id: string, data: string) => void): Promise<StreamClient> {
  return new Promise((resolve, reject) => {
    const client: StreamClient = { received: 0, close: () => req.destroy() };
    const req = http.get(`${base}/v2/events/stream`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`stream answered ${res.statusCode}`));
      res.setEncoding('utf8');
      let buffer = '';
      let id = '';
      let event = '';
      let data = '';
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            // Domain events only (their types have a dot): not the stream's own ready/error messages.
            if (data !== '' && event.includes('.')) {
              client.received++;
              onMessage(id, data);
            }
            data = '';
            event = '';
          } else if (line.startsWith('id:')) id = line.slice(3).trim();
          else if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trimStart();
        }
      });
      res.on('error', () => {});
      resolve(client);
    });
    req.on('error', reject);
  });
}

/** Calls `work` RATE times a second for `seconds`, open loop (a slow answer doesn't slow the rate). */
async function openLoop(rate: number, seconds: number, work: (i: number) => Promise<void>): Promise<{ sent: number; failed: number }> {
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const pending: Promise<void>[] = [];
  let failed = 0;
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(work(i).catch(() => void failed++));
  }
  await Promise.all(pending);
  return { sent: total, failed };
}

interface Receiver {
  url: string;
  /** Event id → first arrival (ms since epoch). */
  firstArrival: Map<string, number>;
  /** Deliveries received, duplicates included. */
  deliveries: number;
  /** resourceId → event types seen, for the SIGKILL phase. */
  created: Set<string>;
  latencies: number[];
  /** How long the receiver takes to answer: slow, many deliveries are in flight when an instance dies. */
  delayMs: number;
  close(): Promise<void>;
}

function startReceiver(): Promise<Receiver> {
  const receiver = { firstArrival: new Map<string, number>(), deliveries: 0, created: new Set<string>(), latencies: [] as number[], delayMs: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const now = Date.now();
      receiver.deliveries++;
      const id = String(req.headers['webhook-id'] ?? '');
      if (!receiver.firstArrival.has(id)) {
        receiver.firstArrival.set(id, now);
        const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string; occurredAt: string; data: { resourceId: string } };
        receiver.latencies.push(now - Date.parse(event.occurredAt));
        if (event.type === 'patient.created') receiver.created.add(event.data.resourceId);
      }
      if (receiver.delayMs > 0) setTimeout(() => res.writeHead(204).end(), receiver.delayMs);
      else res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        ...receiver,
        get deliveries() {
          return receiver.deliveries;
        },
        get delayMs() {
          return receiver.delayMs;
        },
        set delayMs(ms: number) {
          receiver.delayMs = ms;
        },
        url: `http://127.0.0.1:${port}/hooks`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - started;
}

async function streamPhase(instance: Instance, practices: Practice[]): Promise<boolean> {
  console.log(`\n1. stream: ${SSE_CONNECTIONS} SSE connections over ${practices.length} practices, ${RATE} changes/s for ${SECONDS} s`);
  await sleep(1000);
  const rssBefore = rssMiB(instance.child.pid!);
  const occurredAt = new Map<string, number>();
  const latencies: number[] = [];
  const perPractice = new Map<string, number>();
  const clients: StreamClient[] = [];
  for (let i = 0; i < SSE_CONNECTIONS; i++) {
    const practice = practices[i % practices.length]!;
    perPractice.set(practice.id, (perPractice.get(practice.id) ?? 0) + 1);
    clients.push(
      await openStream(instance.base, practice.token, (id, data) => {
        const arrived = Date.now();
        let at = occurredAt.get(id);
        if (at === undefined) {
          at = Date.parse((JSON.parse(data) as { occurredAt: string }).occurredAt);
          occurredAt.set(id, at);
        }
        latencies.push(arrived - at);
      }),
    );
  }
  await sleep(2000);
  const rssAfter = rssMiB(instance.child.pid!);
  console.log(
    `   server RSS ${rssBefore.toFixed(0)} MiB before the connections, ${rssAfter.toFixed(0)} MiB with them: ` +
      `${(((rssAfter - rssBefore) * 1024) / SSE_CONNECTIONS).toFixed(1)} KiB per connection`,
  );
  const cpuBefore = process.cpuUsage();
  let acknowledged = 0;
  const expectedPerPractice = new Map<string, number>();
  const writes = await openLoop(RATE, SECONDS, async (i) => {
    const practice = practices[i % practices.length]!;
    const patient = practice.patients[Math.floor(i / practices.length) % practice.patients.length]!;
    const { status } = await request(instance.base, 'PATCH', `/v1/patients/${patient}`, practice.token, { notes: `bench note ${i}` });
    if (status !== 200) throw new Error(`PATCH answered ${status}`);
    acknowledged++;
    expectedPerPractice.set(practice.id, (expectedPerPractice.get(practice.id) ?? 0) + 1);
  });
  const expected = [...expectedPerPractice].reduce((sum, [id, events]) => sum + events * (perPractice.get(id) ?? 0), 0);
  const received = () => clients.reduce((sum, client) => sum + client.received, 0);
  await waitUntil('every stream message', () => received() >= expected, 10_000).catch((error: Error) => console.log(`   ${error.message}`));
  const cpu = process.cpuUsage(cpuBefore);
  for (const client of clients) client.close();
  console.log(`   changes: ${writes.sent} sent, ${acknowledged} acknowledged, ${writes.failed} failed (${(acknowledged / SECONDS).toFixed(0)}/s)`);
  console.log(`   stream messages: ${received()} received of ${expected} expected, missing ${Math.max(0, expected - received())}`);
  console.log(`   commit -> SSE client: ${latencySummary(latencies)}`);
  console.log(`   this process (load + ${SSE_CONNECTIONS} clients) used ${((cpu.user + cpu.system) / 1000 / SECONDS).toFixed(0)} ms CPU a second`);
  return writes.failed === 0 && received() >= expected;
}

async function webhookPhase(instance: Instance, practice: Practice, receiver: Receiver): Promise<boolean> {
  console.log(`\n2. webhooks: an import of ${WEBHOOK_EVENTS} patients (${WEBHOOK_EVENTS} patient.created events) to one subscription`);
  const subscription = await request(instance.base, 'POST', '/v2/webhooks', practice.token, {
    url: receiver.url,
    eventTypes: ['patient.*'],
    description: 'bench receiver',
  });
  if (subscription.status !== 201) throw new Error(`subscription answered ${subscription.status}: ${JSON.stringify(subscription.body)}`);
  const rows = Array.from({ length: WEBHOOK_EVENTS }, (_, i) => ({ firstName: 'Hook', lastName: `Bench ${letters(i)}`, email: `hook.${i}.${randomUUID().slice(0, 8)}@example.test` }));
  const before = receiver.firstArrival.size;
  const started = Date.now();
  const imported = await request(instance.base, 'POST', '/v1/patients/import', practice.token, { mode: 'atomic', patients: rows });
  if (imported.status !== 200) throw new Error(`import answered ${imported.status}: ${JSON.stringify(imported.body).slice(0, 300)}`);
  const committed = Date.now();
  receiver.latencies.length = 0;
  const tookMs = await waitUntil('every delivery', () => receiver.firstArrival.size - before >= WEBHOOK_EVENTS, 120_000).catch((error: Error) => {
    console.log(`   ${error.message}`);
    return Number.NaN;
  });
  const delivered = receiver.firstArrival.size - before;
  const seconds = (Date.now() - committed) / 1000;
  console.log(`   import committed in ${committed - started} ms; ${delivered} events delivered in ${seconds.toFixed(1)} s after the commit: ${(delivered / seconds).toFixed(0)} deliveries/s`);
  console.log(`   commit -> webhook received: ${latencySummary(receiver.latencies)}; duplicates ${receiver.deliveries - receiver.firstArrival.size}`);
  return Number.isFinite(tookMs) && delivered >= WEBHOOK_EVENTS;
}

async function killPhase(instances: Instance[], practice: Practice, receiver: Receiver): Promise<boolean> {
  console.log(`\n3. SIGKILL: patients created through 2 instances at ${KILL_RATE}/s for ${KILL_SECONDS} s, instance 1 SIGKILLed at ${KILL_SECONDS / 2} s`);
  const acknowledged = new Set<string>();
  let refused = 0;
  const duplicatesBefore = receiver.deliveries - receiver.firstArrival.size;
  receiver.delayMs = KILL_RECEIVER_DELAY_MS;
  const killAt = setTimeout(() => {
    instances[0]!.child.kill('SIGKILL');
    console.log(`   instance 1 SIGKILLed with ${acknowledged.size} creations acknowledged`);
  }, (KILL_SECONDS / 2) * 1000);
  await openLoop(KILL_RATE, KILL_SECONDS, async (i) => {
    const target = instances[i % 2]!;
    if (target.child.signalCode !== null) return; // a load balancer would send these elsewhere
    const created = await request(target.base, 'POST', '/v1/patients', practice.token, {
      firstName: 'Kill',
      lastName: `Bench ${letters(i)}`,
      email: `kill.${i}.${randomUUID().slice(0, 8)}@example.test`,
    }).catch(() => ({ status: 0, body: null }));
    if (created.status === 201) acknowledged.add(created.body.id as string);
    else refused++;
  });
  clearTimeout(killAt);
  const missing = () => [...acknowledged].filter((id) => !receiver.created.has(id)).length;
  const tookMs = await waitUntil('the killed instance\'s deliveries (after its leases expire)', () => missing() === 0, 180_000).catch((error: Error) => {
    console.log(`   ${error.message}`);
    return Number.NaN;
  });
  // Deliveries the killed instance had sent but not recorded are sent again once their lease expires.
  await sleep(LEASE_MS + 3000);
  console.log(`   ${acknowledged.size} creations acknowledged (${refused} refused or cut off by the kill); delivered ${acknowledged.size - missing()}, missing ${missing()}`);
  console.log(
    `   the last one arrived ${(tookMs / 1000).toFixed(1)} s after the load ended (leases ${LEASE_MS} ms); ` +
      `${receiver.deliveries - receiver.firstArrival.size - duplicatesBefore} delivered twice: in flight at the kill, delivered again once its lease expired (receivers dedup by webhook-id)`,
  );
  return missing() === 0;
}

async function main(): Promise<void> {
  const dbName = `medspa_events_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const dataDirs = [mkdtempSync(join(tmpdir(), 'medspa-events-')), mkdtempSync(join(tmpdir(), 'medspa-events-'))];
  // development: WEBHOOK_ALLOW_LOOPBACK (the receiver is on this machine) is refused in production.
  const env = {
    NODE_ENV: 'development',
    LOG_LEVEL: 'info',
    JWT_SECRET,
    ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
    DATABASE_URL: url.toString(),
    DATABASE_POOL_SIZE: '10',
    REDIS_URL,
    MEDSPA_ADMIN_EMAIL: 'events-admin@example.test',
    MEDSPA_ADMIN_PASSWORD: `Bench-${randomBytes(12).toString('hex')}`,
    RATE_LIMIT_ENABLED: 'false',
    WEBHOOK_ALLOW_LOOPBACK: 'true',
    // A short lease, so the killed instance's deliveries are claimed again within seconds.
    WEBHOOK_LEASE_MS: String(LEASE_MS),
    WEBHOOK_TIMEOUT_MS: '3000',
    SSE_MAX_CONNECTIONS_PER_PRACTICE: String(SSE_CONNECTIONS),
  };
  const instances: Instance[] = [];
  const receiver = await startReceiver();
  let ok = false;
  try {
    instances.push(await startInstance(env, dataDirs[0]!));
    const practices = await seedPractices(url.toString(), SSE_PRACTICES);
    console.log(`PostgreSQL database ${dbName}, Redis ${REDIS_URL}; instance 1 at ${instances[0]!.base}`);
    const streamOk = await streamPhase(instances[0]!, practices);
    if (ONLY_STREAM) ok = streamOk;
    else {
      const webhooksOk = await webhookPhase(instances[0]!, practices[0]!, receiver);
      instances.push(await startInstance(env, dataDirs[1]!));
      const killOk = await killPhase(instances, practices[0]!, receiver);
      ok = streamOk && webhooksOk && killOk;
    }
    console.log(ok ? '\nOK' : '\nFAIL');
  } finally {
    await stopInstances(instances);
    await receiver.close();
    agent.destroy();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  }
  process.exitCode = ok ? 0 : 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
