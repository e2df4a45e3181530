// Every request gets a fresh requestId (never taken from the client, so it always names exactly
// one request in the log) and a correlationId that a caller may supply to tie several requests
// of one operation together. Both go back in headers and in every error body.
import { randomFillSync } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestSpans } from '../observability/span-annotation.js';

declare module 'fastify' {
  interface FastifyRequest {
    correlationId: string;
    startedAt: bigint;
  }
}

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

// Two ids per request: drawn from a pool of random bytes refilled 4 KiB at a time, one call into
// the CSPRNG per ~170 ids instead of one per id. Every byte is used once.
const ID_BYTES = 12;
const randomPool = Buffer.alloc(4096);
let poolOffset = randomPool.length;

function randomHex(): string {
  if (poolOffset + ID_BYTES > randomPool.length) {
    randomFillSync(randomPool);
    poolOffset = 0;
  }
  poolOffset += ID_BYTES;
  return randomPool.toString('hex', poolOffset - ID_BYTES, poolOffset);
}

export function newRequestId(): string {
  return `req_${randomHex()}`;
}

export function newCorrelationId(): string {
  return `corr_${randomHex()}`;
}

function correlationIdFor(request: FastifyRequest): string {
  const supplied = request.headers['x-correlation-id'];
  if (typeof supplied === 'string' && CORRELATION_ID.test(supplied)) return supplied;
  return newCorrelationId();
}

/** Sets the ids on the request and the reply; also used for errors raised before any hook ran. */
export function establishRequestContext(request: FastifyRequest, reply: FastifyReply): void {
  // Unset is 0n and '' (the decorators' defaults), or undefined on the bare request Fastify builds
  // for a routing error.
  if (!request.startedAt) request.startedAt = process.hrtime.bigint();
  if (!request.correlationId) request.correlationId = correlationIdFor(request);
  reply.header('x-request-id', request.id);
  reply.header('x-correlation-id', request.correlationId);
}

export function registerRequestContext(app: FastifyInstance): void {
  app.decorateRequest('correlationId', '');
  app.decorateRequest('startedAt', 0n);
  // Hooks that never wait are written with `done` here and in the other http/ hooks: an async hook
  // costs a promise and two microtask turns per request, for nothing.
  app.addHook('onRequest', (request, reply, done) => {
    establishRequestContext(request, reply);
    annotateRequestSpans(request);
    done();
  });
}
