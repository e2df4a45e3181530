// npm run drill — the scale-out drill (docs/operations.md, "Scale-out drill"): HAProxy in front of
// three API instances (dist/main.js, NODE_ENV=production) on one PostgreSQL and one Redis, a steady
// mixed load through HAProxy (logins, patient reads and writes, bookings, reconciliations), and
// faults injected one after the other:
//
//   kill        SIGKILL of one instance (restarted 10 s later on the same port)
//   postgres    PostgreSQL restarted (pg_ctl restart -m fast)
//   redis       Redis restarted
//   redis-down  Redis stopped for DRILL_REDIS_DOWN_S seconds (default 60)
//   clock       one instance restarted under faketime with its clock DRILL_SKEW_S ahead (default 20)
//
// Per fault it prints the requests, errors by status, the longest run of errors, the recovery time
// (from the moment the fault is healed to the last error), and the invariants checked afterwards:
// every acknowledged write (201) readable, no double booking, the login budget shared by all
// instances, a revoked token refused by every instance. Exit 1 when a target is missed.
//
// HAProxy runs deploy/haproxy.cfg and the instances run as deploy/medspasync-pro@.service starts
// them (its command and environment), with only addresses and secrets changed
// (bench/deploy-files.ts): the deployment files can't drift from what was drilled. At the end,
// every instance's /metrics is scraped under load and searched for the patients it created.
//
// The drill owns everything it runs: a PostgreSQL cluster of its own (initdb in a temporary
// directory; it is restarted, so it can't be a server other work uses), a redis-server on a free
// port, HAProxy, the instances. Needs Debian's haproxy and faketime packages (installed with
// apt-get when missing and run as root) and PostgreSQL's server binaries; as root, PostgreSQL runs
// as the `postgres` user.
//
//   npm run drill                       # every fault
//   DRILL_FAULTS=kill,postgres npm run drill
//   DRILL_CLIENTS=8 DRILL_REDIS_DOWN_S=60 DRILL_SKEW_S=20 npm run drill
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { HAPROXY_503_FILE, readHaproxyConfigForDrill, readServiceUnit, unitEnvironment, unitScript } from './deploy-files.js';
import { freePort, portReleased, sleep, startInstance, stopInstances, type Instance } from './instances.js';

const CLIENTS = Number(process.env.DRILL_CLIENTS ?? 8);
const REDIS_DOWN_S = Number(process.env.DRILL_REDIS_DOWN_S ?? 60);
const SKEW_S = Number(process.env.DRILL_SKEW_S ?? 20);
const SETTLE_S = Number(process.env.DRILL_SETTLE_S ?? 10);
const FAULTS = (process.env.DRILL_FAULTS ?? 'kill,postgres,redis,redis-down,clock').split(',').map((f) => f.trim());
const REQUEST_TIMEOUT_MS = 10_000;
/** A run of errors shorter than this after a fault is healed still counts as recovered in time. */
const RECOVERY_TARGET_S = 10;
/** The per-account login budget (the blueprint's 5 per 15 minutes) the drill checks is shared. */
const LOGIN_ACCOUNT_BUDGET = 5;

// ---------------------------------------------------------------- the components

function run(command: string, args: string[], options: { asUser?: string } = {}): string {
  const [cmd, ...rest] = options.asUser ? ['runuser', '-u', options.asUser, '--', command, ...args] : [command, ...args];
  const result = spawnSync(cmd!, rest, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr || result.stdout || result.error}`);
  return result.stdout;
}

function postgresBin(name: string): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b));
  return `/usr/lib/postgresql/${versions.at(-1)}/bin/${name}`;
}

/** A PostgreSQL cluster of the drill's own, in a temporary directory. */
class PostgresServer {
  readonly dir: string;
  private readonly asUser: string | undefined;
  constructor(
    root: string,
    readonly port: number,
  ) {
    this.dir = join(root, 'pg');
    // initdb refuses to run as root: the cluster belongs to the postgres user then.
    this.asUser = userInfo().uid === 0 ? 'postgres' : undefined;
    mkdirSync(this.dir, { mode: 0o700 });
    if (this.asUser) {
      const { uid, gid } = { uid: Number(run('id', ['-u', this.asUser]).trim()), gid: Number(run('id', ['-g', this.asUser]).trim()) };
      chownSync(this.dir, uid, gid);
      chmodSync(root, 0o755);
    }
  }
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/medspa`;
  }
  init(): void {
    run(postgresBin('initdb'), ['-D', this.dir, '-U', 'postgres', '-A', 'trust', '--no-sync'], { asUser: this.asUser });
  }
  private pgCtl(...args: string[]): void {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
    run(postgresBin('pg_ctl'), ['-D', this.dir, '-o', options, '-l', join(this.dir, 'log'), '-w', ...args], { asUser: this.asUser });
  }
  start(): void {
    this.pgCtl('start');
  }
  restart(): void {
    this.pgCtl('restart', '-m', 'fast');
  }
  stop(): void {
    try {
      this.pgCtl('stop', '-m', 'immediate');
    } catch {
      // already stopped
    }
  }
}

