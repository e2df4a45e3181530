// The blueprint's circuit breaker (3.2), every transition driven by a fake clock: no sleeps.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CircuitBreaker,
  CircuitOpenError,
  CircuitTimeoutError,
  type BreakerState,
  type BreakerTimers,
  type CircuitBreakerOptions,
} from '../../src/resilience/circuit-breaker.js';

/** A clock whose time moves only when told, firing due timers in order. */
class FakeClock implements BreakerTimers {
  time = 1_000_000;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; every: number | null; fn: () => void }>();

  now = () => this.time;

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + ms, every: null, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  setInterval(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + ms, every: ms, fn });
    return id;
  }
  clearInterval(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by ms, running every timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let due: [number, { at: number; every: number | null; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at)) due = entry;
      if (due === undefined) break;
      const [id, timer] = due;
      this.time = timer.at;
      if (timer.every === null) this.timers.delete(id);
      else timer.at += timer.every;
      timer.fn();
    }
    this.time = end;
  }
}

interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function setup(options: Partial<CircuitBreakerOptions> = {}) {
  const clock = new FakeClock();
  const logs: LogLine[] = [];
  const changes: Array<[BreakerState, BreakerState]> = [];
  const log = (level: string) => (fields: object, msg: string) => logs.push({ level, msg, fields: fields as Record<string, unknown> });
  const breaker = new CircuitBreaker({
    name: 'test',
    now: clock.now,
    timers: clock,
    logger: { info: log('info'), warn: log('warn'), debug: log('debug') },
    onStateChange: (from, to) => changes.push([from, to]),
    ...options,
  });
  return { clock, breaker, logs, changes };
}

const fail = () => Promise.reject(new Error('engine crashed'));
const succeed = () => Promise.resolve('ok');

async function failTimes(breaker: CircuitBreaker, n: number) {
  for (let i = 0; i < n; i += 1) await assert.rejects(breaker.execute(fail), /engine crashed/);
}

