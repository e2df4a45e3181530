// deploy/: the systemd unit and the HAProxy configuration are run by `npm run drill`, which is not
// part of `npm test`. These checks keep them from rotting between drills: the unit's environment
// passes the production refusals, its stop timeout outlasts the graceful shutdown, and HAProxy
// accepts the configuration the drill derives from the shipped file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  HAPROXY_503_FILE,
  HAPROXY_FILE,
  haproxyConfigForDrill,
  parseServiceUnit,
  readServiceUnit,
  unitEnvironment,
  unitScript,
} from '../bench/deploy-files.js';
import { loadConfig } from '../src/config.js';

const SECRETS = {
  JWT_SECRET: 'deploy-test-jwt-secret-that-is-long-enough-0123456789',
  ENCRYPTION_KEY: 'deploy-test-encryption-key-that-is-long-enough-0123',
  DATABASE_URL: 'postgres://medspa@db.internal:5432/medspa',
};

describe('deploy/medspasync-pro@.service', () => {
  const unit = readServiceUnit();

  test('its environment with the secrets passes every production refusal', () => {
    const config = loadConfig({ ...unitEnvironment(unit, '01'), ...SECRETS });
    assert.equal(config.nodeEnv, 'production');
    assert.equal(config.port, 3001);
    assert.equal(config.host, '127.0.0.1');
    assert.deepEqual({ host: config.metrics.host, port: config.metrics.port }, { host: '127.0.0.1', port: 9401 });
  });

  test('without DATABASE_URL it is refused: the unit never falls back to the embedded database', () => {
    const { DATABASE_URL: _omitted, ...rest } = SECRETS;
    assert.throws(() => loadConfig({ ...unitEnvironment(unit, '01'), ...rest }), /DATABASE_URL/);
  });

  test('instances 01 to 99 get distinct API and metrics ports, never the same one', () => {
    const ports = new Set<number>();
    for (let i = 1; i <= 99; i++) {
      const env = unitEnvironment(unit, String(i).padStart(2, '0'));
      ports.add(Number(env.PORT));
      ports.add(Number(env.METRICS_PORT));
    }
    assert.equal(ports.size, 198);
  });

  test('the unit drains longer than HAProxy takes to notice, and systemd waits out drain and grace before it kills', () => {
    assert.equal(unit.killSignal, 'SIGTERM');
    const config = loadConfig({ ...unitEnvironment(unit, '01'), ...SECRETS });
    // Longer than the drain HAProxy needs to take the instance out (fall 2 x inter 1 s).
    assert.ok(config.shutdownDrainMs > 2000, `SHUTDOWN_DRAIN_MS ${config.shutdownDrainMs}`);
    const stopMs = config.shutdownDrainMs + config.shutdownGraceMs;
    assert.ok(unit.timeoutStopSeconds * 1000 > stopMs, `${unit.timeoutStopSeconds} s vs ${stopMs} ms`);
  });

  test('it starts the built server, as npm start does', () => {
    assert.equal(unitScript(unit), 'dist/main.js');
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
    assert.match(pkg.scripts.start!, /node dist\/main\.js$/);
  });

  test('a unit the drill cannot reproduce exactly is refused, not half-read', () => {
    assert.throws(() => parseServiceUnit('[Service]\nWorkingDirectory=/x\nExecStart=/usr/bin/node a.js\nExecStart=/usr/bin/node b.js\n'), /ExecStart/);
    assert.throws(
      () => parseServiceUnit('[Service]\nWorkingDirectory=/x\nExecStart=/usr/bin/node a.js\nKillSignal=SIGTERM\nTimeoutStopSec=30\nEnvironment="A=1 B=2"\n'),
      /one unquoted NAME=value/,
    );
  });
});

describe('deploy/haproxy.cfg', () => {
  const shipped = readFileSync(HAPROXY_FILE, 'utf8');
  const derive = (text = shipped) => haproxyConfigForDrill(text, { port: 18080, backends: [18081, 18082, 18083], errorFile: '/tmp/503.http' });

  test('the drill changes only the addresses: retries, health checks and the write rule stay as shipped', () => {
    const config = derive();
    assert.match(config, /^frontend api\n {2}bind 127\.0\.0\.1:18080\n/m);
    assert.doesNotMatch(config, /ssl crt|frontend http\n|redirect scheme/);
    assert.deepEqual(config.match(/server api\d 127\.0\.0\.1:\d+ check/g), [
      'server api1 127.0.0.1:18081 check',
      'server api2 127.0.0.1:18082 check',
      'server api3 127.0.0.1:18083 check',
    ]);
    for (const kept of [
      'retry-on conn-failure empty-response junk-response 503',
      'http-request disable-l7-retry if !METH_GET !METH_HEAD !{ req.hdr(idempotency-key) -m found }',
      'option httpchk GET /health/ready',
      'errorfile 503 /tmp/503.http',
    ]) {
      assert.ok(config.includes(kept), kept);
    }
  });

  test('a shipped file whose shape the drill does not know fails loudly', () => {
    assert.throws(() => derive(shipped.replace(/^ {2}errorfile 503 .*\n/m, '')), /errorfile 503/);
    assert.throws(() => derive(shipped.replace('frontend api\n  bind', 'frontend api\n  mode http\n  bind')), /bind/);
  });

  test('the 503 errorfile is a complete HTTP response in the API error envelope, with Retry-After', () => {
    const raw = readFileSync(HAPROXY_503_FILE, 'latin1');
    const [head, body] = raw.split('\r\n\r\n') as [string, string];
    assert.match(head, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(head, /\r\nretry-after: \d+\r\n/i);
    assert.equal(Number(/content-length: (\d+)/i.exec(head)?.[1]), Buffer.byteLength(body, 'latin1'));
    assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'SERVICE_UNAVAILABLE');
  });

  test('HAProxy accepts the configuration the drill runs', () => {
    const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
    assert.equal(haproxy.status, 0, 'haproxy is not installed (Debian: apt-get install haproxy; .ci/run installs it)');
    const dir = mkdtempSync(join(tmpdir(), 'medspa-haproxy-'));
    try {
      const errorFile = join(dir, '503.http');
      writeFileSync(errorFile, readFileSync(HAPROXY_503_FILE));
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, haproxyConfigForDrill(shipped, { port: 18080, backends: [18081, 18082, 18083], errorFile }));
      const check = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
      assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