class RedisServer {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}
  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }
  async start(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      if (spawnSync('redis-cli', ['-p', String(this.port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG') return;
      await sleep(50);
    }
    throw new Error('redis-server did not start');
  }
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

class HaProxy {
  private child: ChildProcess | undefined;
  constructor(
    private readonly root: string,
    readonly port: number,
    private readonly backends: number[],
  ) {}
  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    // deploy/haproxy.cfg itself, with the drill's addresses (bench/deploy-files.ts).
    const errorFile = join(this.root, '503.http');
    copyFileSync(HAPROXY_503_FILE, errorFile);
    const config = join(this.root, 'haproxy.cfg');
    writeFileSync(config, readHaproxyConfigForDrill({ port: this.port, backends: this.backends, errorFile }));
    this.child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    this.child.stderr!.on('data', (chunk) => (err += String(chunk)));
    for (let i = 0; i < 100; i++) {
      if (this.child.exitCode !== null) throw new Error(`haproxy exited: ${err}`);
      try {
        if ((await fetch(`${this.base}/health/ready`)).ok) return;
      } catch {
        // not up yet
      }
      await sleep(100);
    }
    throw new Error(`haproxy did not become ready: ${err}`);
  }
  stop(): void {
    this.child?.kill('SIGTERM');
  }
}

// ---------------------------------------------------------------- the load

interface Sample {
  /** When the answer arrived, ms since the drill started. */
  at: number;
  /** When the request was sent. */
  sentAt: number;
  /** Sent with an Idempotency-Key (or a GET): HAProxy may replay it on another instance. */
  replayable: boolean;
  action: string;
  /** HTTP status, or 0 for a transport error or a timeout. */
  status: number;
  retryAfter: boolean;
  ok: boolean;
}

interface Acknowledged {
  kind: 'patient' | 'appointment';
  id: string;
  at: number;
}

const startedAt = performance.now();
const now = () => performance.now() - startedAt;

async function call(
  base: string,
  method: string,
  path: string,
  { token, body, idempotent = false }: { token?: string; body?: unknown; idempotent?: boolean } = {},
): Promise<{ status: number; json: unknown; retryAfter: boolean }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (idempotent) headers['idempotency-key'] = randomUUID();
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (a proxy's page): the status says enough
    }
    return { status: response.status, json, retryAfter: response.headers.has('retry-after') };
  } catch {
    return { status: 0, json: null, retryAfter: false };
  }
}

interface World {
  base: string;
  adminEmail: string;
  password: string;
  practitionerIds: string[];
  serviceId: string;
  patients: string[];
  /** The created patients' last names, looked for in every /metrics scrape. */
  lastNames: string[];
  acknowledged: Acknowledged[];
  samples: Sample[];
}

/** What each action expects; anything else is an error of the drill's tally. */
const EXPECTED: Record<string, number[]> = {
  list: [200],
  read: [200],
  create: [201],
  book: [201, 409],
  login: [200],
  reconcile: [200],
};

const FIRST = ['Ava', 'Liam', 'Maya', 'Noah', 'Zoe', 'Ethan', 'Chloe', 'Lucas', 'Iris', 'Omar'];
const LAST = ['Garcia', 'Nguyen', 'Smith', 'Okafor', 'Kowalski', 'Haddad', 'Silva', 'Moreau'];
/** Random letters: names may hold letters only, and a unique suffix keeps the duplicate check quiet. */
const letters = (n: number) => Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('');
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

