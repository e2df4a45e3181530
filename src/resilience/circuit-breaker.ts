// The blueprint's circuit breaker (3.2) around a dependency that can fail or hang (the
// reconciliation engine's worker pool). CLOSED counts consecutive failures; at the threshold it
// OPENs and refuses every call at once with a CircuitOpenError that says when to retry. After the
// recovery timeout it goes HALF_OPEN and lets exactly one trial call through: success CLOSEs it,
// failure OPENs it again for another recovery timeout.
//
// The clock and the timers are injected, so tests drive every transition with a fake clock
// instead of sleeping. A monitor timer (every monitorInterval) moves OPEN -> HALF_OPEN when due
// and logs the state; calls also check on arrival, so a caller never waits for the next tick.

export type BreakerState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

export interface BreakerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** The timer functions the breaker uses; tests pass fakes. */
export interface BreakerTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface CircuitBreakerOptions {
  /** Shown in logs and errors. */
  name: string;
  /** Consecutive failures (errors or timeouts) that open the circuit. Blueprint: 5. */
  failureThreshold?: number;
  /** How long the circuit stays OPEN before a HALF_OPEN trial. Blueprint: 60 s. */
  recoveryTimeoutMs?: number;
  /** How often the monitor checks (and logs) the state. Blueprint: 10 s. 0 disables the timer. */
  monitorIntervalMs?: number;
  /** A call still running after this long counts as a failure (its result is dropped). Off by default. */
  callTimeoutMs?: number;
  /** Which errors count as failures; by default every one. Load shedding (a full queue) should not. */
  isFailure?: (error: unknown) => boolean;
  now?: () => number;
  timers?: BreakerTimers;
  logger?: BreakerLogger;
  /** Called after every state change (metrics, tests). */
  onStateChange?: (from: BreakerState, to: BreakerState) => void;
}

/** Thrown without calling the operation while the circuit is OPEN (or a HALF_OPEN trial is running). */
export class CircuitOpenError extends Error {
  constructor(
    readonly breaker: string,
    readonly state: BreakerState,
    /** Milliseconds until a call may be tried again (at least 1 s). */
    readonly retryAfterMs: number,
  ) {
    super(`Circuit ${breaker} is ${state}`);
    this.name = 'CircuitOpenError';
  }

  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}

/** The operation took longer than callTimeoutMs. */
export class CircuitTimeoutError extends Error {
  constructor(
    readonly breaker: string,
    readonly timeoutMs: number,
  ) {
    super(`Call through circuit ${breaker} timed out after ${timeoutMs} ms`);
    this.name = 'CircuitTimeoutError';
  }
}

export interface BreakerSnapshot {
  state: BreakerState;
  consecutiveFailures: number;
  failureThreshold: number;
  /** When the circuit last opened (ms since epoch), null while it has never opened or is CLOSED. */
  openedAt: number | null;
  /** When an OPEN circuit becomes HALF_OPEN, null otherwise. */
  halfOpenAt: number | null;
}

