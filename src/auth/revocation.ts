// Revoked access tokens (logout) and per-user cut-offs (deactivation, password change): every
// request checks these, so they must be a memory or Redis lookup, never a database query.
// PostgreSQL keeps the durable copy, loaded at start, so a restart forgets nothing.
import type { Redis } from 'ioredis';
import type { Database } from '../db/database.js';
import { withSystem } from '../db/scope.js';

export interface RevocationStore {
  /** Refuse this token id until it would have expired anyway. */
  revokeToken(jti: string, expiresAtSeconds: number): Promise<void>;
  isTokenRevoked(jti: string): Promise<boolean>;
  /** Refuse every token of this user issued before this time (Unix seconds, exclusive). */
  revokeUserTokens(userId: string, issuedBeforeSeconds: number): Promise<void>;
  userCutoff(userId: string): Promise<number | null>;
  /** Both answers for one request, in one round trip where there is one to make. */
  check(jti: string, userId: string): Promise<{ tokenRevoked: boolean; userCutoff: number | null }>;
}

export class MemoryRevocationStore implements RevocationStore {
  private readonly tokens = new Map<string, number>();
  private readonly cutoffs = new Map<string, number>();

  async revokeToken(jti: string, expiresAtSeconds: number) {
    this.tokens.set(jti, expiresAtSeconds);
    this.prune();
  }
  async isTokenRevoked(jti: string) {
    return this.tokens.has(jti);
  }
  async revokeUserTokens(userId: string, cutoff: number) {
    this.cutoffs.set(userId, Math.max(cutoff, this.cutoffs.get(userId) ?? 0));
  }
  async userCutoff(userId: string) {
    return this.cutoffs.get(userId) ?? null;
  }
  async check(jti: string, userId: string) {
    return { tokenRevoked: this.tokens.has(jti), userCutoff: this.cutoffs.get(userId) ?? null };
  }
  private prune() {
    const now = Date.now() / 1000;
    if (this.tokens.size % 1024 !== 0) return;
    for (const [jti, exp] of this.tokens) if (exp < now) this.tokens.delete(jti);
  }
}

export class RedisRevocationStore implements RevocationStore {
  constructor(
    private readonly redis: Redis,
    /** Used while Redis is unreachable, so a revocation is never lost on this instance. */
    private readonly fallback: MemoryRevocationStore,
    private readonly prefix = 'msp:revoked:',
  ) {}

  async revokeToken(jti: string, exp: number) {
    await this.fallback.revokeToken(jti, exp);
    const ttl = Math.max(1, exp - Math.floor(Date.now() / 1000));
    await this.redis.set(`${this.prefix}jti:${jti}`, '1', 'EX', ttl).catch(() => {});
  }
  async isTokenRevoked(jti: string) {
    if (await this.fallback.isTokenRevoked(jti)) return true;
    try {
      return (await this.redis.exists(`${this.prefix}jti:${jti}`)) === 1;
    } catch {
      return false; // the durable copy was loaded at start; this instance's own revocations are in memory
    }
  }
  async revokeUserTokens(userId: string, cutoff: number) {
    await this.fallback.revokeUserTokens(userId, cutoff);
    await this.redis.set(`${this.prefix}user:${userId}`, String(cutoff), 'EX', 86_400).catch(() => {});
  }
  async check(jti: string, userId: string) {
    const local = await this.fallback.check(jti, userId);
    try {
      const results = await this.redis
        .pipeline()
        .exists(`${this.prefix}jti:${jti}`)
        .get(`${this.prefix}user:${userId}`)
        .exec();
      const [exists, cutoff] = (results ?? []).map(([error, value]) => {
        if (error) throw error;
        return value;
      });
      const remote = cutoff === null || cutoff === undefined ? null : Number(cutoff);
      return {
        tokenRevoked: local.tokenRevoked || exists === 1,
        userCutoff: remote === null ? local.userCutoff : Math.max(remote, local.userCutoff ?? 0),
      };
    } catch {
      return local; // Redis unreachable: this instance's own revocations and the durable copy still apply
    }
  }
  async userCutoff(userId: string) {
    const local = await this.fallback.userCutoff(userId);
    try {
      const remote = await this.redis.get(`${this.prefix}user:${userId}`);
      return remote === null ? local : Math.max(Number(remote), local ?? 0);
    } catch {
      return local;
    }
  }
}

/** Writes a revocation to the store and to PostgreSQL (which outlives restarts and Redis). */
export async function persistTokenRevocation(db: Database, store: RevocationStore, jti: string, exp: number) {
  await store.revokeToken(jti, exp);
  await withSystem(db, (tx) =>
    tx.query(
      `INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, to_timestamp($2))
       ON CONFLICT (jti) DO NOTHING`,
      [jti, exp],
    ),
  );
}

/**
 * Every unexpired revocation and user cut-off from PostgreSQL into the store: all of them at start,
 * then (with `since`) those written since, so revocations made by another instance without Redis,
 * or by the operator CLI, reach this one within one sync interval.
 */
export async function loadRevocations(db: Database, store: RevocationStore, maxTokenAgeSeconds: number, since: Date | null = null) {
  await withSystem(db, async (tx) => {
    const tokens = await tx.query<{ jti: string; exp: number }>(
      `SELECT jti, extract(epoch FROM expires_at)::bigint AS exp FROM revoked_access_tokens
        WHERE expires_at > now() AND ($1::timestamptz IS NULL OR revoked_at > $1)`,
      [since],
    );
    for (const row of tokens.rows) await store.revokeToken(row.jti, row.exp);
    const users = await tx.query<{ id: string; cutoff: number }>(
      `SELECT id, extract(epoch FROM tokens_valid_after)::bigint AS cutoff FROM users
        WHERE tokens_valid_after > now() - make_interval(secs => $1)`,
      [maxTokenAgeSeconds],
    );
    for (const row of users.rows) await store.revokeUserTokens(row.id, row.cutoff);
  });
}

/** Re-reads recent revocations from PostgreSQL on an interval; returns a stop function. */
export function startRevocationSync(
  db: Database,
  store: RevocationStore,
  maxTokenAgeSeconds: number,
  log: { warn: (obj: object, msg: string) => void },
  intervalMs = 5000,
): () => void {
  // A margin of a minute covers transactions that began before the last sync and committed after.
  let since = new Date(Date.now() - 60_000);
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    const next = new Date(Date.now() - 60_000);
    loadRevocations(db, store, maxTokenAgeSeconds, since)
      .then(() => {
        since = next;
      })
      .catch((error: unknown) => log.warn({ err: error }, 'revocation sync failed; retrying'))
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