function randomSlot(): string {
  const day = new Date(Date.UTC(2027, 0, 4) + Math.floor(Math.random() * 120) * 86_400_000);
  const slot = Math.floor(Math.random() * 16); // 9:00 to 16:30 UTC, every 30 minutes
  day.setUTCHours(9 + Math.floor(slot / 2), (slot % 2) * 30);
  return day.toISOString();
}

async function login(world: World): Promise<string | undefined> {
  const sentAt = now();
  const answer = await call(world.base, 'POST', '/v1/auth/login', { body: { email: world.adminEmail, password: world.password } });
  world.samples.push({ at: now(), sentAt, replayable: false, action: 'login', status: answer.status, retryAfter: answer.retryAfter, ok: answer.status === 200 });
  return answer.status === 200 ? (answer.json as { accessToken: string }).accessToken : undefined;
}

async function virtualUser(world: World, index: number, running: () => boolean): Promise<void> {
  let token: string | undefined;
  while (running()) {
    if (!token) {
      token = await login(world);
      if (!token) await sleep(250);
      continue;
    }
    const roll = Math.random();
    const sentAt = now();
    let action: string;
    let answer: Awaited<ReturnType<typeof call>>;
    if (index === 0 && roll < 0.05) {
      action = 'reconcile';
      const data = Array.from({ length: 5 }, () => ({ 'First Name': pick(FIRST), 'Last Name': pick(LAST), DOB: '1985-04-12' }));
      answer = await call(world.base, 'POST', '/v1/ai/reconcile', { token, body: { data } });
    } else if (roll < 0.4) {
      action = 'list';
      answer = await call(world.base, 'GET', '/v1/patients?limit=20', { token });
    } else if (roll < 0.6 && world.patients.length > 0) {
      action = 'read';
      answer = await call(world.base, 'GET', `/v1/patients/${pick(world.patients)}`, { token });
    } else if (roll < 0.8 || world.patients.length === 0) {
      action = 'create';
      const body = { firstName: pick(FIRST), lastName: `${pick(LAST)}-${letters(6)}`, dateOfBirth: '1990-02-03' };
      answer = await call(world.base, 'POST', '/v1/patients', { token, body, idempotent: true });
      if (answer.status === 201) {
        const id = (answer.json as { id: string }).id;
        world.patients.push(id);
        world.lastNames.push(body.lastName);
        world.acknowledged.push({ kind: 'patient', id, at: now() });
      }
    } else if (roll < 0.97) {
      action = 'book';
      const body = {
        patientId: pick(world.patients),
        practitionerId: pick(world.practitionerIds),
        serviceId: world.serviceId,
        startTime: randomSlot(),
      };
      answer = await call(world.base, 'POST', '/v1/appointments', { token, body, idempotent: true });
      if (answer.status === 201) world.acknowledged.push({ kind: 'appointment', id: (answer.json as { id: string }).id, at: now() });
    } else {
      action = 'login';
      const fresh = await login(world);
      if (fresh) token = fresh;
      await sleep(20);
      continue;
    }
    const ok = EXPECTED[action]!.includes(answer.status);
    world.samples.push({ at: now(), sentAt, replayable: action !== 'reconcile', action, status: answer.status, retryAfter: answer.retryAfter, ok });
    // A token another instance refused (e.g. one minted by a skewed clock) is replaced, as a client would.
    if (answer.status === 401) {
      if (process.env.DRILL_DEBUG) console.log(`${action} 401 at ${(now() / 1000).toFixed(1)} s: ${JSON.stringify(answer.json)}`);
      token = undefined;
    }
    await sleep(20);
  }
}

// ---------------------------------------------------------------- invariants

async function unreadable(world: World, writes: Acknowledged[], token: string): Promise<string[]> {
  const missing: string[] = [];
  for (let i = 0; i < writes.length; i += 16) {
    await Promise.all(
      writes.slice(i, i + 16).map(async (write) => {
        const path = write.kind === 'patient' ? `/v1/patients/${write.id}` : `/v1/appointments/${write.id}`;
        for (let attempt = 0; attempt < 3; attempt++) {
          const answer = await call(world.base, 'GET', path, { token });
          if (answer.status === 200) return;
          if (answer.status === 404) break;
          await sleep(500);
        }
        missing.push(`${write.kind} ${write.id}`);
      }),
    );
  }
  return missing;
}

