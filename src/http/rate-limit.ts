// The blueprint's 3.1 rate limits. One onRequest hook, registered before the auth guard, so a
// flood is refused before any token check, API-key lookup or password hash is paid for.
//
// Budgets ("buckets"): every route counts against the overall per-IP budget (`global`) unless it
// belongs to an endpoint with its own, which then replaces the overall one: /vN/auth/login[/...]
// (`login`), /vN/ai/reconcile[/...] (`reconcile`), /vN/patients[/...] (`patients`) and
// /vN/appointments[/...] (`appointments`). Sub-paths and versions share their endpoint's budget.
// A route may name a bucket (`config.rateLimit: { name }`) or opt out (`config.rateLimit: false`:
// /health and /health/ready only). Login is additionally limited per account
// (`consumeLoginAttempt`), so rotating IPs does not help a password-guessing attack.
//
// Counters are fixed windows, checked and incremented in one step: one Lua script in Redis
// (shared by every instance) or one Map operation in process. When Redis is unreachable the
// limiter falls back to per-instance counters, says so loudly once, reports `degraded` in
// /health/ready, and returns to Redis by itself.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import type { RateLimitName, RateLimitRule, RateLimits } from '../config.js';
import { withSystem } from '../db/scope.js';
import { AppError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Counter stores

export interface Hit {
  /** Requests counted in the current window, this one included. */
  count: number;
  /** Milliseconds until the window ends and the count starts again from zero. */
  resetMs: number;
}

export interface CounterStore {
  hit(key: string, windowMs: number): Promise<Hit>;
  reset(key: string): Promise<void>;
}

/**
 * In-process fixed-window counters. Bounded: expired windows are swept periodically, and past
 * `maxKeys` the oldest counter is dropped (that client gets a fresh window, which is the safe
 * direction for memory, not for limits — the bound is far above any real client count).
 */
export class MemoryCounterStore implements CounterStore {
  private readonly counters = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 200_000,
  ) {}

  hitSync(key: string, windowMs: number): Hit {
    const now = this.now();
    let entry = this.counters.get(key);
    if (entry === undefined || entry.resetAt <= now) {
      if (entry === undefined && this.counters.size >= this.maxKeys) this.evict(now);
      entry = { count: 0, resetAt: now + windowMs };
      this.counters.set(key, entry);
    }
    entry.count += 1;
    return { count: entry.count, resetMs: entry.resetAt - now };
  }

  async hit(key: string, windowMs: number): Promise<Hit> {
    return this.hitSync(key, windowMs);
  }

  async reset(key: string): Promise<void> {
    this.counters.delete(key);
  }

  /** Drops expired windows; returns how many remain. */
  sweep(now = this.now()): number {
    for (const [key, entry] of this.counters) if (entry.resetAt <= now) this.counters.delete(key);
    return this.counters.size;
  }

  get size(): number {
    return this.counters.size;
  }

  private evict(now: number): void {
    if (this.sweep(now) < this.maxKeys) return;
    const oldest = this.counters.keys().next();
    if (!oldest.done) this.counters.delete(oldest.value);
  }
}

