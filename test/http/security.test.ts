// Transport-level protection as a security specification: headers, CORS, slow clients, deadlines,
// TLS, and a PostgreSQL that goes away under the service and comes back.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { buildApp } from '../../src/app.js';
import { generateApiKey } from '../../src/auth/tokens.js';
import { ConfigError, loadConfig, testConfig } from '../../src/config.js';
import { openPostgres, type Database } from '../../src/db/database.js';
import { openScratchPglite } from '../helpers/databases.js';
import { withSystem } from '../../src/db/scope.js';
import { inlineScriptHashes, serverOptions } from '../../src/http/security.js';
import { startTestApp } from '../helpers/app.js';
import { delay, freePort, tempDir, waitFor } from '../helpers/process.js';

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const probeRoutes: FastifyPluginAsync = async (app) => {
  app.get('/v1/probe/slow', { config: { public: true } }, async (request) => {
    await sleep(Number((request.query as { ms?: string }).ms ?? 1000));
    return { ok: true };
  });
  app.get('/v1/probe/stream', { config: { public: true, requestTimeoutMs: false } }, async () => {
    await sleep(400);
    return { ok: true };
  });
  app.get('/v1/probe/db', { config: { public: true } }, async () => {
    const rows = await withSystem(app.db, async (tx) => (await tx.query<{ one: number }>('SELECT 1 AS one')).rows);
    return { ok: rows[0]?.one === 1 };
  });
};

function assertEnvelope(response: Response, status: number, code: string) {
  assert.equal(response.statusCode, status, response.body);
  const body = response.json() as { error: { code: string; message: string; details: Array<{ field: string; message: string }>; requestId: string } };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code);
  assert.equal(body.error.requestId, response.headers['x-request-id']);
  assert.doesNotMatch(response.body, /\bat .+:\d+:\d+|ECONNREFUSED|127\.0\.0\.1|stack/i, 'no stack traces or driver internals');
  return body.error;
}

const COMMON_HEADERS: Record<string, string | RegExp> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'x-permitted-cross-domain-policies': 'none',
};

function assertSecurityHeaders(response: Response, label: string) {
  for (const [name, expected] of Object.entries(COMMON_HEADERS)) {
    const value = String(response.headers[name]);
    if (typeof expected === 'string') assert.equal(value, expected, `${label}: ${name}`);
    else assert.match(value, expected, `${label}: ${name}`);
  }
  assert.equal(response.headers['x-powered-by'], undefined, label);
}

const db = await openScratchPglite();
after(() => db.close());

