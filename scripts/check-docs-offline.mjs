// Checks that /docs renders the API reference in a real headless browser with the network off
// (issue 2: "/docs in a headless browser with the network off"). Not part of `npm test`: it needs
// Debian's chromium (apt-get install -y chromium) and takes a few seconds.
//
//   node scripts/check-docs-offline.mjs [--keep] [--screenshot /tmp/docs.png]
//
// What it does:
//   1. starts the real server (node --import tsx src/main.ts) on a free port, with a temp DATA_DIR;
//   2. runs chromium headless with a fresh profile, background networking off, every host name
//      except localhost resolving to nothing, and a NetLog recording every request it makes;
//   3. dumps the rendered DOM of http://127.0.0.1:PORT/docs and checks that the reference shows the
//      API title "MedSpaSync Pro API" in the page body (not just in <title>) and lists operations;
//   4. reads the NetLog and fails if any request went to a host other than 127.0.0.1/localhost;
//   5. saves a screenshot (default /tmp/docs.png) and the rendered DOM next to it (/tmp/docs.html).
// VERBOSE=1 lists every request the page made, and the browser's own background requests.
// Exit code 0 when every check passes, 1 otherwise.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const keep = args.includes('--keep');
const screenshotPath = args.includes('--screenshot') ? args[args.indexOf('--screenshot') + 1] : '/tmp/docs.png';
const domPath = screenshotPath.replace(/\.png$/, '') + '.html';
const CHROMIUM = process.env.CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

const failures = [];
const check = (ok, message) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${message}`);
  if (!ok) failures.push(message);
};

if (!CHROMIUM) {
  console.error('chromium not found: apt-get update && apt-get install -y chromium (or set CHROMIUM=/path/to/chrome)');
  process.exit(1);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const work = mkdtempSync(join(tmpdir(), 'medspa-docs-check-'));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let serverOut = '';
const server = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
  cwd: ROOT,
  env: {
    ...process.env,
    NODE_ENV: 'development',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: join(work, 'data'),
    DATABASE_URL: '',
    REDIS_URL: '',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
server.stdout.on('data', (chunk) => (serverOut += chunk));
server.stderr.on('data', (chunk) => (serverOut += chunk));

function cleanup() {
  if (server.exitCode === null) server.kill('SIGTERM');
  if (!keep) rmSync(work, { recursive: true, force: true });
}
process.on('exit', () => {
  if (server.exitCode === null) server.kill('SIGKILL');
});

async function waitForHealth(timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`server exited early:\n${serverOut}`);
    try {
      const response = await fetch(`${base}/health`);
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`server not healthy within ${timeoutMs} ms:\n${serverOut}`);
}

/** Runs chromium once with a fresh profile and its own NetLog; returns stdout and the log path. */
function runChromium(name, extra) {
  const profile = join(work, `profile-${name}`);
  const netLog = join(work, `netlog-${name}.json`);
  const result = spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-default-apps',
      '--disable-extensions',
      '--disable-domain-reliability',
      '--disable-client-side-phishing-detection',
      '--no-first-run',
      '--no-default-browser-check',
      '--metrics-recording-only',
      '--no-pings',
      '--dns-prefetch-disable',
      `--user-data-dir=${profile}`,
      // "Network off": no name other than localhost resolves, and no proxy is consulted.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
      '--no-proxy-server',
      `--log-net-log=${netLog}`,
      '--net-log-capture-mode=Default',
      '--window-size=1366,900',
      '--virtual-time-budget=15000',
      ...extra,
      `${base}/docs`,
    ],
    { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.error) throw result.error;
  return { stdout: result.stdout, stderr: result.stderr, status: result.status, netLog };
}

/**
 * Every request chromium started, from its NetLog (JSON; may lack its closing after a crash).
 * `initiator` is the origin of the page that asked for it; navigations and the browser's own
 * background traffic (update checks, sign-in, autofill) carry "not an origin" instead.
 */
function requestsIn(netLogPath) {
  if (!existsSync(netLogPath)) return undefined;
  const text = readFileSync(netLogPath, 'utf8').trim();
  let log;
  try {
    log = JSON.parse(text);
  } catch {
    log = JSON.parse(`${text.replace(/,\s*$/, '')}]}`);
  }
  const startJob = log.constants.logEventTypes.URL_REQUEST_START_JOB;
  return (log.events ?? [])
    .filter((event) => event.type === startJob && typeof event.params?.url === 'string')
    .map((event) => ({ url: event.params.url, initiator: event.params.initiator ?? 'not an origin' }));
}

function hostOf(value) {
  try {
    const url = new URL(value.includes('://') ? value : `http://${value}`);
    return url.hostname;
  } catch {
    return value;
  }
}

