// Prometheus metrics: one registry per app (tests build many apps in one process, and two apps
// must never count into each other), served by metrics-server.ts on a listener of its own.
//
// Labels only ever hold values from small fixed sets: a route *pattern*, a method, a status code,
// a budget's or a breaker's name, an outcome. Never a path, an id, an email, a token or anything a
// client typed: a label value is kept by every Prometheus server that scrapes it, unredacted.
//
// Most figures are read when scraped (gauges and totals with a collect function), so they cost
// nothing between scrapes; the per-request histogram is the only work on the hot path.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { QueryKind } from '../db/database.js';
import { UNMATCHED_ROUTE } from '../http/logging.js';
import type { BreakerSnapshot, BreakerState } from '../resilience/circuit-breaker.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * This app's metrics. Register more with prom-client, naming this registry:
     * `new Gauge({ name, help, registers: [app.metrics.registry], collect() { … } })`.
     */
    metrics: AppMetrics;
  }
}

export interface AppMetrics {
  readonly registry: Registry;
  /** False when METRICS_PORT=0: nothing is measured per request and nothing is served. */
  readonly enabled: boolean;
  /** prom-client's process metrics (CPU, memory, event loop, GC): added once, by the listener's start. */
  collectProcessMetrics(): void;
}

export function createAppMetrics(enabled: boolean): AppMetrics {
  const registry = new Registry();
  let processMetrics = false;
  return {
    registry,
    enabled,
    collectProcessMetrics() {
      if (processMetrics) return;
      processMetrics = true;
      collectDefaultMetrics({ register: registry });
    },
  };
}

/** Seconds; from 1 ms (a cached read) to the 30 s request deadline. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const QUERY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

interface RequestSeries {
  duration: Histogram.Internal<string>;
  count: Counter.Internal;
}

/**
 * http_request_duration_seconds and http_requests_total by method, route pattern and status.
 * Register next to the request logging, before the routes. The series of each combination are
 * looked up once and kept: prom-client would otherwise hash the label object on every request.
 */
export function registerHttpMetrics(app: FastifyInstance): void {
  if (!app.metrics.enabled) return;
  const labelNames = ['method', 'route', 'status_code'] as const;
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from the request arriving to the response being sent, by route pattern and status',
    labelNames,
    buckets: REQUEST_BUCKETS,
    registers: [app.metrics.registry],
  });
  const count = new Counter({
    name: 'http_requests_total',
    help: 'Requests answered, by route pattern and status',
    labelNames,
    registers: [app.metrics.registry],
  });
  const series = new Map<string, RequestSeries>();
  const seriesFor = (method: string, route: string, status: number): RequestSeries => {
    const key = `${method} ${status} ${route}`;
    let found = series.get(key);
    if (found === undefined) {
      const labels = { method, route, status_code: String(status) };
      found = { duration: duration.labels(labels), count: count.labels(labels) };
      series.set(key, found);
    }
    return found;
  };
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    const seconds = Number(process.hrtime.bigint() - request.startedAt) / 1e9;
    const entry = seriesFor(request.method, routeLabel(request), reply.statusCode);
    entry.duration.observe(seconds);
    entry.count.inc();
    done();
  });
}

/** The route's pattern (`/v1/patients/:id`); one fixed value for whatever matched no route. */
export function routeLabel(request: FastifyRequest): string {
  // A 404 from the not-found handler has no pattern: its raw path is exactly what must not leak.
  return request.is404 ? UNMATCHED_ROUTE : (request.routeOptions.url ?? UNMATCHED_ROUTE);
}