describe('security headers', async () => {
  const t = await startTestApp(db, { rateLimitEnabled: true, trustProxy: '127.0.0.1' }, { plugins: [probeRoutes] });
  const app = t.app;

  test('every response carries the security headers: success, 404, 401, 400, 429', async () => {
    const cases: Array<[string, Response]> = [
      ['health', await app.inject({ url: '/health' })],
      ['404', await app.inject({ url: '/nope', remoteAddress: '192.0.2.10' })],
      ['401', await app.inject({ url: '/v1/users', remoteAddress: '192.0.2.10' })],
      ['400', await app.inject({ method: 'POST', url: '/v1/auth/login', payload: '{not json', headers: { 'content-type': 'application/json' }, remoteAddress: '192.0.2.10' })],
      ['docs', await app.inject({ url: '/docs/' })],
    ];
    for (let i = 0; i < 100; i++) await app.inject({ url: '/versions', remoteAddress: '192.0.2.11' });
    cases.push(['429', await app.inject({ url: '/versions', remoteAddress: '192.0.2.11' })]);
    assert.equal(cases.at(-1)![1].statusCode, 429);
    for (const [label, response] of cases) assertSecurityHeaders(response, label);
  });

  test('API responses cannot be rendered, framed or cached: CSP default-src none and Cache-Control no-store', async () => {
    for (const url of ['/health', '/v1/users', '/versions', '/v1/openapi.json']) {
      const response = await app.inject({ url, remoteAddress: '192.0.2.20' });
      assert.equal(response.headers['content-security-policy'], "default-src 'none';base-uri 'none';form-action 'none';frame-ancestors 'none'", url);
      assert.equal(response.headers['cache-control'], 'no-store', url);
    }
  });

  test('no HSTS over plain HTTP, and a client cannot switch it on by sending X-Forwarded-Proto', async () => {
    assert.equal((await app.inject({ url: '/health' })).headers['strict-transport-security'], undefined);
    const spoofed = await app.inject({ url: '/health', remoteAddress: '198.51.100.7', headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(spoofed.headers['strict-transport-security'], undefined);
  });

  test('behind a trusted TLS-terminating proxy, HSTS follows its X-Forwarded-Proto', async () => {
    const viaProxy = await app.inject({ url: '/health', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(viaProxy.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
  });

  test('/docs renders under a CSP that allows its own bundle and exactly its inline start-up script', async () => {
    const page = await app.inject({ url: '/docs/' });
    assert.equal(page.statusCode, 200);
    const csp = String(page.headers['content-security-policy']);
    const scriptSrc = csp.split('; ').find((d) => d.startsWith('script-src '))!;
    assert.ok(scriptSrc, csp);
    assert.doesNotMatch(scriptSrc, /unsafe-inline|unsafe-eval|\*/);
    const inline = [...page.body.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
    assert.ok(inline.length > 0, 'the page has an inline start-up script');
    for (const body of inline) {
      assert.ok(scriptSrc.includes(`'sha256-${createHash('sha256').update(body).digest('base64')}'`), 'its hash is allowed');
    }
    assert.match(csp, /connect-src 'self'/, 'it may fetch /v1/openapi.json');
    assert.match(csp, /frame-ancestors 'none'/);
    const bundle = await app.inject({ url: '/docs/js/scalar.js' });
    assert.equal(bundle.statusCode, 200);
    assert.match(String(bundle.headers['content-type']), /javascript/);
    assert.deepEqual(inlineScriptHashes('<script src="a.js"></script><script>x()</script>'), [
      `'sha256-${createHash('sha256').update('x()').digest('base64')}'`,
    ]);
  });
});

describe('CORS', async () => {
  const closed = await startTestApp(db);
  const open = await startTestApp(db, { corsOrigins: ['https://app.example.com'], rateLimitEnabled: true });
  const preflight = (app: FastifyInstance, origin: string) =>
    app.inject({
      method: 'OPTIONS',
      url: '/v1/patients',
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });

  test('by default no origin gets CORS headers: a foreign web page cannot read API responses', async () => {
    const response = await closed.app.inject({ url: '/health', headers: { origin: 'https://app.example.com' } });
    assert.equal(response.headers['access-control-allow-origin'], undefined);
    assert.equal((await preflight(closed.app, 'https://app.example.com')).headers['access-control-allow-origin'], undefined);
  });

  test('an allowed origin may call the API and read the request id and rate-limit headers', async () => {
    const response = await open.app.inject({ url: '/health', headers: { origin: 'https://app.example.com' } });
    assert.equal(response.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(response.headers['access-control-allow-credentials'], undefined, 'no cookies');
    const exposed = String(response.headers['access-control-expose-headers']);
    for (const name of ['x-request-id', 'x-correlation-id', 'ratelimit-remaining', 'retry-after']) assert.ok(exposed.includes(name), name);
    const answer = await preflight(open.app, 'https://app.example.com');
    assert.equal(answer.statusCode, 204);
    assert.equal(answer.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.match(String(answer.headers['access-control-allow-headers']), /authorization/);
    assert.equal(answer.headers['access-control-max-age'], '600');
    assert.equal(answer.headers['ratelimit-limit'], undefined, 'answered before the limiter: a preflight spends no budget');
  });

  test('with CORS on, an unknown path is still 404 and a wrong method still 405 (the preflight catch-all is no path)', async () => {
    for (const [method, url] of [['GET', '/v1/no-such-endpoint'], ['POST', '/nothing/here']] as const) {
      const response = await open.app.inject({ method, url });
      assert.equal(response.statusCode, 404, `${method} ${url}: ${response.body}`);
    }
    const wrongMethod = await open.app.inject({ method: 'PUT', url: '/health' });
    assert.equal(wrongMethod.statusCode, 405);
    assert.doesNotMatch(String(wrongMethod.headers.allow), /OPTIONS/);
  });

  test('a look-alike origin is not allowed (exact match, no prefixes or subdomains)', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'http://app.example.com', 'https://x.app.example.com', 'null']) {
      const response = await open.app.inject({ url: '/health', headers: { origin } });
      assert.equal(response.headers['access-control-allow-origin'], undefined, origin);
      assert.equal((await preflight(open.app, origin)).headers['access-control-allow-origin'], undefined, origin);
    }
  });

  test('CORS_ORIGINS accepts exact origins only; wildcards and paths stop the start', () => {
    assert.deepEqual(loadConfig({ NODE_ENV: 'test', CORS_ORIGINS: 'https://a.example.com, http://localhost:5173' }).corsOrigins, [
      'https://a.example.com',
      'http://localhost:5173',
    ]);
    assert.deepEqual(loadConfig({ NODE_ENV: 'test' }).corsOrigins, []);
    for (const bad of ['*', 'https://a.example.com/app', 'a.example.com', 'ftp://a.example.com']) {
      assert.throws(
        () => loadConfig({ NODE_ENV: 'test', CORS_ORIGINS: bad }),
        (error: unknown) => error instanceof ConfigError && error.variable === 'CORS_ORIGINS',
        bad,
      );
    }
  });
});

describe('deadlines and slow clients', async () => {
  const t = await startTestApp(db, { requestTimeoutMs: 200, httpHeadersTimeoutMs: 500, httpRequestTimeoutMs: 1000, httpKeepAliveTimeoutMs: 500 }, { plugins: [probeRoutes] });
  const app = t.app;
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const port = Number(new URL(address).port);

  test('a request that outlives its deadline gets 504 with the envelope instead of hanging', async () => {
    const started = Date.now();
    const response = await app.inject({ url: '/v1/probe/slow?ms=800' });
    const elapsed = Date.now() - started;
    const error = assertEnvelope(response, 504, 'GATEWAY_TIMEOUT');
    assert.match(error.message, /may still complete/);
    assert.ok(elapsed < 700, `answered after ${elapsed} ms`);
    await sleep(700); // the abandoned handler finishing later must not crash anything
    assert.equal((await app.inject({ url: '/health' })).statusCode, 200);
  });

  test('routes that stream may opt out of the deadline', async () => {
    assert.equal((await app.inject({ url: '/v1/probe/stream' })).statusCode, 200);
  });

  /** Opens a raw connection, runs `drive`, and resolves with what the server sent and when it closed. */
  function rawConnection(drive: (socket: Socket) => void): Promise<{ data: string; closedAfterMs: number }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const socket = connect(port, '127.0.0.1');
      let data = '';
      socket.on('data', (chunk) => (data += String(chunk)));
      socket.on('error', () => {});
      socket.on('close', () => resolve({ data, closedAfterMs: Date.now() - started }));
      socket.on('connect', () => drive(socket));
      setTimeout(() => socket.destroy(), 5000).unref();
    });
  }

  test('a slowloris client dribbling headers is cut off after HTTP_HEADERS_TIMEOUT_MS', async () => {
    const result = await rawConnection((socket) => {
      socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n');
      const timer = setInterval(() => socket.writable && socket.write(`X-Slow-${randomBytes(2).toString('hex')}: 1\r\n`), 100);
      socket.on('close', () => clearInterval(timer));
    });
    assert.ok(result.closedAfterMs < 3000, `closed after ${result.closedAfterMs} ms`);
    assert.match(result.data, /^HTTP\/1\.1 408/);
  });

  test('a client trickling its body is cut off after HTTP_REQUEST_TIMEOUT_MS', async () => {
    const result = await rawConnection((socket) => {
      socket.write('POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
      const timer = setInterval(() => socket.writable && socket.write(' '), 100);
      socket.on('close', () => clearInterval(timer));
    });
    assert.ok(result.closedAfterMs < 3500, `closed after ${result.closedAfterMs} ms`);
  });

  test('an idle keep-alive connection is closed after HTTP_KEEP_ALIVE_TIMEOUT_MS', async () => {
    const result = await rawConnection((socket) => socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    assert.match(result.data, /^HTTP\/1\.1 200/);
    assert.ok(result.closedAfterMs >= 400 && result.closedAfterMs < 2500, `closed after ${result.closedAfterMs} ms`);
  });
});

describe('timeout configuration', () => {
  test('every timeout comes from the environment, and a bad one stops the start naming it', () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      REQUEST_TIMEOUT_MS: '5000',
      HTTP_HEADERS_TIMEOUT_MS: '3000',
      HTTP_REQUEST_TIMEOUT_MS: '20000',
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000',
      DATABASE_CONNECT_TIMEOUT_MS: '750',
    });
    assert.deepEqual(
      [config.requestTimeoutMs, config.httpHeadersTimeoutMs, config.httpRequestTimeoutMs, config.httpKeepAliveTimeoutMs, config.databaseConnectTimeoutMs],
      [5000, 3000, 20000, 65000, 750],
    );
    const defaults = loadConfig({ NODE_ENV: 'test' });
    assert.deepEqual(
      [defaults.requestTimeoutMs, defaults.httpHeadersTimeoutMs, defaults.httpRequestTimeoutMs, defaults.httpKeepAliveTimeoutMs, defaults.databaseConnectTimeoutMs],
      [30_000, 10_000, 60_000, 72_000, 2000],
    );
    for (const name of ['REQUEST_TIMEOUT_MS', 'HTTP_HEADERS_TIMEOUT_MS', 'DATABASE_CONNECT_TIMEOUT_MS']) {
      assert.throws(() => loadConfig({ NODE_ENV: 'test', [name]: 'soon' }), (e: unknown) => e instanceof ConfigError && e.variable === name);
    }
  });

  test('the headers timeout never exceeds the request timeout (Node would refuse to start)', () => {
    const options = serverOptions({ httpHeadersTimeoutMs: 90_000, httpRequestTimeoutMs: 60_000, httpKeepAliveTimeoutMs: 72_000, tlsCertFile: undefined, tlsKeyFile: undefined });
    assert.equal(options.http.headersTimeout, 60_000);
    assert.equal(options.http.connectionsCheckingInterval, 1000);
  });
});

describe('native TLS', async () => {
  const dir = tempDir('medspa-tls-');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost',
  ], { stdio: 'ignore' });

  test('TLS_CERT_FILE and TLS_KEY_FILE must come together and name existing files', () => {
    const check = (env: Record<string, string>, variable: string) =>
      assert.throws(() => loadConfig({ NODE_ENV: 'test', ...env }), (e: unknown) => e instanceof ConfigError && e.variable === variable);
    check({ TLS_CERT_FILE: certFile }, 'TLS_KEY_FILE');
    check({ TLS_KEY_FILE: keyFile }, 'TLS_CERT_FILE');
    check({ TLS_CERT_FILE: join(dir, 'missing.pem'), TLS_KEY_FILE: keyFile }, 'TLS_CERT_FILE');
    const config = loadConfig({ NODE_ENV: 'test', TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile });
    assert.equal(config.tlsCertFile, certFile);
  });

  test('with a certificate the API serves HTTPS only, with HSTS and the other security headers', async () => {
    const app = await buildApp(testConfig({ tlsCertFile: certFile, tlsKeyFile: keyFile, rateLimitEnabled: false }), { db });
    after(() => app.close());
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    assert.match(address, /^https:/);
    const response = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = httpsRequest(`${address}/health`, { rejectUnauthorized: false }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += String(chunk)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    assert.equal(response.headers['x-content-type-options'], 'nosniff');
    // Plain HTTP on the TLS port gets no API response.
    const plain = await fetch(address.replace('https:', 'http:') + '/health').then(
      (r) => r.status,
      () => 'refused',
    );
    assert.notEqual(plain, 200);
  });
});

