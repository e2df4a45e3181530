// Load check (issue 6, item 9): two server processes sharing one PostgreSQL and one Redis, driven
// by autocannon with a mix of routes for BENCH_DURATION_S seconds (default 60). Prints throughput,
// latency percentiles, status counts per route, how many 429s, and fails (exit 1) on any 5xx or
// transport error, or if the two instances together let through more than the shared budget.
//
//   npm run bench:load                          # 60 s, 32 connections per instance
//   BENCH_DURATION_S=15 npm run bench:load      # shorter
//
// Environment: DATABASE_URL (a server where the bench may CREATE DATABASE; default the local
// test server), REDIS_URL (default redis://127.0.0.1:6379/14), BENCH_CONNECTIONS (per instance),
// BENCH_ROUTES (comma-separated GET paths replacing the mix), BENCH_PATIENTS_BUDGET (the /patients budget both instances share, default 5000: small enough
// that the run exhausts it and shows the shared limit working under load).
import autocannon, { type Result } from 'autocannon';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startInstance, stopInstances, type Instance } from './instances.js';
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 60);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const PATIENTS_BUDGET = Number(process.env.BENCH_PATIENTS_BUDGET ?? 5_000);
const SEED_PATIENTS = 50;
/** BENCH_ROUTES=/health,/versions replaces the mix (to see what one route costs). */
const ROUTES = process.env.BENCH_ROUTES?.split(',').map((path) => path.trim()).filter(Boolean);
const FIRST_NAMES = ['Ava', 'Liam', 'Maya', 'Noah', 'Zoe', 'Ethan', 'Chloe', 'Lucas'];
const LAST_NAMES = ['Garcia', 'Nguyen', 'Smith', 'Okafor', 'Kowalski', 'Haddad', 'Silva'];
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/14';

type Tally = Map<string, Map<number, number>>;

function count(tally: Tally, route: string, status: number): void {
  let byStatus = tally.get(route);
  if (!byStatus) tally.set(route, (byStatus = new Map()));
  byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
}

interface Client {
  label: string;
  connections: number;
  paths: string[];
}

/**
 * Independent client populations per instance, so the cheap routes aren't paced by the expensive
 * one: 3/4 of the connections poll /health and /versions, 1/4 list patients (authenticated,
 * audited PHI reads, two pages). BENCH_ROUTES replaces this with one population.
 */
function clients(): Client[] {
  if (ROUTES) return [{ label: 'custom', connections: CONNECTIONS, paths: ROUTES }];
  const patients = Math.max(1, Math.round(CONNECTIONS / 4));
  return [
    { label: 'light', connections: CONNECTIONS - patients, paths: ['/health', '/versions'] },
    { label: 'patients', connections: patients, paths: ['/v1/patients?limit=20', '/v1/patients?limit=20&page=2'] },
  ];
}

function run(base: string, token: string, client: Client, tally: Tally): Promise<Result> {
  const auth = { authorization: `Bearer ${token}` };
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: base,
        connections: client.connections,
        duration: DURATION_S,
        requests: client.paths.map((path) => ({
          method: 'GET' as const,
          path,
          headers: path.startsWith('/v1/') ? auth : {},
          onResponse: (status: number) => count(tally, `GET ${path}`, status),
        })),
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
    autocannon.track(instance, { renderProgressBar: false, renderResultsTable: false, renderLatencyTable: false });
  });
}

