// Liveness answers from memory (a load balancer polls it often); readiness asks every dependency.
// Features add their own readiness checks (database, Redis, the reconciliation breaker).
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { AppError, serviceUnavailable } from './errors.js';
import { errorResponses } from './openapi.js';

export interface CheckResult {
  ok: boolean;
  /** Short, safe to show publicly: no hostnames, no driver messages. */
  detail?: string;
  /** Degraded but serving (for example Redis down with a local fallback): reported, not fatal. */
  degraded?: boolean;
}

export type ReadinessCheck = () => Promise<CheckResult>;

declare module 'fastify' {
  interface FastifyInstance {
    readinessChecks: Map<string, ReadinessCheck>;
    /** `draining`: a shutdown has begun; /health/ready answers 503 while requests are still served. */
    lifecycle: { draining: boolean };
  }
}

const CHECK_TIMEOUT_MS = 2000;

async function runCheck(check: ReadinessCheck): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: 'timed out' }), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([check().catch(() => ({ ok: false, detail: 'unreachable' })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const Liveness = Type.Object({ status: Type.Literal('ok'), uptimeSeconds: Type.Number(), version: Type.String() });
const Readiness = Type.Object({
  status: Type.Literal('ready'),
  checks: Type.Record(
    Type.String(),
    Type.Object({ ok: Type.Boolean(), detail: Type.Optional(Type.String()), degraded: Type.Optional(Type.Boolean()) }),
  ),
});

export function registerHealth(app: FastifyInstance, version: string): void {
  app.decorate('readinessChecks', new Map<string, ReadinessCheck>());
  app.decorate('lifecycle', { draining: false });
  refuseWhileClosing(app);

  app.get(
    '/health',
    { schema: { hide: true, response: { 200: Liveness } }, config: { public: true, rateLimit: false } },
    async () => ({ status: 'ok' as const, uptimeSeconds: Math.round(process.uptime()), version }),
  );

  app.get(
    '/health/ready',
    {
      schema: { hide: true, response: { 200: Readiness, ...errorResponses(503) } },
      config: { public: true, rateLimit: false },
    },
    async () => {
      // Draining before a shutdown: the load balancer stops sending here while everything it
      // already sent (and sends until it notices) is still served normally.
      if (app.lifecycle.draining) {
        throw new AppError('SERVICE_UNAVAILABLE', 503, 'Not ready', [{ field: 'server', message: 'shutting down' }], { 'retry-after': '1' });
      }
      const entries = await Promise.all(
        [...app.readinessChecks].map(async ([name, check]) => [name, await runCheck(check)] as const),
      );
      const checks = Object.fromEntries(entries);
      const failing = entries.filter(([, result]) => !result.ok);
      if (failing.length > 0) {
        throw new AppError(
          'SERVICE_UNAVAILABLE',
          503,
          'Not ready',
          failing.map(([name, result]) => ({ field: name, message: result.detail ?? 'failing' })),
          { 'retry-after': '5' },
        );
      }
      return { status: 'ready' as const, checks };
    },
  );
}

/**
 * While the server shuts down, a request that still arrives on a kept-alive connection is refused
 * with a 503 in the error envelope that says when to retry and closes the connection, so a client
 * or a load balancer retries on another instance. (Fastify's own closing 503, return503OnClosing,
 * has neither.) Requests already past this hook finish normally.
 */
function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw serviceUnavailable('SERVICE_UNAVAILABLE', 'The server is shutting down; retry the request', 1);
  });
}
