// buildApp(config): the plugins and feature routes, nothing else. Tests drive the result with
// inject(); main.ts adds listening, first start and signals.
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { readFileSync } from 'node:fs';
import type { DestinationStream } from 'pino';
import { startAuditSealer } from './audit/audit.js';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { migrate } from './db/migrate.js';
import { registerErrorHandling } from './http/error-handler.js';
import { registerHealth } from './http/health.js';
import { loggerOptions, registerRequestLogging } from './http/logging.js';
import { registerOpenApi } from './http/openapi.js';
import { newRequestId, registerRequestContext } from './http/request-context.js';
import './http/route-config.js';
import { registerVersionHeaders, registerVersionRoutes } from './http/versions.js';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
    config: Config;
  }
}

export interface AppOptions {
  /** A database opened (and closed) by the caller; otherwise one is opened from config. */
  db?: Database;
  /** Where log lines go (tests capture them); stdout by default. */
  logStream?: DestinationStream;
  /** Clock for version sunset checks (tests). */
  now?: () => number;
  /** Extra plugins registered after the built-in routes (tests use it for probe routes). */
  plugins?: FastifyPluginAsync[];
}

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
const MIGRATION_GUIDE = readFileSync(new URL('../docs/migration.md', import.meta.url), 'utf8');

export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const db =
    options.db ??
    (await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.databasePoolSize }));
  const ownsDb = options.db === undefined;
  try {
    await migrate(db);
  } catch (error) {
    if (ownsDb) await db.close();
    throw error;
  }

  const app = Fastify({
    logger: loggerOptions(config, options.logStream),
    genReqId: newRequestId,
    requestIdHeader: false,
    requestIdLogLabel: 'requestId',
    disableRequestLogging: true,
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 200 },
    ajv: {
      customOptions: {
        allErrors: true,
        removeAdditional: false,
        coerceTypes: 'array',
        useDefaults: true,
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('db', db);
  app.decorate('config', config);

  registerRequestContext(app);
  registerErrorHandling(app);
  registerRequestLogging(app);
  registerVersionHeaders(app, config, options.now);
  registerHealth(app, PACKAGE_VERSION);
  app.readinessChecks.set('database', async () => {
    await db.ping();
    return { ok: true };
  });
  await registerOpenApi(app, config);
  registerVersionRoutes(app, config, MIGRATION_GUIDE);

  for (const plugin of options.plugins ?? []) await app.register(plugin);

  const stopSealer = startAuditSealer(db, app.log);
  app.addHook('onClose', async () => {
    await stopSealer();
    if (ownsDb) await db.close();
  });

  await app.ready();
  return app;
}