async function main(): Promise<void> {
  const dbName = `medspa_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const benchUrl = new URL(ADMIN_URL);
  benchUrl.pathname = `/${dbName}`;

  // Counters from an earlier run (same client address, windows up to an hour) would skew the check.
  const redis = new Redis(REDIS_URL);
  const stale = await redis.keys('medspa:rl:*');
  if (stale.length > 0) await redis.del(...stale);

  const dataDirs = [mkdtempSync(join(tmpdir(), 'medspa-bench-')), mkdtempSync(join(tmpdir(), 'medspa-bench-'))];
  const password = `Bench-${randomBytes(12).toString('hex')}`;
  const env = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    JWT_SECRET: randomBytes(32).toString('base64url'),
    ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
    DATABASE_URL: benchUrl.toString(),
    DATABASE_POOL_SIZE: '10',
    REDIS_URL,
    MEDSPA_ADMIN_EMAIL: 'bench-admin@example.test',
    MEDSPA_ADMIN_PASSWORD: password,
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_MAX: '10000000', // /versions shares the overall budget; keep it out of the way
    RATE_LIMIT_PATIENTS_MAX: String(PATIENTS_BUDGET),
  };
  const instances: Instance[] = [];
  try {
    // One after the other: the first creates the schema and the administrator.
    instances.push(await startInstance(env, dataDirs[0]!));
    instances.push(await startInstance(env, dataDirs[1]!));

    const login = await fetch(`${instances[0]!.base}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: env.MEDSPA_ADMIN_EMAIL, password }),
    });
    if (!login.ok) throw new Error(`login failed: ${login.status} ${await login.text()}`);
    const { accessToken } = (await login.json()) as { accessToken: string };
    let seeded = 0;
    for (let i = 0; i < SEED_PATIENTS; i++) {
      const created = await fetch(`${instances[i % 2]!.base}/v1/patients`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
        body: JSON.stringify({
          firstName: FIRST_NAMES[i % FIRST_NAMES.length],
          lastName: `${LAST_NAMES[i % LAST_NAMES.length]}-${String.fromCharCode(65 + (i % 26))}`,
          email: `bench.${i}@example.test`,
        }),
      });
      if (created.status === 201) seeded += 1;
      else throw new Error(`seeding failed: ${created.status} ${await created.text()}`);
    }

    console.log(
      `\nload: 2 instances (PostgreSQL ${dbName}, Redis ${REDIS_URL}), ${CONNECTIONS} connections each, ${DURATION_S} s, ` +
        `/patients budget ${PATIENTS_BUDGET} shared (${seeded} spent on seeding)\n`,
    );
    const tally: Tally = new Map();
    const runs = instances.flatMap((instance, i) =>
      clients().map((client) => ({ label: `${i + 1} ${client.label}`, result: run(instance.base, accessToken, client, tally) })),
    );
    const results = await Promise.all(runs.map((r) => r.result));

    const total = results.reduce((sum, r) => sum + r.requests.total, 0);
    const errors = results.reduce((sum, r) => sum + r.errors + r.timeouts, 0);
    console.log('instance/clients  req/s (mean)  p50 ms  p90 ms  p99 ms  p99.9 ms  max ms  errors');
    results.forEach((r, i) => {
      const l = r.latency as Result['latency'] & { p90: number; p99_9: number };
      console.log(
        `${runs[i]!.label.padEnd(16)}  ${r.requests.average.toFixed(0).padStart(12)}  ${String(l.p50).padStart(6)}  ${String(l.p90).padStart(6)}  ` +
          `${String(l.p99).padStart(6)}  ${String(l.p99_9).padStart(8)}  ${String(l.max).padStart(6)}  ${r.errors + r.timeouts}`,
      );
    });
    console.log(`total             ${(total / DURATION_S).toFixed(0).padStart(12)} req/s over ${total} requests\n`);

    let fiveHundreds = 0;
    let tooMany = 0;
    let unexpected = 0;
    console.log(`${'route'.padEnd(34)}  status counts`);
    for (const [name, byStatus] of tally) {
      const parts = [...byStatus].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`);
      console.log(`${name.padEnd(34)}  ${parts.join(', ')}`);
      for (const [status, n] of byStatus) {
        if (status >= 500) fiveHundreds += n;
        else if (status === 429) tooMany += n;
        else if (status >= 300) unexpected += n;
      }
    }
    const patientsOk = [...tally]
      .filter(([name]) => name.startsWith('GET /v1/patients'))
      .reduce((sum, [, byStatus]) => sum + (byStatus.get(200) ?? 0), 0);
    const budgetLeft = PATIENTS_BUDGET - seeded;
    console.log(`\n429 responses: ${tooMany}`);
    console.log(`5xx responses: ${fiveHundreds}`);
    console.log(`transport errors/timeouts: ${errors}`);
    console.log(
      `/patients 200s across both instances: ${patientsOk} (shared budget left after seeding: ${budgetLeft})` +
        (patientsOk > budgetLeft
          ? ' — BUDGET EXCEEDED'
          : patientsOk === budgetLeft
            ? ' — exactly the budget: one budget for both instances, not two'
            : ' — budget not reached in this run'),
    );
    const failed = fiveHundreds > 0 || errors > 0 || unexpected > 0 || patientsOk > budgetLeft;
    console.log(failed ? '\nFAIL' : '\nOK');
    process.exitCode = failed ? 1 : 0;
  } finally {
    await stopInstances(instances);
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    const keys = await redis.keys('medspa:rl:*');
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
