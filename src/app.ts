// buildApp(config): the plugins and feature routes, nothing else. Tests drive the result with
// inject(); main.ts adds listening, first start and signals.
import Fastify, { LogController, type FastifyContextConfig, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { readFileSync } from 'node:fs';
import type { DestinationStream } from 'pino';
import { AuditWriter, startAuditSealer } from './audit/audit.js';
import { registerAuthGuard } from './auth/guard.js';
import { keyIdFor, type JwtSecret } from './auth/jwt.js';
import {
  loadRevocations,
  MemoryRevocationStore,
  RedisRevocationStore,
  startRevocationSync,
  type RevocationStore,
} from './auth/revocation.js';
import { connectRedis } from './db/redis.js';
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { migrate } from './db/migrate.js';
import { PhiKeyring } from './db/field-encryption.js';
import { encryptPlaintextPatients } from './patients/encrypt-existing.js';
import { frameworkError, registerErrorHandling } from './http/error-handler.js';
import { acceptOnlyUtf8Json, strictBodyValidators } from './http/validation.js';
import { registerHealth } from './http/health.js';
import { registerRateLimits } from './http/rate-limit.js';
import { clientErrorHandler, registerSecurity, serverOptions, setSecurityHeaders } from './http/security.js';
import { loggerOptions, registerRequestLogging } from './http/logging.js';
import { registerOpenApi } from './http/openapi.js';
import { newRequestId, registerRequestContext } from './http/request-context.js';
import './http/route-config.js';
import { authRoutes } from './auth/routes.js';
import { User } from './auth/user-model.js';
import { apiKeyRoutes } from './auth/api-keys.js';
import { emergencyAccessRoutes } from './auth/emergency-access.js';
import { auditRoutes } from './audit/routes.js';
import { MAX_PATH_SEGMENT, Pagination } from './http/pagination.js';
import { userRoutes } from './users/routes.js';
import { patientRoutes } from './patients/routes.js';
import { patientShapesV1 } from './patients/schema.v1.js';
import { patientShapesV2 } from './patients/schema.v2.js';
import { patientAccessRoutes } from './patients/access.js';
import { registerIdempotency } from './http/idempotency.js';
import { serviceRoutes } from './services/routes.js';
import { appointmentRoutes } from './appointments/routes.js';
import { reportRoutes } from './reports/routes.js';
import { reconcileEngine, reconcileRoutes, type ReconcileRouteOptions } from './reconcile/routes.js';
import { registerVersionHeaders, registerVersionRoutes } from './http/versions.js';
import { EventOutbox } from './events/outbox.js';
import { OutboxRelay } from './events/relay.js';
import { registerWebhooks, type WebhookOptions } from './webhooks/index.js';
import { registerReconciliationJobs } from './reconcile/jobs/index.js';
import { EventStreamHub } from './events/stream.js';
import { eventStreamRoutes } from './events/stream-routes.js';
import { webRoutes } from './web/routes.js';
import { createAppMetrics, registerHttpMetrics, registerServiceMetrics } from './observability/metrics.js';
import { deliveryBacklog } from './webhooks/worker.js';
import type { RateLimitName } from './config.js';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
    config: Config;
    /** Present when REDIS_URL is set. */
    redis: Redis | null;
    auth: AuthContext;
    routeTable: RouteEntry[];
    /** Group-committed audit events of reads (audit/audit.ts). */
    auditWriter: AuditWriter;
    /** Domain events, written in the change's transaction (events/outbox.ts). */
    events: EventOutbox;
    /** Every practice's PHI keys (db/field-encryption.ts). */
    keyring: PhiKeyring;
    /** Orders committed events and announces them to this instance's consumers (events/relay.ts). */
    outboxRelay: OutboxRelay;
  }
}

export interface RouteEntry {
  method: string;
  url: string;
  config: FastifyContextConfig;
}

/** What the auth routes need to issue and check credentials. */
export interface AuthContext {
  signingKid: string;
  signingSecret: string;
  /** Current and previous signing keys by kid: a rotation doesn't log everyone out. */
  verificationKeys: Record<string, JwtSecret>;
  revocations: RevocationStore;
  /** The clock session limits are judged by (AppOptions.now in tests). */
  now: () => number;
}

function authContext(config: Config, redis: Redis | null, now: () => number): AuthContext {
  const signingKid = keyIdFor(config.jwtSecret);
  const verificationKeys: Record<string, JwtSecret> = { [signingKid]: config.jwtSecret };
  if (config.jwtPreviousSecret) verificationKeys[keyIdFor(config.jwtPreviousSecret)] = config.jwtPreviousSecret;
  const memory = new MemoryRevocationStore();
  return {
    signingKid,
    signingSecret: config.jwtSecret,
    verificationKeys,
    revocations: redis ? new RedisRevocationStore(redis, memory) : memory,
    now,
  };
}