const realTimers: BreakerTimers = {
  setInterval: (fn, ms) => {
    const handle = setInterval(fn, ms);
    handle.unref(); // a monitor must never keep the process alive
    return handle;
  },
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

const silentLogger: BreakerLogger = { info() {}, warn() {}, debug() {} };

export class CircuitBreaker {
  readonly name: string;
  readonly failureThreshold: number;
  readonly recoveryTimeoutMs: number;
  readonly monitorIntervalMs: number;
  private readonly callTimeoutMs: number | undefined;
  private readonly isFailure: (error: unknown) => boolean;
  private readonly now: () => number;
  private readonly timers: BreakerTimers;
  private readonly logger: BreakerLogger;
  private readonly onStateChange: ((from: BreakerState, to: BreakerState) => void) | undefined;

  private current: BreakerState = 'CLOSED';
  private failures = 0;
  private openedAt: number | null = null;
  private trialInFlight = false;
  /** Bumped each time the circuit opens: a call that began before then can't close or reopen it. */
  private generation = 0;
  private monitor: unknown = null;

  constructor(options: CircuitBreakerOptions) {
    this.name = options.name;
    this.failureThreshold = positive(options.failureThreshold ?? 5, 'failureThreshold');
    this.recoveryTimeoutMs = positive(options.recoveryTimeoutMs ?? 60_000, 'recoveryTimeoutMs');
    this.monitorIntervalMs = options.monitorIntervalMs ?? 10_000;
    this.callTimeoutMs = options.callTimeoutMs;
    this.isFailure = options.isFailure ?? (() => true);
    this.now = options.now ?? Date.now;
    this.timers = options.timers ?? realTimers;
    this.logger = options.logger ?? silentLogger;
    this.onStateChange = options.onStateChange;
    if (this.monitorIntervalMs > 0) {
      this.monitor = this.timers.setInterval(() => this.tick(), this.monitorIntervalMs);
    }
  }

  /** The state now (an OPEN circuit whose recovery timeout has passed reports HALF_OPEN). */
  get state(): BreakerState {
    this.checkRecovery();
    return this.current;
  }

  snapshot(): BreakerSnapshot {
    const state = this.state;
    return {
      state,
      consecutiveFailures: this.failures,
      failureThreshold: this.failureThreshold,
      openedAt: this.openedAt,
      halfOpenAt: state === 'OPEN' && this.openedAt !== null ? this.openedAt + this.recoveryTimeoutMs : null,
    };
  }

  /** Milliseconds until an OPEN circuit allows a trial (by the breaker's clock), null when not OPEN. */
  retryAfterMs(): number | null {
    if (this.state !== 'OPEN' || this.openedAt === null) return null;
    return Math.max(0, this.openedAt + this.recoveryTimeoutMs - this.now());
  }

  /**
   * Throws CircuitOpenError if a call made now would be refused. Lets a caller fail fast before
   * doing expensive preparation (loading records) for a call the breaker would refuse anyway.
   */
  assertAvailable(): void {
    const refusal = this.refusal();
    if (refusal) throw refusal;
  }

  /** Runs the operation through the breaker. */
  async execute<T>(operation: () => Promise<T>): Promise<T> {
    const refusal = this.refusal();
    if (refusal) throw refusal;
    const isTrial = this.current === 'HALF_OPEN';
    if (isTrial) this.trialInFlight = true;
    const generation = this.generation;
    let outcome: 'success' | 'failure' | 'neutral' = 'neutral';
    try {
      const result = await this.withTimeout(operation);
      outcome = 'success';
      return result;
    } catch (error) {
      outcome = this.isFailure(error) ? 'failure' : 'neutral';
      throw error;
    } finally {
      if (isTrial) this.trialInFlight = false;
      // A stale call (begun before the circuit last opened) says nothing about the dependency now.
      if (generation === this.generation) {
        if (outcome === 'success') this.onSuccess();
        else if (outcome === 'failure') this.onFailure(isTrial);
      }
    }
  }

  /** The monitor's check: OPEN -> HALF_OPEN when due, and a log line while not CLOSED. */
  tick(): void {
    this.checkRecovery();
    const snapshot = this.snapshot();
    if (snapshot.state === 'CLOSED') {
      this.logger.debug({ breaker: this.name, ...snapshot }, 'circuit breaker state');
    } else {
      this.logger.info({ breaker: this.name, ...snapshot }, `circuit breaker ${snapshot.state}`);
    }
  }

  /** Stops the monitor timer. */
  close(): void {
    if (this.monitor !== null) {
      this.timers.clearInterval(this.monitor);
      this.monitor = null;
    }
  }

  private refusal(): CircuitOpenError | null {
    this.checkRecovery();
    if (this.current === 'OPEN') {
      const due = (this.openedAt ?? this.now()) + this.recoveryTimeoutMs;
      return new CircuitOpenError(this.name, 'OPEN', Math.max(0, due - this.now()));
    }
    if (this.current === 'HALF_OPEN' && this.trialInFlight) {
      // One trial at a time: the others learn the answer a moment later.
      return new CircuitOpenError(this.name, 'HALF_OPEN', 1000);
    }
    return null;
  }

  private checkRecovery(): void {
    if (this.current === 'OPEN' && this.openedAt !== null && this.now() >= this.openedAt + this.recoveryTimeoutMs) {
      this.transition('HALF_OPEN');
    }
  }

  private onSuccess(): void {
    this.failures = 0;
    if (this.current !== 'CLOSED') {
      this.openedAt = null;
      this.transition('CLOSED');
    }
  }

  private onFailure(wasTrial: boolean): void {
    this.failures += 1;
    if (wasTrial || this.current === 'HALF_OPEN') {
      this.open();
    } else if (this.current === 'CLOSED' && this.failures >= this.failureThreshold) {
      this.open();
    }
  }

  private open(): void {
    this.generation += 1;
    this.openedAt = this.now();
    this.transition('OPEN');
  }

  private transition(to: BreakerState): void {
    const from = this.current;
    if (from === to) {
      if (to === 'OPEN') {
        this.logger.warn({ breaker: this.name, from, to, consecutiveFailures: this.failures }, 'circuit breaker stays OPEN');
      }
      return;
    }
    this.current = to;
    const fields = { breaker: this.name, from, to, consecutiveFailures: this.failures };
    if (to === 'OPEN') {
      this.logger.warn({ ...fields, retryAt: new Date((this.openedAt ?? this.now()) + this.recoveryTimeoutMs).toISOString() }, 'circuit breaker OPEN');
    } else {
      this.logger.info(fields, `circuit breaker ${to}`);
    }
    this.onStateChange?.(from, to);
  }

  private withTimeout<T>(operation: () => Promise<T>): Promise<T> {
    const timeoutMs = this.callTimeoutMs;
    if (timeoutMs === undefined) return operation();
    return new Promise<T>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => reject(new CircuitTimeoutError(this.name, timeoutMs)), timeoutMs);
      operation().then(
        (value) => {
          this.timers.clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          this.timers.clearTimeout(timer);
          reject(error);
        },
      );
    });
  }
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`);
  return value;
}
