// npm run bench:memory — resident memory of an idle server, as `npm start` runs it (dist/main.js,
// built first): on the embedded PGlite at its first start (initdb included) and when it reopens
// its data directory, and on PostgreSQL (DATABASE_URL, default the local test server) for
// comparison. Each figure is `ps -o rss` (VmRSS) after /health/ready answers and 5 s of idling.
// Metrics are on as by default (their listener on a free port); PGlite reopens with
// METRICS_PORT=0 show what they hold. Reopens are sampled BENCH_SAMPLES times (default 3).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, ROOT, rssMiB, sleep, startInstance, stopInstances } from './instances.js';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const IDLE_MS = 5000;
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 3);

/** "median MiB (min–max of n)". */
function describe(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return `${median.toFixed(0)} MiB (${sorted[0]!.toFixed(0)}–${sorted.at(-1)!.toFixed(0)} of ${sorted.length})`;
}

async function idleRss(env: Record<string, string>, dataDir: string): Promise<number> {
  const instance = await startInstance({ METRICS_PORT: String(await freePort()), ...env }, dataDir, { built: true });
  try {
    await sleep(IDLE_MS);
    return rssMiB(instance.child.pid!);
  } finally {
    await stopInstances([instance]);
  }
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
  const env = { NODE_ENV: 'development', LOG_LEVEL: 'warn', MEDSPA_ADMIN_PASSWORD: `Bench-${randomBytes(9).toString('hex')}` };
  const dataDir = mkdtempSync(join(tmpdir(), 'medspa-memory-'));
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  const dbName = `medspa_memory_${randomBytes(4).toString('hex')}`;
  try {
    const first = await idleRss({ ...env, DATABASE_URL: '' }, dataDir);
    console.log(`PGlite, first start (initdb):   ${first.toFixed(0)} MiB`);
    // Resident memory of one start varies by ±10 MiB (when the collector last ran): the median of
    // SAMPLES starts, with the range beside it.
    const reopened: number[] = [];
    for (let i = 0; i < SAMPLES; i++) reopened.push(await idleRss({ ...env, DATABASE_URL: '' }, dataDir));
    console.log(`PGlite, reopening its data:     ${describe(reopened)}`);
    const withoutMetrics: number[] = [];
    for (let i = 0; i < SAMPLES; i++) withoutMetrics.push(await idleRss({ ...env, DATABASE_URL: '', METRICS_PORT: '0' }, dataDir));
    console.log(`PGlite, reopening, METRICS_PORT=0: ${describe(withoutMetrics)}`);
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${dbName}`;
    const postgres = await idleRss({ ...env, DATABASE_URL: url.toString() }, mkdtempSync(join(tmpdir(), 'medspa-memory-')));
    console.log(`PostgreSQL (DATABASE_URL):      ${postgres.toFixed(0)} MiB`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    await admin.end().catch(() => {});
  }
}

await main();
