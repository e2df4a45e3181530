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
// The cost of metrics: a second full stack with METRICS_PORT=0 (nothing measured per request)
// is measured in the same alternating rounds; the metrics side is scraped every 5 s as Prometheus
// would (more often than its usual 15 s), so collection is in the figure too. The summary prints the
// median ratio metrics-off / metrics-on (target: metrics cost under 5 %).
//
// The rate limiter stays on, with every budget raised so that the benchmark's one client address
// is never answered 429: the limiter's work is measured, its refusals are not.
// Everything lives in a scratch schema created here and dropped at the end.
import { randomBytes } from 'node:crypto';
import { openPostgres } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { withSystem } from '../src/db/scope.js';
import { insertPractice, insertUser } from '../src/users/first-start.js';
import { CONNECTIONS, ROUNDS, SECONDS, describe, measure, median, medianFigures, startFullStack, type Figures } from './http-common.js';
import { startMinimalServer } from './http-minimal-server.js';
import { startMetricsServer } from '../src/observability/metrics-server.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const POOL_SIZE = Number(process.env.BENCH_POOL_SIZE ?? 10);
const PATIENTS = 10_000;
const ONLY = process.env.BENCH_ONLY;
const SECRET = randomBytes(32).toString('hex');
const CPU_BLOCKS = Number(process.env.BENCH_CPU_BLOCKS ?? 20);
const CPU_BLOCK = 500;

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

    // Which app is built first shifted throughput by several per cent between runs; the metrics side is built second.
    const withoutMetrics = await startFullStack(db, { practiceId, userId, email }, SECRET, { metrics: false });
    const { app, token, baseUrl } = await startFullStack(db, { practiceId, userId, email }, SECRET);
    const fullUrl = `${baseUrl}/v1/patients?limit=20`;
    const check = await fetch(fullUrl, { headers: { authorization: `Bearer ${token}` } });
    const checkBody = (await check.json()) as { data: unknown[]; pagination: { total: number } };
    if (check.status !== 200 || checkBody.data.length !== 20 || checkBody.pagination.total !== PATIENTS) {
      throw new Error(`full stack answered ${check.status}: ${JSON.stringify(checkBody).slice(0, 300)}`);
    }
    const scraper = await startMetricsServer(app.metrics, { host: '127.0.0.1', port: 0, log: app.log });
    const scrapes = setInterval(() => {
      fetch(`http://127.0.0.1:${scraper.port}/metrics`).then((response) => response.arrayBuffer(), () => undefined);
    }, 5000);
    const minimal = await startMinimalServer({ connectionString: DATABASE_URL, searchPath, poolSize: POOL_SIZE, secret: SECRET });
    const minimalUrl = `${minimal.url}/v1/patients?limit=20`;
    // BENCH_ONLY=full|minimal runs one side, e.g. under `node --cpu-prof --import tsx` to profile it.
    const sides = [
      { name: 'full stack', url: fullUrl, runs: [] as Figures[] },
      { name: 'no metrics', url: `${withoutMetrics.baseUrl}/v1/patients?limit=20`, runs: [] as Figures[] },
      { name: 'minimal', url: minimalUrl, runs: [] as Figures[] },
    ].filter((side) => ONLY === undefined || side.name.startsWith(ONLY));
    const full = sides.find((side) => side.name === 'full stack');
    const bare = sides.find((side) => side.name === 'minimal');
    const noMetrics = sides.find((side) => side.name === 'no metrics');
    const ratios: number[] = [];
    const metricsRatios: number[] = [];
    const latest = (side: { runs: Figures[] }) => side.runs.at(-1)!.requestsPerSecond;
    for (let round = 1; round <= ROUNDS; round += 1) {
      console.log(`round ${round}/${ROUNDS}`);
      for (const side of round % 2 === 1 ? sides : [...sides].reverse()) side.runs.push(await measure(side.name, side.url, token));
      if (full && bare) ratios.push(latest(full) / latest(bare));
      if (full && noMetrics) metricsRatios.push(latest(noMetrics) / latest(full));
    }
    // Throughput on a shared machine drifts more than metrics could cost; CPU per request does not
    // depend on how much of the machine the load generator got. Same request through inject(),
    // in alternating blocks, process CPU per request (the rest of the stack is the same code).
    const cpuRatios: number[] = [];
    if (full && noMetrics) {
      const perRequest = async (target: typeof app) => {
        const before = process.cpuUsage();
        for (let i = 0; i < CPU_BLOCK; i++) await target.inject({ url: '/v1/patients?limit=20', headers: { authorization: `Bearer ${token}` } });
        const used = process.cpuUsage(before);
        return (used.user + used.system) / 1000 / CPU_BLOCK;
      };
      const on: number[] = [];
      const off: number[] = [];
      for (let block = 0; block < CPU_BLOCKS; block++) {
        if (block % 2 === 0) { on.push(await perRequest(app)); off.push(await perRequest(withoutMetrics.app)); }
        else { off.push(await perRequest(withoutMetrics.app)); on.push(await perRequest(app)); }
        cpuRatios.push(on.at(-1)! / off.at(-1)!);
      }
      console.log(
        `in-process CPU per request (${CPU_BLOCKS} alternating blocks of ${CPU_BLOCK}): metrics on ${median(on).toFixed(3)} ms, off ${median(off).toFixed(3)} ms; ` +
          `median ratio on/off ${median(cpuRatios).toFixed(3)} (blocks ${Math.min(...cpuRatios).toFixed(2)}–${Math.max(...cpuRatios).toFixed(2)})`,
      );
    }
    clearInterval(scrapes);
    await scraper.close();
    await app.close();
    await withoutMetrics.app.close();
    await minimal.close();

    console.log(`median of ${ROUNDS} rounds`);
    for (const side of sides) console.log(`${side.name.padEnd(12)} ${describe(medianFigures(side.runs))}`);
    if (cpuRatios.length > 0) {
      console.log(`metrics cost in server CPU: ${((median(cpuRatios) - 1) * 100).toFixed(1)} % per request (target < 5 %)`);
    }
    if (metricsRatios.length > 0) {
      console.log(
        `metrics cost in throughput: no-metrics/full ${median(metricsRatios).toFixed(3)} (rounds: ${metricsRatios.map((r) => r.toFixed(3)).join(', ')}; ` +
          `above 1: metrics on is slower); server CPU ms/request ` +
          `${medianFigures(full!.runs).cpu.server.toFixed(3)} with, ${medianFigures(noMetrics!.runs).cpu.server.toFixed(3)} without`,
      );
    }
    if (ratios.length > 0) {
      const p99 = medianFigures(full!.runs).p99;
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