/** Every instance's /metrics (its own loopback port), searched for the patients the load created. */
async function scrapeMetricsForPhi(world: World, ports: number[]): Promise<{ instances: number; samples: number; leaks: string[] }> {
  const texts = await Promise.all(ports.map(async (port) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()));
  const everything = texts.join('\n');
  const leaks = [...world.lastNames, ...world.patients].filter((value) => everything.includes(value));
  const samples = everything.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
  return { instances: texts.length, samples, leaks };
}

async function doubleBookings(db: pg.Client): Promise<number> {
  const result = await db.query<{ n: string }>(
    `SELECT count(*) AS n
       FROM appointments a
       JOIN appointments b ON a.practitioner_id = b.practitioner_id AND a.id < b.id
      WHERE a.status NOT IN ('CANCELLED', 'NO_SHOW') AND b.status NOT IN ('CANCELLED', 'NO_SHOW')
        AND tstzrange(a.start_time, a.end_time) && tstzrange(b.start_time, b.end_time)`,
  );
  return Number(result.rows[0]!.n);
}

/** Wrong passwords for one fresh account, spread over every instance: exactly the budget gets through. */
async function loginBudgetShared(instances: Instance[]): Promise<{ shared: boolean; detail: string }> {
  const email = `budget.${randomBytes(4).toString('hex')}@example.test`;
  const statuses: number[] = [];
  for (let i = 0; i < LOGIN_ACCOUNT_BUDGET + 3; i++) {
    const answer = await call(instances[i % instances.length]!.base, 'POST', '/v1/auth/login', { body: { email, password: 'not the password' } });
    statuses.push(answer.status);
  }
  const passed = statuses.filter((status) => status === 401).length;
  const refused = statuses.filter((status) => status === 429).length;
  return { shared: passed === LOGIN_ACCOUNT_BUDGET && refused === 3, detail: `${passed}x401 then ${refused}x429 over ${instances.length} instances` };
}

/** A token logged out through the load balancer is refused by each instance asked directly. */
async function revocationShared(world: World, instances: Instance[]): Promise<{ shared: boolean; detail: string }> {
  const session = await call(world.base, 'POST', '/v1/auth/login', { body: { email: world.adminEmail, password: world.password } });
  if (session.status !== 200) return { shared: false, detail: `login answered ${session.status}` };
  const { accessToken: token, refreshToken } = session.json as { accessToken: string; refreshToken: string };
  // With its refresh token, logout ends this session only (without, every session of the user).
  const logout = await call(world.base, 'POST', '/v1/auth/logout', { token, body: { refreshToken } });
  if (logout.status !== 204 && logout.status !== 200) return { shared: false, detail: `logout answered ${logout.status}` };
  const statuses = await Promise.all(instances.map((instance) => call(instance.base, 'GET', '/v1/patients?limit=1', { token }).then((a) => a.status)));
  return { shared: statuses.every((status) => status === 401), detail: `instances answered ${statuses.join(', ')}` };
}

// ---------------------------------------------------------------- the report

interface PhaseReport {
  fault: string;
  requests: number;
  errorsByStatus: Record<string, number>;
  /** The same errors by action ("book 500"), to find their cause. */
  errorsByAction: Record<string, number>;
  allowed503: number;
  /**
   * Requests a SIGKILLed instance was holding that HAProxy may not replay (no Idempotency-Key):
   * their outcome is unknown to the client, whatever the API does. Listed, not counted as errors.
   */
  inFlightAtKill: Record<string, number>;
  longestErrorRun: { count: number; seconds: number };
  recoverySeconds: number;
  unreadableWrites: number;
  doubleBookings: number;
  loginBudget: string;
  revocation: string;
  targetsMet: boolean;
  notes: string[];
}