function visibleText(html) {
  // Everything a reader sees: the body's text, with markup, scripts and styles removed.
  return html
    .replace(/<head[\s\S]*?<\/head>/i, ' ')
    .replace(/<script[\s\S]*?<\/script>/gi, ' ')
    .replace(/<style[\s\S]*?<\/style>/gi, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&nbsp;/g, ' ')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
}

try {
  await waitForHealth();
  console.log(`server up at ${base} (chromium: ${CHROMIUM})`);

  const docs = await fetch(`${base}/docs/`);
  check(docs.ok, `GET /docs/ answers ${docs.status}`);
  const shell = await docs.text();
  const external = [...shell.matchAll(/(?:src|href)=["'](https?:)?\/\/([^/"']+)/g)].map((m) => m[2]).filter((h) => !LOCAL_HOSTS.has(h.split(':')[0]));
  check(external.length === 0, `the /docs HTML references no other host${external.length ? `: ${external.join(', ')}` : ''}`);

  // What the reference must show comes from the API description itself.
  const spec = await (await fetch(`${base}/v1/openapi.json`)).json();
  const tags = (spec.tags ?? []).map((tag) => tag.name);

  const dom = runChromium('dom', ['--dump-dom']);
  check(dom.status === 0, `chromium --dump-dom exited ${dom.status}`);
  writeFileSync(domPath, dom.stdout);
  const text = visibleText(dom.stdout);
  check(spec.info?.title === 'MedSpaSync Pro API', `/v1/openapi.json has the title "${spec.info?.title}"`);
  check(/MedSpaSync Pro API/.test(text), 'the rendered page body shows the API title "MedSpaSync Pro API"');
  check(text.includes(spec.info?.description ?? '\u0000'), `the rendered page shows the description "${spec.info?.description}"`);
  const missingTags = tags.filter((tag) => !text.includes(tag));
  check(tags.length > 0 && missingTags.length === 0, `the navigation lists every tag of the spec (${tags.join(', ')})${missingTags.length ? `; missing: ${missingTags.join(', ')}` : ''}`);
  check(/v1\.0\.0/.test(text), 'the rendered page shows the version v1.0.0');
  // The operations: the reference opens the first tag, so some of their summaries must be on screen.
  const operations = Object.entries(spec.paths ?? {}).flatMap(([path, item]) =>
    Object.entries(item ?? {})
      .filter(([method]) => /^(get|put|post|delete|patch)$/.test(method))
      .map(([method, op]) => ({ method, path, summary: op?.summary })),
  );
  check(operations.length > 0, `/v1/openapi.json describes ${operations.length} operations`);
  const shown = operations.filter((op) => op.summary && text.includes(op.summary));
  check(shown.length > 0, `the rendered reference shows operations (${shown.length} summaries visible${shown[0] ? `, e.g. "${shown[0].method.toUpperCase()} ${shown[0].path}: ${shown[0].summary}"` : ''})`);

  const shot = runChromium('shot', [`--screenshot=${screenshotPath}`, '--hide-scrollbars']);
  check(shot.status === 0 && existsSync(screenshotPath), `screenshot saved to ${screenshotPath}`);

  for (const run of [dom, shot]) {
    const requests = requestsIn(run.netLog);
    const name = run.netLog.split('/').pop();
    check(requests !== undefined && requests.length > 0, `${name}: chromium's NetLog recorded ${requests?.length ?? 0} requests`);
    if (!requests) continue;
    const isLocal = (url) => /^(https?|wss?):/.test(url) && LOCAL_HOSTS.has(hostOf(url));
    const fromPage = requests.filter((r) => r.initiator !== 'not an origin' || isLocal(r.url));
    const background = requests.filter((r) => !fromPage.includes(r));
    check(fromPage.some((r) => r.url === `${base}/v1/openapi.json`), `${name}: the page fetched /v1/openapi.json from the local server`);
    check(fromPage.some((r) => /\.js(\?|$)/.test(r.url)), `${name}: the page loaded its script from the local server`);
    const remote = fromPage.filter((r) => !isLocal(r.url) && !/^(data|blob|about|chrome):/.test(r.url));
    check(remote.length === 0, `${name}: the page made no request to a non-local host${remote.length ? `: ${remote.map((r) => r.url).join(', ')}` : ''}`);
    if (process.env.VERBOSE) {
      console.log(`      page requests:\n${fromPage.map((r) => `        ${r.url}`).join('\n')}`);
      console.log(`      browser background requests (not the page's; unresolvable with the network off):\n${background.map((r) => `        ${r.url.slice(0, 100)}`).join('\n')}`);
    }
  }
} catch (error) {
  failures.push(String(error?.stack ?? error));
  console.error(error);
} finally {
  cleanup();
}

if (failures.length > 0) {
  console.log(`\n${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('\nall checks passed');
process.exit(0);
