// What the HTTP benchmarks share: the full stack started as they measure it, and the load side,
// autocannon in its own process (so the load generator never shares the servers' event loop), with
// the CPU each process used per request read from /proc.
import { spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { signAccessToken } from '../src/auth/jwt.js';
import { permissionsForRole } from '../src/auth/rbac.js';
import { testConfig, type RateLimits } from '../src/config.js';
import type { Database } from '../src/db/database.js';

/**
 * The full stack (buildApp) listening on a free port, and a STAFF access token for `user`. The
 * rate limiter stays on with budgets no benchmark reaches: its work is measured, its refusals are
 * not. Request logs are written (their cost is part of the stack) to /dev/null.
 */
export async function startFullStack(
  db: Database,
  user: { practiceId: string; userId: string; email: string },
  secret: string,
  { metrics = true } = {},
): Promise<{ app: FastifyInstance; baseUrl: string; token: string }> {
  const base = testConfig({ jwtSecret: secret, logLevel: 'info', rateLimitEnabled: true });
  // metrics: false is METRICS_PORT=0 (nothing measured per request), the other side of the metrics A/B.
  base.metrics = { ...base.metrics, enabled: metrics };
  const unreachable = { max: 1e9, windowMs: 60_000 };
  const rateLimits = Object.fromEntries(Object.keys(base.rateLimits).map((rule) => [rule, unreachable])) as unknown as RateLimits;
  const config = { ...base, rateLimits };
  const app = await buildApp(config, { db, logStream: createWriteStream('/dev/null') });
  const token = signAccessToken(
    { sub: user.userId, email: user.email, role: 'STAFF', practiceId: user.practiceId, permissions: permissionsForRole('STAFF') },
    { secret: app.auth.signingSecret, kid: app.auth.signingKid, issuer: config.jwtIssuer, audience: config.jwtAudience, ttlSeconds: 3600 },
  ).token;
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, token, baseUrl: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

export const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

export interface Figures {
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

/** One autocannon run of `seconds` against `url` with the bearer token. */
export function autocannon(url: string, token: string, seconds: number): Promise<Figures> {
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

export async function measure(name: string, url: string, token: string): Promise<Figures> {
  await autocannon(url, token, 2); // warm-up: JIT, pool connections, caches, and the other server's cool-down
  const figures = await autocannon(url, token, SECONDS);
  console.log(`${name.padEnd(12)} ${describe(figures)}`);
  return figures;
}

export function describe(figures: Figures): string {
  const { cpu } = figures;
  return (
    `${figures.requestsPerSecond.toFixed(0).padStart(7)} req/s   p50 ${String(figures.p50).padStart(3)} ms   p99 ${String(figures.p99).padStart(3)} ms   non-2xx ${figures.non2xx}   errors ${figures.errors}` +
    `   CPU ms/request: server ${cpu.server.toFixed(2)}, PostgreSQL ${cpu.postgres.toFixed(2)}, load generator ${cpu.loadGenerator.toFixed(2)}`
  );
}

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

export function medianFigures(runs: Figures[]): Figures {
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