/** What the scrape reads: each part is optional (a disabled worker, no Redis). */
export interface MetricSources {
  database: { kind: string; poolUsage(): { max: number; open: number; inUse: number; waiting: number }; observeQueries(observer: (kind: QueryKind, seconds: number, failed: boolean) => void): () => void };
  redis: { status: string } | null;
  rateLimiter: { refusals: ReadonlyMap<string, number> } | null;
  rateLimitNames: readonly string[];
  breakers: Array<{ name: string; snapshot(): BreakerSnapshot }>;
  reconcilePool: {
    stats(): { size: number; workers: number; busy: number; queued: number; queueLimit: number; completed: number; failed: number; timedOut: number; crashed: number; rejected: number };
  };
  auditWriter: { readonly backlog: number };
  outbox: { backlog(): Promise<{ unsequenced: number; oldestSeconds: number }> };
  webhookBacklog: () => Promise<{ pending: number; oldestSeconds: number }>;
  webhookWorker: { stats(): { inFlight: number; attempts: Readonly<Record<string, number>> } } | null;
}

/** Registers every metric read from the app's parts; returns the stop function for the app's close. */
export function registerServiceMetrics(metrics: AppMetrics, sources: MetricSources): () => void {
  if (!metrics.enabled) return () => {};
  const registers = [metrics.registry];
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers, collect() { this.set(read()); } });

  // Database
  const queryDuration = new Histogram({
    name: 'db_query_duration_seconds',
    help: 'Database round trips: single statements and whole units of work (transactions), by outcome',
    labelNames: ['kind', 'outcome'],
    buckets: QUERY_BUCKETS,
    registers,
  });
  const querySeries = {
    statement: { ok: queryDuration.labels('statement', 'ok'), error: queryDuration.labels('statement', 'error') },
    transaction: { ok: queryDuration.labels('transaction', 'ok'), error: queryDuration.labels('transaction', 'error') },
  };
  const stopObserving = sources.database.observeQueries((kind, seconds, failed) => {
    querySeries[kind][failed ? 'error' : 'ok'].observe(seconds);
  });
  const pool = () => sources.database.poolUsage();
  new Gauge({
    name: 'db_pool_info', help: 'The database driver in use (value is always 1)', labelNames: ['driver'], registers,
    collect() { this.set({ driver: sources.database.kind }, 1); },
  });
  gauge('db_pool_max_connections', 'Most connections the pool may open (PGlite: 1)', () => pool().max);
  gauge('db_pool_open_connections', 'Connections open now', () => pool().open);
  gauge('db_pool_in_use_connections', 'Connections running a unit of work now', () => pool().inUse);
  gauge('db_pool_waiting', 'Units of work waiting for a connection', () => pool().waiting);

  // Redis: only when configured, so an instance without REDIS_URL does not look like an outage.
  const redis = sources.redis;
  if (redis) gauge('redis_up', '1 while the Redis connection is ready, 0 while it is down (local fallbacks in use)', () => (redis.status === 'ready' ? 1 : 0));

  // Rate limits
  totalsCounter(metrics, 'rate_limit_refusals_total', 'Requests refused with 429, by budget', 'limit', sources.rateLimitNames, () =>
    sources.rateLimiter?.refusals ?? new Map(),
  );

  // Circuit breakers
  const states: BreakerState[] = ['CLOSED', 'OPEN', 'HALF_OPEN'];
  new Gauge({
    name: 'circuit_breaker_state', help: '1 for the state each breaker is in, 0 for the others', labelNames: ['breaker', 'state'], registers,
    collect() {
      for (const breaker of sources.breakers) {
        const current = breaker.snapshot().state;
        for (const state of states) this.set({ breaker: breaker.name, state: state.toLowerCase() }, state === current ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'circuit_breaker_consecutive_failures', help: 'Failures in a row counted towards opening the breaker', labelNames: ['breaker'], registers,
    collect() { for (const breaker of sources.breakers) this.set({ breaker: breaker.name }, breaker.snapshot().consecutiveFailures); },
  });

  // Reconciliation worker pool
  const poolStats = () => sources.reconcilePool.stats();
  gauge('reconcile_pool_size', 'Worker threads the pool may run', () => poolStats().size);
  gauge('reconcile_pool_workers', 'Worker threads started and alive', () => poolStats().workers);
  gauge('reconcile_pool_busy', 'Workers running a job now', () => poolStats().busy);
  gauge('reconcile_pool_queued', 'Jobs waiting for a worker', () => poolStats().queued);
  gauge('reconcile_pool_queue_limit', 'Jobs allowed to wait; one more is refused with 503', () => poolStats().queueLimit);
  totalsCounter(metrics, 'reconcile_jobs_total', 'Reconciliation jobs ended, by outcome', 'outcome', ['completed', 'failed', 'timed_out', 'crashed', 'rejected'], () => {
    const stats = poolStats();
    return new Map([
      ['completed', stats.completed], ['failed', stats.failed], ['timed_out', stats.timedOut], ['crashed', stats.crashed], ['rejected', stats.rejected],
    ]);
  });

  // Audit
  gauge('audit_writer_backlog', 'Read-audit events recorded and not yet committed (requests wait for them)', () => sources.auditWriter.backlog);

  // Events and webhooks: backlogs live in the shared database, so every instance reports the same figure.
  const outboxBacklog = oncePerScrape(() => sources.outbox.backlog());
  const webhookBacklog = oncePerScrape(() => sources.webhookBacklog());
  databaseGauge(metrics, 'events_outbox_unsequenced', 'Committed events the relay has not yet given a stream position', async () => (await outboxBacklog()).unsequenced);
  databaseGauge(metrics, 'events_outbox_oldest_unsequenced_seconds', 'Age of the oldest event without a position (0 when none)', async () => (await outboxBacklog()).oldestSeconds);
  databaseGauge(metrics, 'webhook_deliveries_pending', 'Webhook deliveries waiting for an attempt or a retry, every practice', async () => (await webhookBacklog()).pending);
  databaseGauge(metrics, 'webhook_deliveries_oldest_pending_seconds', "Age of the oldest pending delivery's event (0 when none)", async () => (await webhookBacklog()).oldestSeconds);
  const worker = sources.webhookWorker;
  if (worker) {
    gauge('webhook_deliveries_in_flight', 'Webhook requests this instance is sending now', () => worker.stats().inFlight);
    totalsCounter(metrics, 'webhook_delivery_attempts_total', 'Webhook delivery attempts by outcome (retry: failed, tried again later; failed: given up)', 'outcome', ['delivered', 'retry', 'failed'], () =>
      new Map(Object.entries(worker.stats().attempts)),
    );
  }
  return stopObserving;
}

/**
 * A counter mirroring running totals kept by the part itself (the pool, the rate limiter): at each
 * scrape it adds what the totals grew by, so the part needs no knowledge of prom-client.
 */
function totalsCounter(
  metrics: AppMetrics,
  name: string,
  help: string,
  labelName: string,
  knownLabels: readonly string[],
  read: () => ReadonlyMap<string, number>,
): void {
  const reported = new Map<string, number>();
  const counter = new Counter({
    name, help, labelNames: [labelName], registers: [metrics.registry],
    collect() {
      for (const [label, total] of read()) {
        const grown = total - (reported.get(label) ?? 0);
        if (grown > 0) this.inc({ [labelName]: label }, grown);
        reported.set(label, total);
      }
    },
  });
  // Every series exists from the start at 0, so rate() and alerts see the first increase.
  for (const label of knownLabels) counter.inc({ [labelName]: label }, 0);
}

/** One database read shared by the gauges of one scrape (they are collected together). */
function oncePerScrape<T>(read: () => Promise<T>, maxAgeMs = 1000): () => Promise<T> {
  let cached: { at: number; value: Promise<T> } | null = null;
  return () => {
    const now = Date.now();
    if (cached === null || now - cached.at > maxAgeMs) cached = { at: now, value: read() };
    return cached.value;
  };
}

/**
 * A gauge read from the database at scrape time. While the database can't answer it reads NaN
 * (unknown: neither a stale figure nor a reassuring 0) and the rest of the scrape still succeeds;
 * the outage itself shows in db_query_duration_seconds{outcome="error"} and the readiness check.
 */
function databaseGauge(metrics: AppMetrics, name: string, help: string, read: () => Promise<number>): void {
  new Gauge({
    name, help, registers: [metrics.registry],
    async collect() {
      try {
        this.set(await read());
      } catch {
        this.set(Number.NaN);
      }
    },
  });
}
