// The optional Redis connection (REDIS_URL). Rate-limit counters, token revocations and event
// fan-out live there so that any number of instances behave as one; without it they live in
// process. A dropped connection is retried forever in the background; callers decide whether to
// fail open (rate limits) or fall back (revocations are also kept in PostgreSQL).
import type { Redis } from 'ioredis';

/** ioredis loads only when REDIS_URL is set: a single instance without Redis never holds it. */
export async function connectRedis(url: string, onStateChange?: (up: boolean) => void): Promise<Redis> {
  const { Redis: RedisClient } = await import('ioredis');
  const redis = new RedisClient(url, {
    lazyConnect: false,
    enableOfflineQueue: false, // a command while disconnected fails at once instead of queueing
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 1000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  redis.on('ready', () => onStateChange?.(true));
  redis.on('end', () => onStateChange?.(false));
  redis.on('close', () => onStateChange?.(false));
  redis.on('error', () => {}); // reported through state changes and readiness, not as crashes
  return redis;
}
