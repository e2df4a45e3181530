// Real server processes for the multi-instance benchmarks (bench:load, bench:events): `src/main.ts`
// started with tsx on a free port, ready once /health/ready answers, request logs written to
// /dev/null (their cost counts, their lines are not kept).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface Instance {
  base: string;
  child: ChildProcess;
  /** What the server printed on stderr so far. */
  stderr(): string;
  /** Started under a wrapper, as its own process group (stopped as a group). */
  grouped: boolean;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitHealthy(base: string, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${stderr()}`);
    try {
      if ((await fetch(`${base}/health/ready`)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`server at ${base} did not become ready:\n${stderr()}`);
}

export interface StartOptions {
  /** Run dist/main.js as `npm start` does (npm run build first), not the sources through tsx. */
  built?: boolean;
  /** Listen on this port (a restarted instance keeps its place behind a load balancer). Default: a free one. */
  port?: number;
  /** A command the server runs under, e.g. ['faketime', '-f', '+20s'] for a skewed clock. */
  wrapper?: string[];
}

export async function startInstance(
  env: Record<string, string>,
  dataDir: string,
  { built = false, port: fixedPort, wrapper = [] }: StartOptions = {},
): Promise<Instance> {
  // A fixed port still held (by a server that outlived its stop) would answer the health check
  // in the new server's place: refuse instead.
  if (fixedPort !== undefined && (await fetch(`http://127.0.0.1:${fixedPort}/health`).then(() => true, () => false))) {
    throw new Error(`port ${fixedPort} is still in use: a previous server on it did not stop`);
  }
  const port = fixedPort ?? (await freePort());
  const node = [process.execPath, ...(built ? ['dist/main.js'] : ['--import', 'tsx', 'src/main.ts'])];
  const [command, ...args] = [...wrapper, ...node] as [string, ...string[]];
  // Under a wrapper (faketime forks the server) the child leads its own process group, so a stop
  // reaches the server too, not only the wrapper (a skewed server would outlive it on its port).
  const child = spawn(command, args, {
    detached: wrapper.length > 0,
    cwd: ROOT,
    // Metrics off unless asked for: instances side by side would all want METRICS_PORT's default.
    env: { ...process.env, ...env, METRICS_PORT: env.METRICS_PORT ?? '0', PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (chunk) => (err += String(chunk)));
  const base = `http://127.0.0.1:${port}`;
  await waitHealthy(base, child, () => err);
  return { base, child, stderr: () => err, grouped: wrapper.length > 0 };
}

/** SIGTERM every instance still running and wait for it to exit. */
export async function stopInstances(instances: Instance[]): Promise<void> {
  const running = instances.filter((instance) => instance.child.exitCode === null && instance.child.signalCode === null);
  for (const instance of running) {
    if (instance.grouped) process.kill(-instance.child.pid!, 'SIGTERM');
    else instance.child.kill('SIGTERM');
  }
  await Promise.all(running.map((instance) => new Promise((resolve) => instance.child.once('exit', resolve))));
}

/** Resident memory of a process in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** Waits until nothing answers on the port (a server stopped as a group may exit after its wrapper). */
export async function portReleased(port: number, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
    if (!(await fetch(`http://127.0.0.1:${port}/health`).then(() => true, () => false))) return;
  }
  throw new Error(`port ${port} still answers ${timeoutMs} ms after its server was stopped`);
}