function summarise(samples: Sample[], healedAt: number, dependencyOutage: boolean, killedAt?: number): Omit<PhaseReport, 'fault' | 'unreadableWrites' | 'doubleBookings' | 'loginBudget' | 'revocation' | 'targetsMet' | 'notes'> {
  const ordered = [...samples].sort((a, b) => a.at - b.at);
  const errorsByStatus: Record<string, number> = {};
  const errorsByAction: Record<string, number> = {};
  let allowed503 = 0;
  const inFlightAtKill: Record<string, number> = {};
  let run = { count: 0, start: 0, end: 0 };
  let longest = { count: 0, seconds: 0 };
  let lastError = -Infinity;
  for (const sample of ordered) {
    if (sample.ok) {
      run = { count: 0, start: 0, end: 0 };
      continue;
    }
    const label = sample.status === 0 ? 'transport' : sample.status === 503 && sample.retryAfter ? '503+Retry-After' : String(sample.status);
    const heldByKilledInstance = killedAt !== undefined && sample.sentAt <= killedAt && sample.at >= killedAt && !sample.replayable;
    if (heldByKilledInstance && (label === 'transport' || label === '502')) {
      inFlightAtKill[`${sample.action} ${label}`] = (inFlightAtKill[`${sample.action} ${label}`] ?? 0) + 1;
      continue;
    }
    errorsByStatus[label] = (errorsByStatus[label] ?? 0) + 1;
    errorsByAction[`${sample.action} ${label}`] = (errorsByAction[`${sample.action} ${label}`] ?? 0) + 1;
    if (dependencyOutage && label === '503+Retry-After') allowed503 += 1;
    run = run.count === 0 ? { count: 1, start: sample.at, end: sample.at } : { ...run, count: run.count + 1, end: sample.at };
    if (run.count > longest.count) longest = { count: run.count, seconds: (run.end - run.start) / 1000 };
    lastError = sample.at;
  }
  return {
    requests: samples.length,
    errorsByStatus,
    errorsByAction,
    allowed503,
    inFlightAtKill,
    longestErrorRun: longest,
    recoverySeconds: Math.max(0, (lastError - healedAt) / 1000),
  };
}

// ---------------------------------------------------------------- the drill

const TOOLS: Record<string, string> = { haproxy: 'haproxy', faketime: 'faketime', 'redis-server': 'redis-server', 'redis-cli': 'redis-tools' };

