// Process entry: configuration, tracing, build, first start, listen, graceful shutdown.
// The app is imported only after tracing has started (when OTEL_EXPORTER_OTLP_ENDPOINT asks for
// it): instrumentation patches fastify, pg and ioredis as they load, so they must load after it.
import { ConfigError, ConfigRefusals, loadConfig, type Config } from './config.js';
import { listenForBackups } from './db/backup-socket.js';
import type { MetricsServer } from './observability/metrics-server.js';
import { setFlagsFromString } from 'node:v8';

function readConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      const lines = error instanceof ConfigRefusals ? error.refusals.map((refusal) => refusal.message) : [error.message];
      for (const line of lines) process.stderr.write(`Configuration error: ${line}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
}

/**
 * On the embedded database, a young generation of 2 MiB semi-spaces instead of V8's 16: an idle
 * server then holds about 25 MiB less (bench:memory, 257 -> 232 MiB reopening PGlite's data),
 * and PGlite's one-query-at-a-time engine, not the scavenger, limits its throughput. Set before
 * anything big is allocated; an operator's own --max-semi-space-size (NODE_OPTIONS) wins.
 */
function shrinkYoungGenerationForEmbeddedDatabase(config: Config): void {
  const own = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((flag) => flag.includes('semi-space'));
  if (config.databaseUrl !== undefined || own) return;
  // The heap's limits are fixed at start; growth is decided at each scavenge: keep it at its start.
  setFlagsFromString('--semi-space-growth-factor=1');
}

async function main(): Promise<void> {
  const config = readConfigOrExit();
  shrinkYoungGenerationForEmbeddedDatabase(config);
  const { startTracing, tracingRequested } = await import('./observability/tracing.js');
  const stopTracing = tracingRequested() ? await startTracing() : async () => {};
  const { buildApp } = await import('./app.js');
  const { ensureFirstPractice } = await import('./users/first-start.js');
  // Embedded PGlite: claim DATA_DIR before opening it (a second process would corrupt it), and
  // answer `npm run cli -- backup` over the directory's backup socket (db/backup-socket.ts).
  const backups = config.databaseUrl ? null : await listenForBackups(config.dataDir);
  if (!config.databaseUrl) {
    const { initialiseEmbeddedDataDir } = await import('./db/initialise-embedded.js');
    await initialiseEmbeddedDataDir(config.dataDir);
  }
  const app = await buildApp(config);
  backups?.serve(app.db, app.log);

  const firstStart = await ensureFirstPractice(app.db, {
    practiceName: config.practiceName,
    timeZone: config.practiceTimeZone,
    adminEmail: config.adminEmail,
    adminPassword: config.adminPassword,
  });

  let metricsServer: MetricsServer | null = null;
  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    // Past the drain and the grace period we close anyway, so a stuck client can't hold a deploy hostage.
    const force = setTimeout(() => {
      app.log.error('graceful shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownDrainMs + config.shutdownGraceMs + 5000);
    force.unref();
    // First the drain: /health/ready answers 503, so a load balancer takes this instance out
    // (HAProxy: fall 2 x inter 1 s) while every request it still sends is served, not refused.
    app.lifecycle.draining = true;
    if (config.shutdownDrainMs > 0) app.log.info({ signal, drainMs: config.shutdownDrainMs }, 'shutting down: draining (readiness 503)');
    setTimeout(() => closeServer(signal), config.shutdownDrainMs);
  };
  const closeServer = (signal: string) => {
    app.log.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    app.server.closeIdleConnections?.();
    setTimeout(() => app.server.closeAllConnections?.(), config.shutdownGraceMs).unref();
    Promise.all([backups?.close(), app.close()]).then(
      async () => {
        await metricsServer?.close();
        await stopTracing().catch(() => undefined); // the last spans; a collector that is down must not block the exit
        app.log.info('shutdown complete');
        process.exit(0);
      },
      (error: unknown) => {
        app.log.error({ err: error }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  const address = await app.listen({ port: config.port, host: config.host });
  // Started where the server listens, never in buildApp(): tests build many apps in one process.
  if (config.metrics.enabled) {
    const { startMetricsServer } = await import('./observability/metrics-server.js');
    metricsServer = await startMetricsServer(app.metrics, { host: config.metrics.host, port: config.metrics.port, log: app.log }).catch((error: unknown) => {
      throw new Error(`METRICS_PORT: cannot listen on ${config.metrics.host}:${config.metrics.port} (${error instanceof Error ? error.message : String(error)}); set METRICS_PORT to a free port, or 0 to switch metrics off`);
    });
  }
  const base = address.replace('0.0.0.0', 'localhost').replace('[::]', 'localhost');
  const storage = config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `embedded PGlite in ${config.dataDir}`;
  const lines = [
    '',
    `MedSpaSync Pro API listening on ${base}`,
    `  API reference:  ${base}/docs`,
    `  Review page:    ${base}/app/reconciliations`,
    `  OpenAPI:        ${base}/v1/openapi.json`,
    `  Health:         ${base}/health`,
    `  Metrics:        ${config.metrics.enabled ? `http://${config.metrics.host}:${metricsServer?.port}/metrics` : 'off (METRICS_PORT=0)'}`,
    `  Tracing:        ${tracingRequested() ? 'OpenTelemetry, exporting to OTEL_EXPORTER_OTLP_ENDPOINT' : 'off (OTEL_EXPORTER_OTLP_ENDPOINT not set)'}`,
    `  Storage:        ${storage}`,
  ];
  if (firstStart) {
    lines.push('', 'First start: created a practice and its administrator.', `  Email:    ${firstStart.adminEmail}`);
    if (firstStart.generatedPassword) {
      lines.push(
        `  Password: ${firstStart.generatedPassword}`,
        '  (shown only this once; set MEDSPA_ADMIN_PASSWORD before the first start to choose it)',
      );
    } else {
      lines.push('  Password: the value of MEDSPA_ADMIN_PASSWORD');
    }
  }
  lines.push(
    '',
    `Log in:  curl -s -X POST ${base}/v1/auth/login -H 'content-type: application/json' \\`,
    `           -d '{"email":"<admin email>","password":"<password>"}'`,
    '',
  );
  // Printed to the terminal, not the JSON log: the generated password must not be kept in log storage.
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`Failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