describe('circuit breaker', () => {
  test('starts CLOSED with the blueprint thresholds (5 failures, 60 s recovery, 10 s monitor)', () => {
    const { breaker } = setup();
    assert.equal(breaker.state, 'CLOSED');
    assert.equal(breaker.failureThreshold, 5);
    assert.equal(breaker.recoveryTimeoutMs, 60_000);
    assert.equal(breaker.monitorIntervalMs, 10_000);
    breaker.close();
  });

  test('CLOSED passes results and errors through', async () => {
    const { breaker } = setup();
    assert.equal(await breaker.execute(succeed), 'ok');
    await assert.rejects(breaker.execute(fail), /engine crashed/);
    assert.equal(breaker.state, 'CLOSED');
  });

  test('CLOSED -> OPEN after 5 consecutive failures, not 4', async () => {
    const { breaker, changes } = setup();
    await failTimes(breaker, 4);
    assert.equal(breaker.state, 'CLOSED');
    await failTimes(breaker, 1);
    assert.equal(breaker.state, 'OPEN');
    assert.deepEqual(changes, [['CLOSED', 'OPEN']]);
  });

  test('a success resets the count: failures must be consecutive', async () => {
    const { breaker } = setup();
    await failTimes(breaker, 4);
    await breaker.execute(succeed);
    await failTimes(breaker, 4);
    assert.equal(breaker.state, 'CLOSED');
    assert.equal(breaker.snapshot().consecutiveFailures, 4);
  });

  test('OPEN refuses at once without calling the operation, with the time until the trial', async () => {
    const { breaker, clock } = setup();
    await failTimes(breaker, 5);
    clock.advance(15_000);
    let called = false;
    const error = await breaker
      .execute(async () => {
        called = true;
        return 'ran';
      })
      .then(
        () => assert.fail('should refuse'),
        (e: unknown) => e,
      );
    assert.equal(called, false);
    assert.ok(error instanceof CircuitOpenError);
    assert.equal(error.state, 'OPEN');
    assert.equal(error.retryAfterMs, 45_000);
    assert.equal(error.retryAfterSeconds, 45);
    assert.throws(() => breaker.assertAvailable(), CircuitOpenError);
  });

  test('OPEN -> HALF_OPEN by the monitor once the recovery timeout has passed (not before)', async () => {
    const { breaker, clock, changes } = setup();
    await failTimes(breaker, 5);
    clock.advance(59_999);
    // state read by the monitor's own bookkeeping, not by a call
    assert.deepEqual(changes, [['CLOSED', 'OPEN']]);
    clock.advance(10_000); // the next monitor tick after 60 s
    assert.deepEqual(changes, [['CLOSED', 'OPEN'], ['OPEN', 'HALF_OPEN']]);
    assert.equal(breaker.state, 'HALF_OPEN');
  });

  test('a call arriving after the recovery timeout does not wait for the monitor tick', async () => {
    const { breaker, clock } = setup({ monitorIntervalMs: 0 });
    await failTimes(breaker, 5);
    clock.advance(60_000);
    assert.equal(await breaker.execute(succeed), 'ok');
    assert.equal(breaker.state, 'CLOSED');
  });

  test('HALF_OPEN: a successful trial closes the circuit', async () => {
    const { breaker, clock, changes } = setup();
    await failTimes(breaker, 5);
    clock.advance(60_000);
    assert.equal(await breaker.execute(succeed), 'ok');
    assert.equal(breaker.state, 'CLOSED');
    assert.equal(breaker.snapshot().consecutiveFailures, 0);
    assert.deepEqual(changes.at(-1), ['HALF_OPEN', 'CLOSED']);
  });

  test('HALF_OPEN: a failed trial reopens it for another full recovery timeout', async () => {
    const { breaker, clock, changes } = setup();
    await failTimes(breaker, 5);
    clock.advance(60_000);
    await failTimes(breaker, 1);
    assert.equal(breaker.state, 'OPEN');
    assert.deepEqual(changes.at(-1), ['HALF_OPEN', 'OPEN']);
    clock.advance(30_000);
    const error = await breaker.execute(succeed).catch((e: unknown) => e);
    assert.ok(error instanceof CircuitOpenError);
    assert.equal(error.retryAfterSeconds, 30);
    clock.advance(30_000);
    assert.equal(breaker.state, 'HALF_OPEN');
  });

  test('HALF_OPEN lets exactly one trial through; the others are refused while it runs', async () => {
    const { breaker, clock } = setup();
    await failTimes(breaker, 5);
    clock.advance(60_000);
    let finish!: (value: string) => void;
    const trial = breaker.execute(() => new Promise<string>((resolve) => (finish = resolve)));
    const second = await breaker.execute(succeed).catch((e: unknown) => e);
    assert.ok(second instanceof CircuitOpenError);
    assert.equal(second.state, 'HALF_OPEN');
    finish('done');
    assert.equal(await trial, 'done');
    assert.equal(breaker.state, 'CLOSED');
  });

  test('a timeout counts as a failure: 5 hung calls open the circuit', async () => {
    const { breaker, clock } = setup({ callTimeoutMs: 30_000 });
    for (let i = 0; i < 5; i += 1) {
      const call = breaker.execute(() => new Promise<string>(() => {}));
      clock.advance(30_000);
      await assert.rejects(call, CircuitTimeoutError);
    }
    assert.equal(breaker.state, 'OPEN');
  });

  test('errors the caller marks as not failures (load shedding) neither count nor reset', async () => {
    class Saturated extends Error {}
    const { breaker } = setup({ isFailure: (error) => !(error instanceof Saturated) });
    await failTimes(breaker, 4);
    for (let i = 0; i < 10; i += 1) await assert.rejects(breaker.execute(() => Promise.reject(new Saturated())));
    assert.equal(breaker.state, 'CLOSED');
    assert.equal(breaker.snapshot().consecutiveFailures, 4);
    await failTimes(breaker, 1);
    assert.equal(breaker.state, 'OPEN');
  });

  test('a call begun before the circuit opened cannot close it by succeeding late', async () => {
    const { breaker } = setup();
    let finish!: (value: string) => void;
    const slow = breaker.execute(() => new Promise<string>((resolve) => (finish = resolve)));
    await failTimes(breaker, 5);
    finish('late');
    assert.equal(await slow, 'late');
    assert.equal(breaker.state, 'OPEN');
  });

  test('state changes are logged: OPEN as a warning with the retry time, others as info', async () => {
    const { breaker, clock, logs } = setup();
    await failTimes(breaker, 5);
    clock.advance(60_000);
    await breaker.execute(succeed);
    const changes = logs.filter((line) => 'to' in line.fields);
    assert.deepEqual(
      changes.map((line) => [line.level, line.fields.from, line.fields.to]),
      [
        ['warn', 'CLOSED', 'OPEN'],
        ['info', 'OPEN', 'HALF_OPEN'],
        ['info', 'HALF_OPEN', 'CLOSED'],
      ],
    );
    assert.equal(changes[0]!.fields.retryAt, new Date(1_000_000 + 60_000).toISOString());
  });

  test('the monitor logs the state every interval (debug while CLOSED, info otherwise)', async () => {
    const { breaker, clock, logs } = setup();
    clock.advance(20_000);
    assert.equal(logs.filter((line) => line.level === 'debug' && line.msg === 'circuit breaker state').length, 2);
    await failTimes(breaker, 5);
    clock.advance(10_000);
    assert.ok(logs.some((line) => line.level === 'info' && line.msg === 'circuit breaker OPEN'));
  });

  test('close() stops the monitor timer', () => {
    const { breaker, clock } = setup();
    assert.equal(clock.pending, 1);
    breaker.close();
    assert.equal(clock.pending, 0);
  });

  test('rejects nonsense thresholds', () => {
    assert.throws(() => new CircuitBreaker({ name: 'x', failureThreshold: 0 }), RangeError);
    assert.throws(() => new CircuitBreaker({ name: 'x', recoveryTimeoutMs: -1 }), RangeError);
  });
});