/** On a fresh Debian machine, as root, the drill installs what it runs; elsewhere it says what is missing. */
function installMissingTools(): void {
  const missing = () => Object.keys(TOOLS).filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  const packages = [...new Set(missing().map((tool) => TOOLS[tool]!))];
  if (packages.length === 0) return;
  const canInstall = userInfo().uid === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
  if (!canInstall) throw new Error(`missing: ${missing().join(', ')} (Debian: apt-get install ${packages.join(' ')})`);
  console.log(`installing ${packages.join(' ')} (apt-get) ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const install = spawnSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: 'inherit', env });
  if (install.status !== 0 || missing().length > 0) throw new Error(`could not install ${packages.join(' ')}`);
}

async function main(): Promise<void> {
  installMissingTools();
  console.log('building (npm run build) ...');
  run('npm', ['run', 'build', '--silent']);

  const root = mkdtempSync(join(tmpdir(), 'medspa-drill-'));
  const postgres = new PostgresServer(root, await freePort());
  const redis = new RedisServer(await freePort());
  const ports = [await freePort(), await freePort(), await freePort()];
  const haproxy = new HaProxy(root, await freePort(), ports);
  const instances: Instance[] = [];
  let checker: pg.Client | undefined;
  let stopLoad = false;
  const reports: PhaseReport[] = [];
  try {
    postgres.init();
    postgres.start();
    const admin = new pg.Client({ connectionString: postgres.url.replace('/medspa', '/postgres') });
    await admin.connect();
    await admin.query('CREATE DATABASE medspa');
    await admin.end();
    await redis.start();

    const password = `Drill-${randomBytes(12).toString('hex')}`;
    const adminEmail = 'drill-admin@example.test';
    const env: Record<string, string> = {
      LOG_LEVEL: 'warn',
      JWT_SECRET: randomBytes(32).toString('base64url'),
      ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
      DATABASE_URL: postgres.url,
      DATABASE_POOL_SIZE: '10',
      REDIS_URL: redis.url,
      MEDSPA_ADMIN_EMAIL: adminEmail,
      MEDSPA_ADMIN_PASSWORD: password,
      RATE_LIMIT_ENABLED: 'true',
      // Every client comes through HAProxy from one address: the per-IP budgets are set out of the
      // way; the per-account login budget keeps its default and is what the drill checks is shared.
      RATE_LIMIT_MAX: '10000000',
      RATE_LIMIT_LOGIN_MAX: '10000000',
      RATE_LIMIT_PATIENTS_MAX: '10000000',
      RATE_LIMIT_APPOINTMENTS_MAX: '10000000',
      RATE_LIMIT_RECONCILE_MAX: '10000000',
    };
    const dataDirs = ports.map(() => mkdtempSync(join(root, 'instance-')));
    // Each instance runs as deploy/medspasync-pro@.service would start instance 0N: its command
    // and environment (metrics on 940N included), with the drill's secrets, addresses and budgets.
    const unit = readServiceUnit();
    if (unitScript(unit) !== 'dist/main.js') throw new Error(`the unit runs ${unitScript(unit)}; the drill runs dist/main.js`);
    if (unit.killSignal !== 'SIGTERM') throw new Error(`the unit stops with ${unit.killSignal}; the drill stops with SIGTERM`);
    const instanceEnv = (i: number) => ({ ...unitEnvironment(unit, String(i + 1).padStart(2, '0')), ...env });
    const startAt = (i: number, wrapper: string[] = []) => startInstance(instanceEnv(i), dataDirs[i]!, { built: true, port: ports[i]!, wrapper });
    // One after the other: the first creates the schema and the administrator.
    for (let i = 0; i < 3; i++) instances.push(await startAt(i));
    await haproxy.start();

    const world: World = { base: haproxy.base, adminEmail, password, practitionerIds: [], serviceId: '', patients: [], lastNames: [], acknowledged: [], samples: [] };
    const token = await login(world);
    if (!token) throw new Error('the administrator could not log in');
    for (let i = 0; i < 3; i++) {
      const user = await call(world.base, 'POST', '/v1/users', {
        token,
        body: { email: `practitioner${i}@example.test`, password: `Practitioner-${randomBytes(8).toString('hex')}`, role: 'PRACTITIONER', firstName: 'Pat', lastName: `Practitioner ${'ABC'[i]}` },
      });
      if (user.status !== 201) throw new Error(`creating a practitioner answered ${user.status}: ${JSON.stringify(user.json)}`);
      world.practitionerIds.push((user.json as { id: string }).id);
    }
    const service = await call(world.base, 'POST', '/v1/services', { token, body: { name: 'Hydrafacial', durationMinutes: 30, priceCents: 19900 } });
    if (service.status !== 201) throw new Error(`creating a service answered ${service.status}: ${JSON.stringify(service.json)}`);
    world.serviceId = (service.json as { id: string }).id;
    checker = new pg.Client({ connectionString: postgres.url });
    checker.on('error', () => undefined); // reconnected after the PostgreSQL restart below
    console.log(`drill: HAProxy ${haproxy.base} -> 3 instances, PostgreSQL :${postgres.port}, Redis :${redis.port}, ${CLIENTS} clients`);

    // Staggered: eight logins of one account at the same instant would spend its login budget
    // (5 attempts, reset by each success) before any of them succeeds.
    const load = Array.from({ length: CLIENTS }, (_, i) => sleep(i * 150).then(() => virtualUser(world, i, () => !stopLoad)));

    let observedSkew: number | undefined;
    const restartInstance = async (i: number, wrapper: string[] = []) => {
      await stopInstances([instances[i]!]);
      await portReleased(ports[i]!);
      instances[i] = await startAt(i, wrapper);
    };
    const phases: Array<{ fault: string; outage: boolean; inject: () => Promise<number> }> = [
      { fault: 'baseline', outage: false, inject: async () => now() },
      {
        fault: 'kill',
        outage: false,
        inject: async () => {
          instances[1]!.child.kill('SIGKILL');
          const killedAt = now();
          await sleep(10_000);
          instances[1] = await startAt(1);
          return killedAt; // the others serve at once: recovery is counted from the kill
        },
      },
      {
        fault: 'postgres',
        outage: true,
        inject: async () => {
          postgres.restart();
          return now();
        },
      },
      {
        fault: 'redis',
        outage: true,
        inject: async () => {
          await redis.stop();
          await redis.start();
          return now();
        },
      },
      {
        fault: 'redis-down',
        outage: true,
        inject: async () => {
          await redis.stop();
          await sleep(REDIS_DOWN_S * 1000);
          await redis.start();
          return now();
        },
      },
      {
        fault: 'clock',
        outage: false,
        inject: async () => {
          await restartInstance(2, ['faketime', '-f', `+${SKEW_S}s`]);
          const skewedAt = now();
          const answer = await fetch(`${instances[2]!.base}/health`);
          observedSkew = (Date.parse(answer.headers.get('date') ?? '') - Date.now()) / 1000;
          await sleep(20_000);
          await restartInstance(2);
          return skewedAt;
        },
      },
    ];

    let checked = 0;
    for (const phase of phases) {
      if (phase.fault !== 'baseline' && !FAULTS.includes(phase.fault)) continue;
      const from = now();
      const healedAt = await phase.inject();
      await sleep(SETTLE_S * 1000);
      const to = now();
      const samples = world.samples.filter((sample) => sample.at >= from && sample.at < to);
      const summary = summarise(samples, healedAt, phase.outage, phase.fault === 'kill' ? healedAt : undefined);

      const checkToken = (await login(world)) ?? '';
      const writes = world.acknowledged.slice(checked);
      checked = world.acknowledged.length;
      const missing = await unreadable(world, writes, checkToken);
      await checker.end().catch(() => undefined);
      checker = new pg.Client({ connectionString: postgres.url });
      checker.on('error', () => undefined);
      await checker.connect();
      const doubles = await doubleBookings(checker);
      const budget = await loginBudgetShared(instances);
      const revocation = await revocationShared(world, instances);

      const unexpected = Object.entries(summary.errorsByStatus).filter(([label]) => label !== '503+Retry-After' || !phase.outage);
      const notes: string[] = [];
      if (missing.length > 0) notes.push(`unreadable: ${missing.slice(0, 5).join(', ')}`);
      if (phase.fault === 'clock') notes.push(`the skewed instance's Date header was ${observedSkew?.toFixed(0)} s ahead`);
      const targetsMet =
        missing.length === 0 &&
        doubles === 0 &&
        budget.shared &&
        revocation.shared &&
        unexpected.every(([label]) => !/^(5\d\d|transport)$/.test(label)) &&
        summary.recoverySeconds < RECOVERY_TARGET_S;
      const report: PhaseReport = {
        fault: phase.fault,
        ...summary,
        unreadableWrites: missing.length,
        doubleBookings: doubles,
        loginBudget: budget.detail,
        revocation: revocation.detail,
        targetsMet,
        notes,
      };
      reports.push(report);
      console.log(
        `\n${phase.fault}: ${report.requests} requests, errors ${JSON.stringify(report.errorsByStatus)}, ` +
          `(${JSON.stringify(report.errorsByAction)}), ` +
          (Object.keys(report.inFlightAtKill).length ? `in flight on the killed instance, not replayable ${JSON.stringify(report.inFlightAtKill)}, ` : '') +
          `longest error run ${report.longestErrorRun.count} (${report.longestErrorRun.seconds.toFixed(1)} s), ` +
          `recovered ${report.recoverySeconds.toFixed(1)} s after healing\n` +
          `  writes acknowledged and checked: ${writes.length}, unreadable ${missing.length}; double bookings ${doubles}; ` +
          `login budget ${budget.shared ? 'shared' : 'NOT shared'} (${budget.detail}); ` +
          `revoked token ${revocation.shared ? 'refused everywhere' : 'NOT refused everywhere'} (${revocation.detail}) ` +
          `=> ${targetsMet ? 'targets met' : 'TARGET MISSED'}${notes.length ? `\n  ${notes.join('; ')}` : ''}`,
      );
    }
    const scraped = await scrapeMetricsForPhi(world, instances.map((_, i) => Number(instanceEnv(i).METRICS_PORT)));
    console.log(`\n/metrics scraped under load from ${scraped.instances} instances: ${scraped.samples} samples, ${scraped.leaks.length} patient names or ids found${scraped.leaks.length ? ` (${scraped.leaks.slice(0, 3).join(', ')})` : ''}`);
    stopLoad = true;
    await Promise.all(load);
    const everything = await unreadable(world, world.acknowledged, (await login(world)) ?? '');
    console.log(`\nall ${world.acknowledged.length} acknowledged writes re-read at the end: ${everything.length} unreadable`);
    console.log(`\n${JSON.stringify({ clients: CLIENTS, redisDownSeconds: REDIS_DOWN_S, skewSeconds: SKEW_S, reports }, null, 2)}`);
    if (everything.length > 0 || scraped.leaks.length > 0 || reports.some((report) => !report.targetsMet)) process.exitCode = 1;
  } finally {
    stopLoad = true;
    await checker?.end().catch(() => undefined);
    haproxy.stop();
    await stopInstances(instances).catch(() => undefined);
    await redis.stop();
    postgres.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