// ---------------------------------------------------------------------------------------------
// PostgreSQL outage: the app talks to PostgreSQL through a TCP proxy the test controls, so the
// database can vanish (connections refused), hang (accepted, never answered) and come back.

class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  mode: 'forward' | 'blackhole' = 'forward';
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    if (this.server !== null) return;
    const server = createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => {});
      if (this.mode === 'blackhole') return; // accept, never answer
      const upstream = connect(this.target.port, this.target.host);
      this.sockets.add(upstream);
      upstream.on('close', () => {
        this.sockets.delete(upstream);
        client.destroy();
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
    this.server = server;
  }

  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.dropConnections();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

describe('PostgreSQL outage', { skip: process.env.DATABASE_URL ? false : 'DATABASE_URL not set' }, async () => {
  const url = process.env.DATABASE_URL;
  if (!url) return;
  const target = new URL(url);
  const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.start();
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = await openPostgres({ connectionString: url, poolSize: 1 });
  await admin.exec(`CREATE SCHEMA ${schema}`);
  const viaProxy = new URL(url);
  viaProxy.port = String(proxy.port);
  const appDb: Database = await openPostgres({
    connectionString: viaProxy.toString(),
    poolSize: 4,
    searchPath: `${schema},public`,
    connectTimeoutMs: 500,
  });
  after(async () => {
    proxy.mode = 'forward';
    await proxy.start().catch(() => undefined);
    await appDb.close().catch(() => undefined);
    await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
    await admin.close();
    await proxy.stop();
  });
  const t = await startTestApp(appDb, {}, { plugins: [probeRoutes] });
  const app = t.app;
  const apiKeyRequest = () => app.inject({ url: '/v1/users', headers: { 'x-api-key': generateApiKey() } });

  test('when PostgreSQL goes away, requests get 503 with the envelope at once, /health/ready says why, and the service recovers by itself', async () => {
    assert.equal((await app.inject({ url: '/v1/probe/db' })).statusCode, 200);
    assert.equal((await apiKeyRequest()).statusCode, 401, 'an unknown key, looked up in the database');

    await proxy.stop(); // connections refused, open ones cut
    for (const request of [() => app.inject({ url: '/v1/probe/db' }), apiKeyRequest]) {
      const started = Date.now();
      const response = await request();
      assertEnvelope(response, 503, 'SERVICE_UNAVAILABLE');
      assert.equal(response.headers['retry-after'], '5');
      assert.ok(Date.now() - started < 1500, `answered after ${Date.now() - started} ms`);
    }
    const ready = await app.inject({ url: '/health/ready' });
    const error = assertEnvelope(ready, 503, 'SERVICE_UNAVAILABLE');
    assert.deepEqual(error.details, [{ field: 'database', message: 'unreachable' }]);
    assert.equal((await app.inject({ url: '/health' })).statusCode, 200, 'liveness stays up: restarting would not help');

    await proxy.start(); // the database is back
    await waitFor('recovery', async () => (await app.inject({ url: '/v1/probe/db' })).statusCode === 200, { timeoutMs: 5000 });
    assert.equal((await app.inject({ url: '/health/ready' })).statusCode, 200);
    assert.equal((await apiKeyRequest()).statusCode, 401);
  });

  test('a database that accepts connections but never answers fails within DATABASE_CONNECT_TIMEOUT_MS, not never', async () => {
    proxy.mode = 'blackhole';
    proxy.dropConnections();
    await delay(50);
    const started = Date.now();
    const response = await app.inject({ url: '/v1/probe/db' });
    const elapsed = Date.now() - started;
    assertEnvelope(response, 503, 'SERVICE_UNAVAILABLE');
    assert.ok(elapsed < 1500, `answered after ${elapsed} ms`);
    proxy.mode = 'forward';
    await waitFor('recovery', async () => (await app.inject({ url: '/v1/probe/db' })).statusCode === 200, { timeoutMs: 5000 });
  });

  test('the outage is in the log for the operator, without driver details in any response', () => {
    const lines = t.logs.filter((line) => line.msg === 'database unavailable');
    assert.ok(lines.length >= 2);
  });
});