export interface AppOptions {
  /** A database opened (and closed) by the caller; otherwise one is opened from config. */
  db?: Database;
  /** Where log lines go (tests capture them); stdout by default. */
  logStream?: DestinationStream;
  /** Clock for version sunset checks, rate-limit windows and session limits (tests). */
  now?: () => number;
  /** Extra plugins registered after the built-in routes (tests use it for probe routes). */
  plugins?: FastifyPluginAsync[];
  /** Reconciliation pool/breaker to use instead of the configured ones (tests inject failures). */
  reconcile?: ReconcileRouteOptions;
  /** Webhook delivery options (tests inject a resolver for the SSRF guard). */
  webhooks?: WebhookOptions;
}

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
const MIGRATION_GUIDE = readFileSync(new URL('../docs/migration.md', import.meta.url), 'utf8');

export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const db =
    options.db ??
    (await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
      connectTimeoutMs: config.databaseConnectTimeoutMs,
    }));
  const ownsDb = options.db === undefined;
  // Before anything serves: a wrong PHI_MASTER_KEY stops the start, keys under a previous master
  // key are re-wrapped, and patients stored before migration 015 are encrypted.
  const keyring = new PhiKeyring(db, {
    masterSecret: config.phi.masterKey,
    previousSecrets: config.phi.previousMasterKeys,
    cacheSeconds: config.phi.dataKeyCacheSeconds,
    openedCacheSize: config.phi.rowCacheSize,
  });
  try {
    await migrate(db);
    await keyring.start();
    await encryptPlaintextPatients(db, keyring);
  } catch (error) {
    if (ownsDb) await db.close();
    throw error;
  }

  const app = Fastify({
    logger: loggerOptions(config, options.logStream),
    genReqId: newRequestId,
    requestIdHeader: false,
    // Fastify's own request lines are off: registerRequestLogging writes one line per request.
    logController: new LogController({ requestIdLogLabel: 'requestId', disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    ...serverOptions(config), // slow-client timeouts; HTTPS when TLS_CERT_FILE/TLS_KEY_FILE are set
    // Requests arriving while closing get the API's own 503 with Retry-After (http/health.ts).
    return503OnClosing: false,
    // A malformed id of any plausible length reaches its route and is the route's 404 (after the
    // credential check); only an absurd segment is refused while routing (414).
    routerOptions: { maxParamLength: MAX_PATH_SEGMENT },
    clientErrorHandler,
    frameworkErrors: (error, request, reply) => {
      setSecurityHeaders(request, reply);
      return frameworkError(error, request, reply);
    },
    schemaController: { compilersFactory: { buildValidator: strictBodyValidators() } },
    ajv: {
      customOptions: {
        allErrors: true,
        removeAdditional: false,
        coerceTypes: 'array',
        useDefaults: true,
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const redis = config.redisUrl ? await connectRedis(config.redisUrl) : null;
  const auth = authContext(config, redis, options.now ?? Date.now);
  await loadRevocations(db, auth.revocations, config.accessTokenTtlSeconds);
  app.decorate('db', db);
  app.decorate('config', config);
  app.decorate('redis', redis);
  app.decorate('auth', auth);
  const auditWriter = new AuditWriter(db);
  app.decorate('auditWriter', auditWriter);
  // Per app, never prom-client's global registry: two apps in one process count separately.
  app.decorate('metrics', createAppMetrics(config.metrics.enabled));
  app.decorate('events', new EventOutbox(config.encryptionKey));
  app.decorate('keyring', keyring);
  const outboxRelay = new OutboxRelay({ db, redis, log: app.log, retentionDays: config.events.retentionDays, ...(options.now ? { now: options.now } : {}) });
  app.decorate('outboxRelay', outboxRelay);
  const eventStream = new EventStreamHub({
    db, relay: outboxRelay, outbox: app.events, revocations: auth.revocations, log: app.log, limits: config.events.stream,
    ...(options.now ? { now: options.now } : {}),
  });
  app.decorate('eventStream', eventStream);

  // Every route with what it declared: the authorization test walks this table.
  const routeTable: RouteEntry[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      routeTable.push({ method: String(method), url: route.url, config: (route.config ?? {}) as FastifyContextConfig });
    }
  });
  registerRequestContext(app);
  registerErrorHandling(app);
  acceptOnlyUtf8Json(app);
  registerRequestLogging(app);
  registerHttpMetrics(app);
  registerVersionHeaders(app, config, options.now);
  registerHealth(app, PACKAGE_VERSION);
  app.readinessChecks.set('database', async () => {
    await db.ping();
    return { ok: true };
  });
  if (redis) {
    app.readinessChecks.set('redis', async () => {
      // Redis down is degraded, not fatal: every use of it has a local fallback.
      const up = redis.status === 'ready' && (await redis.ping().then(() => true, () => false));
      return up ? { ok: true } : { ok: true, degraded: true, detail: 'unreachable; using local fallback' };
    });
  }
  // Before the guard: headers on every refusal, and floods refused before any credential check.
  await registerSecurity(app, config);
  await registerRateLimits(app, { rules: config.rateLimits, enabled: config.rateLimitEnabled, redis, now: options.now });
  registerAuthGuard(app, {
    db,
    keys: auth.verificationKeys,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    revocations: auth.revocations,
  });
  await registerOpenApi(app, config);
  app.addSchema(User);
  app.addSchema(Pagination);
  registerVersionRoutes(app, config, MIGRATION_GUIDE, options.now);

  // Idempotency-Key on every authenticated POST (before the routes, so its hooks cover them all).
  registerIdempotency(app, db);

  // Feature routes, each a plugin owning its folder, registered under every version: v2 (beta)
  // serves a twin of every v1 route, so a v2 client never needs /v1 (docs/migration.md). Where a
  // shape differs (patients), the version's schema module maps it from the one stored model.
  // One reconciliation engine serves both: its onClose hook stops the pool and the breaker's monitor.
  const reconcile = reconcileEngine(app, options.reconcile);
  for (const { prefix, patientShapes } of [
    { prefix: '/v1', patientShapes: patientShapesV1 },
    { prefix: '/v2', patientShapes: patientShapesV2 },
  ]) {
    await app.register(authRoutes, { prefix });
    await app.register(apiKeyRoutes, { prefix });
    await app.register(emergencyAccessRoutes, { prefix });
    await app.register(userRoutes, { prefix });
    await app.register(auditRoutes, { prefix });
    await app.register(patientRoutes, { prefix, shapes: patientShapes });
    await app.register(patientAccessRoutes, { prefix, shapes: patientShapes });
    await app.register(serviceRoutes, { prefix });
    await app.register(appointmentRoutes, { prefix });
    await app.register(reportRoutes, { prefix });
    await app.register(reconcileRoutes, { prefix, ...reconcile });
  }
  // /v2/webhooks (v2 only), the fan-out and the delivery worker (src/webhooks/).
  const webhooks = await registerWebhooks(app, options.webhooks);
  // /v2/reconciliations (v2 only): upload, background jobs, review, apply, export (src/reconcile/jobs/, review/, input/, http/).
  const reconciliationJobs = await registerReconciliationJobs(app, reconcile.breaker);
  // /v2/events/stream (v2 only): the real-time stream (src/events/stream*.ts).
  await app.register(eventStreamRoutes, { prefix: '/v2' });
  // /app/reconciliations: the billing manager's review page, static, driving /v2 (src/web/).
  await app.register(webRoutes);

  for (const plugin of options.plugins ?? []) await app.register(plugin);

  const stopQueryMetrics = registerServiceMetrics(app.metrics, {
    database: db,
    redis,
    rateLimiter: app.rateLimiter,
    rateLimitNames: Object.keys(config.rateLimits) as RateLimitName[],
    breakers: [reconcile.breaker],
    reconcilePool: reconcile.pool,
    auditWriter,
    outbox: outboxRelay,
    webhookBacklog: () => deliveryBacklog(db),
    webhookWorker: webhooks.worker,
  });

  const stopSealer = startAuditSealer(db, app.log);
  await outboxRelay.start();
  await eventStream.start();
  // Before the server stops accepting and waits for open connections: streams end with a final
  // event at once, so shutdown never waits SHUTDOWN_GRACE_MS for them.
  app.addHook('preClose', async () => eventStream.stop());
  const stopRevocationSync = startRevocationSync(db, auth.revocations, config.accessTokenTtlSeconds, app.log);
  app.addHook('onClose', async () => {
    stopRevocationSync();
    stopQueryMetrics();
    await webhooks.stop();
    await reconciliationJobs.stop();
    await outboxRelay.stop();
    await auditWriter.flush();
    await stopSealer();
    if (redis) redis.disconnect();
    if (ownsDb) await db.close();
  });

  await app.ready();
  return app;
}
