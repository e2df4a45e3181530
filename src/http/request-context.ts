// Every request gets a fresh requestId (never taken from the client, so it always names exactly
// one request in the log) and a correlationId that a caller may supply to tie several requests
// of one operation together. Both go back in headers and in every error body.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    correlationId: string;
    startedAt: bigint;
  }
}

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function newRequestId(): string {
  return `req_${randomBytes(12).toString('hex')}`;
}

function correlationIdFor(request: FastifyRequest): string {
  const supplied = request.headers['x-correlation-id'];
  if (typeof supplied === 'string' && CORRELATION_ID.test(supplied)) return supplied;
  return `corr_${randomBytes(12).toString('hex')}`;
}

/** Sets the ids on the request and the reply; also used for errors raised before any hook ran. */
export function establishRequestContext(request: FastifyRequest, reply: FastifyReply): void {
  if (request.startedAt === 0n) request.startedAt = process.hrtime.bigint();
  if (request.correlationId === '') request.correlationId = correlationIdFor(request);
  reply.header('x-request-id', request.id);
  reply.header('x-correlation-id', request.correlationId);
}

export function registerRequestContext(app: FastifyInstance): void {
  app.decorateRequest('correlationId', '');
  app.decorateRequest('startedAt', 0n);
  app.addHook('onRequest', async (request, reply) => establishRequestContext(request, reply));
}
