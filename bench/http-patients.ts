// npm run bench:http — authenticated GET /v1/patients?limit=20 through the full stack (buildApp:
// auth, rate limit, practice-scoped transaction with row-level security, audit event, logging)
// against a minimal hand-written server (bench/http-minimal-server.ts), side by side in one run,
// on real PostgreSQL holding 10,000 patients of one practice. Load: autocannon in its own process,
// 32 connections, BENCH_SECONDS (default 10) each after a 2 s warm-up.
//
// Both servers stay up and are measured in BENCH_ROUNDS (default 3) alternating rounds (full then
// minimal, then minimal then full, ...): a shared 2-core machine drifts by 20-30 % within a
// minute, and one pass of each would credit the drift to whichever ran on the faster stretch.
// The summary is the median of each figure and the median of the per-round ratios.
//
// The rate limiter stays on, with the patients and global budgets raised so that the benchmark's
// one client address is never answered 429: the limiter's work is measured, its refusals are not.
// Everything lives in a scratch schema created here and dropped at the end.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../src/app.js';
import { signAccessToken } from '../src/auth/jwt.js';
import { permissionsForRole } from '../src/auth/rbac.js';
import { testConfig } from '../src/config.js';
import { openPostgres } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { withSystem } from '../src/db/scope.js';
import { insertPractice, insertUser } from '../src/users/first-start.js';
import { startMinimalServer } from './http-minimal-server.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const POOL_SIZE = Number(process.env.BENCH_POOL_SIZE ?? 10);
const PATIENTS = 10_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ONLY = process.env.BENCH_ONLY;
const SECRET = randomBytes(32).toString('hex');

interface Figures {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** CPU milliseconds per request: this server process, PostgreSQL (all backends), the load generator. */
  cpu: { server: number; postgres: number; loadGenerator: number };
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time (ms) used so far by each process whose command line matches, from /proc (Linux). */
function cpuOfProcesses(matches: (commandLine: string) => boolean): Map<number, number> {
  const found = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!matches(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) continue;
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      found.set(Number(entry), ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND);
    } catch {
      // the process ended between the listing and the read
    }
  }
  return found;
}

/** CPU used between two snapshots, counting only processes alive in both. */
function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? ms);
  return total;
}

const isPostgres = (commandLine: string) => commandLine.startsWith('postgres');

/** autocannon as a separate process, so the load generator never shares the servers' event loop. */
function autocannon(url: string, token: string, seconds: number): Promise<Figures> {
  const serverBefore = process.cpuUsage();
  const postgresBefore = cpuOfProcesses(isPostgres);
  let loadGeneratorBefore = 0;
  let loadGeneratorAfter = 0;
  return new Promise((resolve, reject) => {
    const child = spawn(
      'node_modules/.bin/autocannon',
      ['-c', String(CONNECTIONS), '-d', String(seconds), '-j', '-H', `authorization=Bearer ${token}`, url],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const loadGenerator = () => cpuOfProcesses((commandLine) => commandLine.includes('autocannon')).get(child.pid!) ?? 0;
    // The load generator's own CPU, read while it runs (its first and last 10 % are ramp-up and drain).
    const first = setTimeout(() => (loadGeneratorBefore = loadGenerator()), seconds * 100);
    const last = setTimeout(() => (loadGeneratorAfter = loadGenerator()), seconds * 900);
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(first);
      clearTimeout(last);
      if (code !== 0) return reject(new Error(`autocannon exited with ${code}`));
      const result = JSON.parse(out) as { requests: { average: number; total: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };
      const server = process.cpuUsage(serverBefore);
      const requests = result.requests.total;
      resolve({
        requestsPerSecond: result.requests.average,
        p50: result.latency.p50,
        p99: result.latency.p99,
        non2xx: result.non2xx,
        errors: result.errors,
        cpu: {
          server: (server.user + server.system) / 1000 / requests,
          postgres: cpuBetween(postgresBefore, cpuOfProcesses(isPostgres)) / requests,
          loadGenerator: (loadGeneratorAfter - loadGeneratorBefore) / (requests * 0.8),
        },
      });
    });
  });
}

async function measure(name: string, url: string, token: string): Promise<Figures> {
  await autocannon(url, token, 2); // warm-up: JIT, pool connections, caches, and the other server's cool-down
  const figures = await autocannon(url, token, SECONDS);
  console.log(`${name.padEnd(12)} ${describe(figures)}`);
  return figures;
}

