// Process-level test helpers: start the real server (`node --import tsx src/main.ts`) as a child
// process, talk HTTP to it, read what it printed, and stop it with a signal. Every child started
// here is killed when the test file ends, and with SIGKILL if the test process itself exits early.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** SIGKILLs every child still running (synchronous: also safe in an 'exit' handler). */
export function killAllChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

process.once('exit', killAllChildren);

// Registered while the importing test file runs its top level, so it belongs to the file.
after(async () => {
  const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  killAllChildren();
  await Promise.all(running.map((c) => new Promise((resolve) => c.once('exit', resolve))));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed when the test file ends. */
export function tempDir(prefix = 'medspa-proc-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** A TCP port that was free a moment ago (the OS picks it; we release it for the server). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a truthy value or the time is up. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  { timeoutMs = 20_000, intervalMs = 50 } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const suffix = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${suffix}`);
    }
    await delay(intervalMs);
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildHandle {
  child: ChildProcess;
  pid: number;
  /** Everything written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<Exit>;
  isRunning(): boolean;
  /** Waits for the exit, failing after timeoutMs (the process is then SIGKILLed). */
  waitForExit(timeoutMs?: number): Promise<Exit>;
}

export interface SpawnOptions {
  /** Added to the base environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/**
 * The environment a child sees: the parent's PATH/HOME and friends, but none of the settings a
 * developer's shell or CI might carry that would change what is under test.
 */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (
      /^(MEDSPA_|V[12]_|OTEL_|METRICS_)/.test(name) ||
      [
        'DATABASE_URL',
        'REDIS_URL',
        'JWT_SECRET',
        'JWT_PREVIOUS_SECRET',
        'ENCRYPTION_KEY',
        'DATA_DIR',
        'PORT',
        'HOST',
        'LOG_LEVEL',
        'NODE_ENV',
        'NODE_OPTIONS',
        'NODE_TEST_CONTEXT',
        'PUBLIC_BASE_URL',
        'SHUTDOWN_GRACE_MS',
        'TRUST_PROXY',
      ].includes(name)
    ) {
      delete env[name];
    }
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** Spawns `node --import tsx <args>` from the repository root and collects its output. */
export function spawnNode(args: string[], options: SpawnOptions = {}): ChildHandle {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // 'exit' can come before the pipes are drained; wait for 'close' so the output is complete.
  const closed = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const handle: ChildHandle = {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    exited: closed,
    isRunning: () => child.exitCode === null && child.signalCode === null,
    async waitForExit(timeoutMs = 15_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const result = await Promise.race([closed, timeout]);
      clearTimeout(timer);
      if (result === 'timeout') {
        child.kill('SIGKILL');
        await exited;
        throw new Error(
          `process ${child.pid} did not exit within ${timeoutMs} ms\n--- stdout ---\n${out}\n--- stderr ---\n${err}`,
        );
      }
      return result;
    },
  };
  return handle;
}

export interface ServerHandle extends ChildHandle {
  port: number;
  baseUrl: string;
  dataDir: string;
  /** The JSON log lines printed so far (stdout lines that parse as objects). */
  logLines(): Array<Record<string, unknown>>;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

export interface ServerOptions {
  /** Defaults to a fresh temp directory; pass the same one to restart on the same data. */
  dataDir?: string;
  env?: Record<string, string | undefined>;
  /** Node options before the entry point, e.g. ['--import', 'a-bootstrap.ts']. */
  nodeArgs?: string[];
}

/** Spawns the real server on a free port without waiting for it. */
export async function spawnServer(options: ServerOptions = {}): Promise<ServerHandle> {
  const port = await freePort();
  // Always a private directory, even with DATABASE_URL: nothing may land in the repository's ./data.
  const dataDir = options.dataDir ?? tempDir('medspa-data-');
  const handle = spawnNode([...(options.nodeArgs ?? []), 'src/main.ts'], {
    env: {
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      PORT: String(port),
      RATE_LIMIT_ENABLED: 'false',
      DATA_DIR: dataDir,
      // Off unless a test asks: servers started side by side would all want the default 9464.
      METRICS_PORT: '0',
      ...options.env,
    },
  });
  return {
    ...handle,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    dataDir,
    logLines: () => parseLogLines(handle.stdout()),
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      if (handle.isRunning()) handle.child.kill(signal);
      return handle.waitForExit(timeoutMs);
    },
  };
}

export function parseLogLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .flatMap((line) => {
      try {
        const value: unknown = JSON.parse(line);
        return value && typeof value === 'object' ? [value as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
}

/** Resolves once GET /health answers 200; fails fast if the process exits first. */
export async function waitForHealthy(server: ServerHandle, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!server.isRunning()) {
      const exit = await server.exited;
      throw new Error(
        `server exited (code ${exit.code}, signal ${exit.signal}) before becoming healthy\n` +
          `--- stdout ---\n${server.stdout()}\n--- stderr ---\n${server.stderr()}`,
      );
    }
    try {
      const response = await fetch(`${server.baseUrl}/health`, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) {
        await response.arrayBuffer();
        // The banner (and first-start credentials) is written right after listen() resolves.
        await waitFor('the startup banner', () => server.stdout().includes(' listening on '), { timeoutMs: 5_000, intervalMs: 20 });
        return;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      server.child.kill('SIGKILL');
      throw new Error(
        `server not healthy within ${timeoutMs} ms\n--- stdout ---\n${server.stdout()}\n--- stderr ---\n${server.stderr()}`,
      );
    }
    await delay(50);
  }
}

/** Spawns the server and waits until it is healthy. */
export async function startServer(options: ServerOptions = {}): Promise<ServerHandle> {
  const server = await spawnServer(options);
  await waitForHealthy(server);
  return server;
}
