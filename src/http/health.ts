// Liveness answers from memory (a load balancer polls it often); readiness asks every dependency.
// Features add their own readiness checks (database, Redis, the reconciliation breaker).
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { AppError } from './errors.js';
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