function describe(figures: Figures): string {
  const { cpu } = figures;
  return (
    `${figures.requestsPerSecond.toFixed(0).padStart(7)} req/s   p50 ${String(figures.p50).padStart(3)} ms   p99 ${String(figures.p99).padStart(3)} ms   non-2xx ${figures.non2xx}   errors ${figures.errors}` +
    `   CPU ms/request: server ${cpu.server.toFixed(2)}, PostgreSQL ${cpu.postgres.toFixed(2)}, load generator ${cpu.loadGenerator.toFixed(2)}`
  );
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

function medianFigures(runs: Figures[]): Figures {
  const of = (pick: (figures: Figures) => number) => median(runs.map(pick));
  return {
    requestsPerSecond: of((f) => f.requestsPerSecond),
    p50: of((f) => f.p50),
    p99: of((f) => f.p99),
    non2xx: runs.reduce((sum, f) => sum + f.non2xx, 0),
    errors: runs.reduce((sum, f) => sum + f.errors, 0),
    cpu: { server: of((f) => f.cpu.server), postgres: of((f) => f.cpu.postgres), loadGenerator: of((f) => f.cpu.loadGenerator) },
  };
}

async function seed(db: Awaited<ReturnType<typeof openPostgres>>): Promise<{ practiceId: string; userId: string; email: string }> {
  return withSystem(db, async (tx) => {
    const practiceId = await insertPractice(tx, { name: 'Bench Spa', timeZone: 'America/New_York' });
    const email = `bench.${randomBytes(4).toString('hex')}@example.test`;
    const userId = await insertUser(tx, practiceId, { email, password: 'correct horse battery staple', role: 'STAFF' });
    // 10,000 patients with varied names, emails and phones, in one statement.
    await tx.query(
      `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, email, phone_number, status, notes)
       SELECT $1, (ARRAY['Ava','Liam','Mia','Noah','Zoë','Luis','Aiko','Omar'])[1 + i % 8],
              'Patient' || lpad(to_hex((i * 7919) % 65536), 4, '0'),
              date '1950-01-01' + (i * 3) % 20000,
              'patient' || i || '@example.com', '+1212' || lpad(i::text, 7, '0'),
              (ARRAY['ACTIVE','ACTIVE','VIP','INACTIVE'])[1 + i % 4], 'Seeded for the HTTP benchmark'
         FROM generate_series(1, $2::int) AS i`,
      [practiceId, PATIENTS],
    );
    return { practiceId, userId, email };
  });
}

async function main(): Promise<void> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const admin = await openPostgres({ connectionString: DATABASE_URL, poolSize: 1 });
  await admin.exec(`CREATE SCHEMA ${schema}`);
  const searchPath = `${schema},public`;
  const db = await openPostgres({ connectionString: DATABASE_URL, poolSize: POOL_SIZE, searchPath });
  try {
    await migrate(db);
    const { practiceId, userId, email } = await seed(db);
    await db.exec(`ANALYZE patients`);
    console.log(`PostgreSQL ${DATABASE_URL.replace(/\/\/[^@]*@/, '//')} schema ${schema}: ${PATIENTS} patients; ${CONNECTIONS} connections, ${SECONDS} s each, pool ${POOL_SIZE}`);

    const base = testConfig({ jwtSecret: SECRET, logLevel: 'info', rateLimitEnabled: true });
    const config = {
      ...base,
      rateLimits: { ...base.rateLimits, global: { max: 1e9, windowMs: 60_000 }, patients: { max: 1e9, windowMs: 60_000 } },
    };
    // Request logs are written (their cost is part of the stack) to /dev/null, not the terminal.
    const app = await buildApp(config, { db, logStream: createWriteStream('/dev/null') });
    const token = signAccessToken(
      { sub: userId, email, role: 'STAFF', practiceId, permissions: permissionsForRole('STAFF') },
      { secret: app.auth.signingSecret, kid: app.auth.signingKid, issuer: config.jwtIssuer, audience: config.jwtAudience, ttlSeconds: 3600 },
    ).token;
    await app.listen({ port: 0, host: '127.0.0.1' });
    const fullUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1/patients?limit=20`;
    const check = await fetch(fullUrl, { headers: { authorization: `Bearer ${token}` } });
    const checkBody = (await check.json()) as { data: unknown[]; pagination: { total: number } };
    if (check.status !== 200 || checkBody.data.length !== 20 || checkBody.pagination.total !== PATIENTS) {
      throw new Error(`full stack answered ${check.status}: ${JSON.stringify(checkBody).slice(0, 300)}`);
    }
    const minimal = await startMinimalServer({ connectionString: DATABASE_URL, searchPath, poolSize: POOL_SIZE, secret: SECRET });
    const minimalUrl = `${minimal.url}/v1/patients?limit=20`;
    // BENCH_ONLY=full|minimal runs one side, e.g. under `node --cpu-prof --import tsx` to profile it.
    const sides = [
      { name: 'full stack', url: fullUrl, runs: [] as Figures[] },
      { name: 'minimal', url: minimalUrl, runs: [] as Figures[] },
    ].filter((side) => ONLY === undefined || side.name.startsWith(ONLY));
    const ratios: number[] = [];
    for (let round = 1; round <= ROUNDS; round += 1) {
      console.log(`round ${round}/${ROUNDS}`);
      for (const side of round % 2 === 1 ? sides : [...sides].reverse()) side.runs.push(await measure(side.name, side.url, token));
      if (sides.length === 2) ratios.push(sides[0]!.runs.at(-1)!.requestsPerSecond / sides[1]!.runs.at(-1)!.requestsPerSecond);
    }
    await app.close();
    await minimal.close();

    console.log(`median of ${ROUNDS} rounds`);
    for (const side of sides) console.log(`${side.name.padEnd(12)} ${describe(medianFigures(side.runs))}`);
    if (ratios.length > 0) {
      const p99 = medianFigures(sides[0]!.runs).p99;
      console.log(
        `ratio full/minimal ${median(ratios).toFixed(2)} (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')}; target >= 0.80); full-stack p99 ${p99} ms (target < 20 ms)`,
      );
    }
  } finally {
    await db.close();
    await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
    await admin.close();
  }
}

await main();
