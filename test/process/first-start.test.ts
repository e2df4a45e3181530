// First start and configuration errors, seen from outside the process (issue 2, items 2 and 10):
// an empty database gets one practice and its ADMIN; without MEDSPA_ADMIN_* a generated password
// is printed once on the terminal and never reaches the JSON log; with them that admin exists;
// a bad configuration value stops the process with one line naming the variable.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { verifyPassword } from '../../src/auth/passwords.js';
import { openPglite } from '../../src/db/database.js';
import { withSystem } from '../../src/db/scope.js';
import { spawnServer, startServer, tempDir, type ServerHandle } from '../helpers/process.js';

interface StoredUser {
  email: string;
  role: string;
  password_hash: string;
  practice_id: string;
}

async function readPractices(dataDir: string) {
  const db = await openPglite({ dataDir });
  try {
    return await withSystem(db, async (tx) => {
      const practices = await tx.query<{ id: string; name: string; time_zone: string }>(
        'SELECT id, name, time_zone FROM practices',
      );
      const users = await tx.query<StoredUser>('SELECT email, role, password_hash, practice_id FROM users');
      return { practices: practices.rows, users: users.rows };
    });
  } finally {
    await db.close();
  }
}

function jsonLogText(server: ServerHandle): string {
  return server
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .join('\n');
}

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('first start', () => {
  test('without MEDSPA_ADMIN_* a generated password is printed once and never logged', async () => {
    const server = await startServer();
    const stdout = server.stdout();
    assert.match(stdout, /First start: created a practice and its administrator/);
    assert.match(stdout, /Email: +admin@medspa\.local/);
    const password = /Password: +(\S+)/.exec(stdout)?.[1];
    assert.ok(password, `no generated password printed:\n${stdout}`);
    assert.ok(password.length >= 16, 'a generated password is long');

    // The server is in use: make a few requests so there are request log lines to search.
    for (const path of ['/health', '/health/ready', '/versions', '/v1/nowhere']) {
      await (await fetch(`${server.baseUrl}${path}`)).arrayBuffer();
    }
    const exit = await server.stop('SIGTERM');
    assert.equal(exit.code, 0, server.stderr());

    assert.equal(occurrences(server.stdout(), password), 1, 'the password is printed exactly once');
    assert.ok(server.logLines().length >= 4, 'the JSON log has lines to check');
    assert.equal(jsonLogText(server).includes(password), false, 'the generated password reached the JSON log');
    assert.equal(server.stderr().includes(password), false, 'the generated password reached stderr');

    const { practices, users } = await readPractices(server.dataDir!);
    assert.equal(practices.length, 1);
    assert.equal(practices[0]!.time_zone, 'America/New_York');
    assert.equal(users.length, 1);
    assert.equal(users[0]!.email, 'admin@medspa.local');
    assert.equal(users[0]!.role, 'ADMIN');
    assert.equal(users[0]!.practice_id, practices[0]!.id);
    assert.match(users[0]!.password_hash, /^\$argon2id\$/, 'stored as an argon2id hash');
    assert.equal(users[0]!.password_hash.includes(password), false);
    assert.equal(await verifyPassword(users[0]!.password_hash, password), true, 'the printed password is the real one');
  });

  test('with MEDSPA_ADMIN_EMAIL and MEDSPA_ADMIN_PASSWORD that admin is created', async () => {
    const password = 'Correct-Horse-Battery-9';
    const server = await startServer({
      env: {
        MEDSPA_ADMIN_EMAIL: 'Owner@Glow-Clinic.example',
        MEDSPA_ADMIN_PASSWORD: password,
        MEDSPA_PRACTICE_NAME: 'Glow Clinic',
        MEDSPA_PRACTICE_TIME_ZONE: 'America/Los_Angeles',
      },
    });
    assert.match(server.stdout(), /First start/);
    assert.match(server.stdout(), /Email: +owner@glow-clinic\.example/);
    const exit = await server.stop('SIGTERM');
    assert.equal(exit.code, 0, server.stderr());
    assert.equal(server.stdout().includes(password), false, 'a password the operator chose is never echoed');
    assert.equal(server.stderr().includes(password), false);

    const { practices, users } = await readPractices(server.dataDir!);
    assert.deepEqual(
      practices.map((p) => [p.name, p.time_zone]),
      [['Glow Clinic', 'America/Los_Angeles']],
    );
    assert.equal(users.length, 1);
    assert.equal(users[0]!.email, 'owner@glow-clinic.example');
    assert.equal(users[0]!.role, 'ADMIN');
    assert.equal(await verifyPassword(users[0]!.password_hash, password), true);
    assert.equal(await verifyPassword(users[0]!.password_hash, 'wrong-password-123'), false);
  });
});

interface Run {
  name: string;
  variable: string;
  server: ServerHandle;
  exit: { code: number | null; signal: NodeJS.Signals | null };
  dataDir: string;
}

describe('configuration errors stop the process with one line naming the variable', () => {
  // A few representative variables (config.ts's own tests cover every rule); each case is a
  // whole Node process, so the list stays short to keep the suite fast.
  const cases: Array<{ name: string; env: Record<string, string>; variable: string }> = [
    { name: 'PORT=abc', env: { PORT: 'abc' }, variable: 'PORT' },
    { name: 'production without JWT_SECRET', env: { NODE_ENV: 'production' }, variable: 'JWT_SECRET' },
    { name: 'DATABASE_URL that is not PostgreSQL', env: { DATABASE_URL: 'mysql://db/x' }, variable: 'DATABASE_URL' },
    { name: 'MEDSPA_ADMIN_EMAIL not an email', env: { MEDSPA_ADMIN_EMAIL: 'admin' }, variable: 'MEDSPA_ADMIN_EMAIL' },
  ];

  // Started together (after the servers above are done): each only loads the code and reads its environment.
  let runs: Promise<Run[]>;
  before(() => {
    runs = Promise.all(
      cases.map(async (c) => {
        const parent = tempDir('medspa-badconfig-');
        const dataDir = join(parent, 'data');
        // spawnServer sets PORT itself; the case's env wins.
        const server = await spawnServer({ dataDir, env: c.env });
        const exit = await server.waitForExit(30_000);
        return { ...c, server, exit, dataDir };
      }),
    );
  });

  for (const c of cases) {
    test(c.name, async () => {
      const run = (await runs).find((r) => r.name === c.name)!;
      const { server, exit } = run;
      assert.notEqual(exit.code, 0, `must fail, got ${JSON.stringify(exit)}\n${server.stdout()}`);
      assert.equal(exit.signal, null);
      const lines = server.stderr().split('\n').filter((line) => line.trim() !== '');
      assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${server.stderr()}`);
      assert.match(lines[0]!, new RegExp(`\\b${c.variable}\\b`), `the line names ${c.variable}`);
      assert.equal(server.stdout(), '', 'nothing else is printed');
      assert.equal(existsSync(run.dataDir), false, 'a misconfigured process touches no data');
    });
  }
});