// INCR and, for a new window, PEXPIRE in one atomic script. PTTL < 0 also repairs a key that
// somehow lost its expiry (it would otherwise block its client forever).
const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
`;

type RedisWithHit = Redis & { rateLimitHit(key: string, windowMs: number): Promise<[number, number]> };

export class RedisCounterStore implements CounterStore {
  private readonly redis: RedisWithHit;

  constructor(
    redis: Redis,
    private readonly prefix = 'medspa:rl:',
  ) {
    if (typeof (redis as unknown as Partial<RedisWithHit>).rateLimitHit !== 'function') {
      redis.defineCommand('rateLimitHit', { numberOfKeys: 1, lua: HIT_SCRIPT }); // EVALSHA, EVAL on NOSCRIPT
    }
    this.redis = redis as unknown as RedisWithHit;
  }

  async hit(key: string, windowMs: number): Promise<Hit> {
    const [count, ttl] = await this.redis.rateLimitHit(this.prefix + key, windowMs);
    return { count: Number(count), resetMs: Number(ttl) };
  }

  async reset(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }
}

/** How long, after a failed Redis call, requests stay on local counters before Redis is tried again. */
const REDIS_RETRY_MS = 2000;

/**
 * Redis while it answers, in-process counters while it doesn't. During an outage each instance
 * enforces the budget on its own (N instances: up to N times the budget), which keeps the API
 * serving and still stops a single-instance flood; counts restart from zero on each side of a
 * switch. One error line per outage, one line when it ends.
 */
export class FailoverCounterStore implements CounterStore {
  private outage = false;
  private retryAt = 0;
  private readonly onReady = () => this.recovered();
  // A deliberate disconnect (shutdown) ends in status 'end'; a lost connection reconnects forever.
  private readonly onClose = () =>
    setImmediate(() => {
      if (this.redis.status !== 'end') this.failed('connection closed');
    });

  constructor(
    private readonly redis: Redis,
    private readonly shared: CounterStore,
    readonly local: MemoryCounterStore,
    private readonly log: FastifyBaseLogger,
    private readonly now: () => number = Date.now,
  ) {
    redis.on('ready', this.onReady);
    redis.on('close', this.onClose);
  }

  /** Before the app disconnects Redis on shutdown: that is not an outage. */
  stop(): void {
    this.redis.off('ready', this.onReady);
    this.redis.off('close', this.onClose);
  }

  /** True while counting locally because Redis is unreachable. */
  get degraded(): boolean {
    return this.outage || this.redis.status !== 'ready';
  }

  async hit(key: string, windowMs: number): Promise<Hit> {
    if (this.redis.status === 'ready' && (!this.outage || this.now() >= this.retryAt)) {
      // In an outage only the first request after each retry interval probes Redis.
      if (this.outage) this.retryAt = this.now() + REDIS_RETRY_MS;
      try {
        const hit = await this.shared.hit(key, windowMs);
        this.recovered();
        return hit;
      } catch (error) {
        this.failed(error instanceof Error ? error.message : String(error));
        this.retryAt = this.now() + REDIS_RETRY_MS;
      }
    } else if (!this.outage && this.redis.status !== 'ready') {
      this.failed(`connection ${this.redis.status}`);
    }
    return this.local.hitSync(key, windowMs);
  }

  async reset(key: string): Promise<void> {
    await this.local.reset(key);
    if (this.redis.status === 'ready') await this.shared.reset(key).catch(() => undefined);
  }

  private failed(reason: string): void {
    if (this.outage) return;
    this.outage = true;
    this.log.error(
      { reason, component: 'rate-limit' },
      'RATE LIMITS DEGRADED: Redis is unreachable; counting per instance until it returns (each instance now allows the full budget)',
    );
  }

  private recovered(): void {
    if (!this.outage) return;
    this.outage = false;
    this.log.warn({ component: 'rate-limit' }, 'rate limits: Redis is back; counters are shared by all instances again');
  }
}

// ---------------------------------------------------------------------------------------------
// Buckets and clients

/** The budget a path belongs to (see the header comment). */
export function bucketForPath(path: string): RateLimitName {
  const match = /^\/v\d+(\/[^?#]*)/.exec(path);
  if (match === null) return 'global';
  const rest = match[1]!;
  if (/^\/auth\/login(\/|$)/.test(rest)) return 'login';
  if (/^\/ai\/reconcile(\/|$)/.test(rest)) return 'reconcile';
  if (/^\/patients(\/|$)/.test(rest)) return 'patients';
  if (/^\/appointments(\/|$)/.test(rest)) return 'appointments';
  return 'global';
}

/** The bucket for a request, or null for routes that are never limited. */
export function bucketFor(request: FastifyRequest): RateLimitName | null {
  const declared = request.routeOptions.config?.rateLimit;
  if (declared === false) return null;
  if (declared !== undefined) return declared.name;
  const pattern = request.routeOptions.url;
  // Unmatched requests (404s, CORS preflights on the catch-all route) count by their raw path.
  return bucketForPath(pattern === undefined || pattern === '*' ? request.url : pattern);
}

function expandIpv6(ip: string): string[] {
  const [head = '', tail] = ip.split('::');
  const groups = (part: string) =>
    part === '' ? [] : part.split(':').flatMap((group) => (group.includes('.') ? ['0', '0'] : [group]));
  const left = groups(head);
  if (tail === undefined) return left;
  const right = groups(tail);
  return [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
}

/**
 * Who a per-IP budget belongs to: the IPv4 address, or for IPv6 the /64 prefix — one subscriber
 * usually holds a whole /64, and counting single addresses would let it rotate through 2^64 of them.
 */
export function clientKey(ip: string): string {
  const address = ip.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIP(address) !== 6) return address;
  const prefix = expandIpv6(address.toLowerCase())
    .slice(0, 4)
    .map((group) => parseInt(group, 16).toString(16));
  return `${prefix.join(':')}::/64`;
}

/** Accounts are counted by a hash of the normalised email: no addresses in Redis. */
export function accountKey(email: string): string {
  return createHash('sha256').update(email.trim().toLowerCase()).digest('hex').slice(0, 32);
}

// ---------------------------------------------------------------------------------------------
// The limiter

export interface Decision {
  name: RateLimitName;
  rule: RateLimitRule;
  count: number;
  remaining: number;
  /** Whole seconds until the window resets (at least 1). */
  resetSeconds: number;
  allowed: boolean;
  /** The first refused request of this window: the one that gets audited. */
  firstRefusal: boolean;
}

export class RateLimiter {
  /** Requests refused per budget since start, every refusal counted (the metrics read it). */
  readonly refusals = new Map<RateLimitName, number>();

  constructor(
    readonly rules: RateLimits,
    readonly store: CounterStore,
  ) {}

  async consume(name: RateLimitName, subject: string): Promise<Decision> {
    const rule = this.rules[name];
    const { count, resetMs } = await this.store.hit(`${name}:${subject}`, rule.windowMs);
    if (count > rule.max) this.refusals.set(name, (this.refusals.get(name) ?? 0) + 1);
    return {
      name,
      rule,
      count,
      remaining: Math.max(0, rule.max - count),
      resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)),
      allowed: count <= rule.max,
      firstRefusal: count === rule.max + 1,
    };
  }

  reset(name: RateLimitName, subject: string): Promise<void> {
    return this.store.reset(`${name}:${subject}`);
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** null when RATE_LIMIT_ENABLED=false. */
    rateLimiter: RateLimiter | null;
  }
  interface FastifyRequest {
    /** The account whose login budget this request spent (cleared again if the login succeeds). */
    loginAccountKey: string | null;
  }
}

function describeWindow(ms: number): string {
  const minutes = ms / 60_000;
  if (Number.isInteger(minutes / 60) && minutes >= 60) return minutes === 60 ? '1 hour' : `${minutes / 60} hours`;
  if (Number.isInteger(minutes)) return minutes === 1 ? '1 minute' : `${minutes} minutes`;
  return `${Math.round(ms / 1000)} seconds`;
}

/** RateLimit-Limit/-Remaining/-Reset (draft-ietf-httpapi-ratelimit-headers-06, delta seconds)
 *  and the current draft's structured RateLimit-Policy / RateLimit. No X-RateLimit-*. */
export function setRateLimitHeaders(reply: FastifyReply, decision: Decision): void {
  reply.headers(rateLimitHeaders(decision));
}

function rateLimitHeaders(decision: Decision): Record<string, string> {
  const { name, rule, remaining, resetSeconds } = decision;
  return {
    'ratelimit-limit': String(rule.max),
    'ratelimit-remaining': String(remaining),
    'ratelimit-reset': String(resetSeconds),
    'ratelimit-policy': `"${name}";q=${rule.max};w=${Math.ceil(rule.windowMs / 1000)}`,
    ratelimit: `"${name}";r=${remaining};t=${resetSeconds}`,
  };
}

function rateLimited(decision: Decision, scope: 'ip' | 'account'): AppError {
  const { rule, resetSeconds } = decision;
  const message =
    scope === 'account'
      ? 'Too many login attempts for this account, please try again later.'
      : 'Too many requests from this IP, please try again later.';
  const retryAt = new Date(Date.now() + resetSeconds * 1000).toISOString();
  return new AppError(
    'RATE_LIMITED',
    429,
    message,
    [
      { field: 'retryAfter', message: `Retry after ${resetSeconds} seconds (at ${retryAt})` },
      { field: 'limit', message: `${rule.max} requests per ${describeWindow(rule.windowMs)}` },
    ],
    // The refusing budget's own headers: a per-account refusal must not show the per-IP budget.
    { ...rateLimitHeaders(decision), 'retry-after': String(resetSeconds) },
  );
}

/** Fire and forget: a refused request must stay cheap, and a database outage must not turn a
 *  429 into a 503. Only the first refusal per window is written, so a flood can't flood the log. */
function auditRefusal(request: FastifyRequest, decision: Decision, scope: 'ip' | 'account', subject: string): void {
  request.log.warn({ limit: decision.name, scope, max: decision.rule.max }, 'rate limit exceeded');
  const app = request.server;
  withSystem(app.db, (tx) =>
    recordAudit(tx, {
      practiceId: null,
      actorType: 'anonymous',
      actorId: null,
      action: 'rate_limit.exceeded',
      outcome: 'denied',
      ...requestOrigin(request),
      details: {
        limit: decision.name,
        scope,
        max: decision.rule.max,
        windowMs: decision.rule.windowMs,
        ...(scope === 'account' ? { account: subject } : {}),
      },
    }),
  ).catch((error: unknown) => request.log.error({ err: error }, 'could not audit a rate-limit refusal'));
}

/**
 * Per-account login limit. The login handler calls it with the submitted email BEFORE looking the
 * user up or hashing anything; it throws the 429 AppError when the account's budget is spent
 * (whether or not the account exists, so it reveals nothing). No-op when limits are disabled.
 */
export async function consumeLoginAttempt(request: FastifyRequest, email: string): Promise<void> {
  const limiter = request.server.rateLimiter;
  if (limiter === null) return;
  const key = accountKey(email);
  const decision = await limiter.consume('loginAccount', key);
  request.loginAccountKey = key;
  if (decision.allowed) return;
  if (decision.firstRefusal) auditRefusal(request, decision, 'account', email.trim().toLowerCase());
  throw rateLimited(decision, 'account');
}

/** After a successful login the account's owner gets a fresh budget (typos before don't count).
 *  Done automatically for any 2xx answer to a request that called consumeLoginAttempt. */
export async function clearLoginAttempts(request: FastifyRequest, email: string): Promise<void> {
  const limiter = request.server.rateLimiter;
  if (limiter === null) return;
  await limiter.reset('loginAccount', accountKey(email)).catch(() => undefined);
}

export interface RateLimitOptions {
  rules: RateLimits;
  enabled: boolean;
  redis: Redis | null;
  /** Clock for the in-process counters (tests). */
  now?: () => number;
}

/** Resolves when the client is connected, or after `ms` (then the first request reports the outage). */
function readyWithin(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    redis.on('ready', done);
  });
}

/** Registers the hook; call after request context and error handling, before the auth guard. */
export async function registerRateLimits(app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  if (!options.enabled) {
    app.decorate('rateLimiter', null);
    app.log.warn('rate limiting is disabled (RATE_LIMIT_ENABLED=false)');
    return;
  }
  const local = new MemoryCounterStore(options.now);
  const sweeper = setInterval(() => local.sweep(), 60_000);
  sweeper.unref();
  app.addHook('onClose', async () => clearInterval(sweeper));

  let store: CounterStore = local;
  if (options.redis) {
    await readyWithin(options.redis, 2000);
    const failover = new FailoverCounterStore(options.redis, new RedisCounterStore(options.redis), local, app.log, options.now);
    app.addHook('onClose', async () => failover.stop());
    store = failover;
    app.readinessChecks.set('rateLimits', async () =>
      failover.degraded
        ? { ok: true, degraded: true, detail: 'Redis unreachable: counting per instance' }
        : { ok: true },
    );
  }
  const limiter = new RateLimiter(options.rules, store);
  app.decorate('rateLimiter', limiter);
  // The login handler (src/auth/routes.ts) calls this with the submitted email before any lookup.
  if (!app.hasDecorator('loginAttemptGuard')) app.decorate('loginAttemptGuard', consumeLoginAttempt);
  app.decorateRequest('loginAccountKey', null);
  app.addHook('onResponse', async (request, reply) => {
    if (request.loginAccountKey !== null && reply.statusCode < 300) {
      await limiter.reset('loginAccount', request.loginAccountKey).catch(() => undefined);
    }
  });

  app.addHook('onRequest', async (request, reply) => {
    const name = bucketFor(request);
    if (name === null) return;
    const subject = clientKey(request.ip);
    const decision = await limiter.consume(name, subject);
    setRateLimitHeaders(reply, decision);
    if (decision.allowed) return;
    if (decision.firstRefusal) auditRefusal(request, decision, 'ip', subject);
    throw rateLimited(decision, 'ip');
  });
}
