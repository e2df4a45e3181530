// The reconciliation worker pool: bounded queue, per-job timeout, crash replacement. Fake workers
// (inline code) play the engine for the failure cases; one test runs the real worker through tsx.
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  createReconcilePool,
  defaultPoolSize,
  JobFailedError,
  PoolClosedError,
  PoolSaturatedError,
  PoolTimeoutError,
  WorkerCrashedError,
  WorkerPool,
} from '../../src/reconcile/pool.js';

// A fake engine: answers {threadId, value}; `wait` answers later (async), `spin` blocks the
// thread (like a runaway engine), `exit` kills the thread, `uncaught` throws outside the handler,
// `fail` reports a job error.
const FAKE_WORKER = `
const { parentPort, threadId } = require('node:worker_threads');
parentPort.on('message', ({ id, job }) => {
  const reply = () => parentPort.postMessage({ id, ok: true, result: { threadId, value: job.value }, elapsedMs: 0 });
  if (job.spin) { const end = Date.now() + job.spin; while (Date.now() < end) {} }
  if (job.exit) process.exit(3);
  if (job.uncaught) { setImmediate(() => { throw new Error('boom'); }); return; }
  if (job.fail) return parentPort.postMessage({ id, ok: false, error: { name: 'RangeError', message: 'bad job' }, elapsedMs: 0 });
  if (job.wait) return setTimeout(reply, job.wait);
  reply();
});`;

interface FakeJob {
  value?: number;
  wait?: number;
  spin?: number;
  exit?: boolean;
  uncaught?: boolean;
  fail?: boolean;
}
interface FakeResult {
  threadId: number;
  value?: number;
}

const pools: WorkerPool<unknown, unknown>[] = [];
after(async () => {
  await Promise.all(pools.map((pool) => pool.close()));
});

function fakePool(options: { size?: number; queueLimit?: number; timeoutMs?: number } = {}) {
  let started = 0;
  const pool = new WorkerPool<FakeJob, FakeResult>({
    size: 1,
    queueLimit: 2,
    timeoutMs: 5_000,
    ...options,
    createWorker: () => {
      started += 1;
      return new Worker(FAKE_WORKER, { eval: true });
    },
  });
  pools.push(pool as WorkerPool<unknown, unknown>);
  return { pool, started: () => started };
}

describe('worker pool', () => {
  test('default size leaves one core to the event loop, never less than one worker', () => {
    assert.equal(defaultPoolSize(), Math.max(1, availableParallelism() - 1));
  });

  test('runs jobs on a worker started on first use, and reuses it', async () => {
    const { pool, started } = fakePool();
    assert.equal(pool.stats().workers, 0);
    const first = await pool.run({ value: 1 });
    const second = await pool.run({ value: 2 });
    assert.equal(first.value, 1);
    assert.equal(second.value, 2);
    assert.equal(first.threadId, second.threadId);
    assert.equal(started(), 1);
    assert.equal(pool.stats().completed, 2);
  });

  test('never runs more jobs than workers; extra jobs wait in order', async () => {
    const { pool } = fakePool({ size: 2, queueLimit: 4 });
    const jobs = [1, 2, 3, 4, 5].map((value) => pool.run({ value, wait: 50 }));
    const stats = pool.stats();
    assert.equal(stats.busy, 2);
    assert.equal(stats.queued, 3);
    assert.deepEqual((await Promise.all(jobs)).map((r) => r.value), [1, 2, 3, 4, 5]);
    assert.equal(pool.stats().workers, 2);
  });

  test('a full queue refuses the next job at once with PoolSaturatedError (no unbounded queue)', async () => {
    const { pool } = fakePool({ size: 1, queueLimit: 2 });
    const accepted = [pool.run({ value: 1, wait: 100 }), pool.run({ value: 2 }), pool.run({ value: 3 })];
    assert.throws(() => pool.assertCapacity(), PoolSaturatedError);
    const error = await pool.run({ value: 4 }).catch((e: unknown) => e);
    assert.ok(error instanceof PoolSaturatedError);
    assert.equal(error.queueLimit, 2);
    assert.ok(error.retryAfterSeconds >= 1 && error.retryAfterSeconds <= 60);
    assert.equal(pool.stats().rejected, 1);
    // the accepted ones are unaffected, and capacity comes back
    assert.deepEqual((await Promise.all(accepted)).map((r) => r.value), [1, 2, 3]);
    assert.equal((await pool.run({ value: 5 })).value, 5);
  });

  test('a job running past the timeout is stopped: its worker is terminated and replaced', async () => {
    // 1 s: the queued job's fresh worker must start (and load its code) within the timeout too,
    // which 200 ms did not always allow on a loaded machine.
    const { pool, started } = fakePool({ timeoutMs: 1000 });
    const before = await pool.run({ value: 0 });
    const runaway = pool.run({ spin: 20_000 });
    const waiting = pool.run({ value: 2 }); // queued behind the runaway job
    const error = await runaway.then(
      () => assert.fail('runaway job must not finish'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof PoolTimeoutError);
    // the job queued behind it runs on a fresh worker
    assert.equal((await waiting).value, 2);
    const after = await pool.run({ value: 1 });
    assert.equal(after.value, 1);
    assert.notEqual(after.threadId, before.threadId);
    assert.equal(started(), 2);
    assert.equal(pool.stats().timedOut, 1);
  });

  test('a worker that exits mid-job is replaced; the job fails with WorkerCrashedError', async () => {
    const { pool, started } = fakePool();
    const before = await pool.run({ value: 0 });
    await assert.rejects(pool.run({ exit: true }), WorkerCrashedError);
    const next = await pool.run({ value: 7 });
    assert.equal(next.value, 7);
    assert.notEqual(next.threadId, before.threadId);
    assert.equal(started(), 2);
    assert.equal(pool.stats().crashed, 1);
  });

  test('an uncaught error in a worker is a crash too, and the queue keeps moving', async () => {
    const { pool } = fakePool({ queueLimit: 3 });
    const crashing = pool.run({ uncaught: true });
    const queued = pool.run({ value: 9 });
    await assert.rejects(crashing, (error: unknown) => error instanceof WorkerCrashedError && /Error/.test(error.message));
    assert.equal((await queued).value, 9);
  });

  test('an error thrown by the job is reported as JobFailedError and the worker stays', async () => {
    const { pool, started } = fakePool();
    const error = await pool.run({ fail: true }).catch((e: unknown) => e);
    assert.ok(error instanceof JobFailedError);
    assert.equal(error.errorName, 'RangeError');
    assert.equal((await pool.run({ value: 3 })).value, 3);
    assert.equal(started(), 1);
  });

  test('close() rejects running and waiting jobs and refuses new ones', async () => {
    const { pool } = fakePool({ queueLimit: 2 });
    const running = pool.run({ wait: 10_000 }).catch((e: unknown) => e);
    const waiting = pool.run({ value: 1 }).catch((e: unknown) => e);
    await pool.close();
    assert.ok((await running) instanceof PoolClosedError);
    assert.ok((await waiting) instanceof PoolClosedError);
    await assert.rejects(pool.run({ value: 2 }), PoolClosedError);
    assert.equal(pool.stats().workers, 0);
  });

  test('warm() starts every worker before the first job', async () => {
    const { pool, started } = fakePool({ size: 2 });
    pool.warm();
    assert.equal(pool.stats().workers, 2);
    assert.equal(started(), 2);
  });

  test('the real worker runs the engine from TypeScript source (tsx) and returns plain data', async () => {
    const pool = createReconcilePool({ size: 1, queueLimit: 1, timeoutMs: 60_000 });
    pools.push(pool as WorkerPool<unknown, unknown>);
    const result = await pool.run({
      target: 'PATIENTS',
      practice: [
        { id: 'p1', firstName: 'Elizabeth', lastName: 'Moreno', dateOfBirth: '1985-03-14', email: 'liz.moreno@example.com', phoneNumber: '+14155550123' },
        { id: 'p2', firstName: 'Daniel', lastName: 'Okafor', dateOfBirth: '1979-11-02', email: null, phoneNumber: '+14155550999' },
      ],
      incoming: [{ 'First Name': 'Liz', 'Last Name': 'Moreno', DOB: '03/14/1985', Phone: '(415) 555-0123' }, { note: 42 }, 'not a record'],
      options: { algorithm: 'HYBRID', confidence: 0.8 },
    });
    assert.equal(result.algorithm, 'HYBRID');
    assert.equal(result.matches.length, 1);
    assert.equal(result.matches[0]!.entityId, 'p1');
    assert.deepEqual(result.unmatched, [1, 2]);
  });
});
