// The outbox relay: gives committed events their stream position (migration 008 explains why that
// happens after commit), lets subscribers fan events out in the same transaction (webhook
// deliveries), tells every instance that new positions exist, and purges events past retention.
//
// Every instance runs one. The commit of an event wakes them all (a NOTIFY from the outbox's
// trigger); one at a time, by an advisory lock, sequences what has committed; the others find the
// lock taken and try again a moment later. "New positions" then travels to every instance by
// PostgreSQL NOTIFY (always: it is sent in the sequencing transaction, so only on commit) and by
// Redis pub/sub when REDIS_URL is set, so one of the two being down delays no stream. A poll every
// second covers a listener that was reconnecting.
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Database, Queryable } from '../db/database.js';
import { statementAsSystem, withSystem } from '../db/scope.js';

const RELAY_LOCK_KEY = 0x6f7574626f78; // "outbox"
const OUTBOX_CHANNEL = 'medspa_outbox';
const SEQUENCED_CHANNEL = 'medspa_outbox_sequenced';
const BATCH = 5000;
const LOCK_RETRY_MS = 20;
const PURGE_EVERY_MS = 3_600_000;
const BACKLOG = `SELECT count(*)::int AS unsequenced,
         coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8 AS oldest_seconds
    FROM outbox_events WHERE position IS NULL`;

/** Positions [from, to] were just given out, inside the sequencing transaction. */
export type SequencedHook = (tx: Queryable, range: { from: number; to: number }) => Promise<void>;

interface Logger {
  error: (obj: object, msg: string) => void;
  info: (obj: object, msg: string) => void;
}

export interface RelayOptions {
  db: Database;
  redis: Redis | null;
  log: Logger;
  retentionDays: number;
  /** The safety-net poll; notifications do the real work. */
  pollMs?: number;
  now?: () => number;
}

export class OutboxRelay {
  private readonly hooks: SequencedHook[] = [];
  private readonly purgeGuards: string[] = [];
  private readonly positions = new EventEmitter();
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private namespace = '';
  private schema = '';
  private readonly stops: Array<() => Promise<void> | void> = [];

  constructor(private readonly options: RelayOptions) {
    this.positions.setMaxListeners(0);
  }

  /** Runs inside every sequencing transaction (webhook fan-out): an error rolls the batch back. */
  onSequenced(hook: SequencedHook): void {
    this.hooks.push(hook);
  }

  /**
   * A SQL condition over the outbox row `o` that keeps it from being purged while true (webhooks:
   * an event with a pending delivery). A constant from code, never input.
   */
  keepWhile(condition: string): void {
    this.purgeGuards.push(condition);
  }

  /**
   * Called whenever positions up to `upTo` may have become readable, from this instance or another
   * (undefined: unknown, e.g. after a reconnect; read from where you are). Returns an unsubscribe.
   */
  onPositions(listener: (upTo: number | undefined) => void): () => void {
    this.positions.on('positions', listener);
    return () => this.positions.off('positions', listener);
  }

  async start(): Promise<void> {
    const { db, redis, log } = this.options;
    const { rows } = await db.query<{ schema: string; database: string }>('SELECT current_schema() AS schema, current_database() AS database');
    this.schema = rows[0]!.schema;
    this.namespace = `${rows[0]!.database}.${this.schema}`;
    // The trigger's payload and ours name the schema: databases sharing a server ignore each other.
    this.stops.push(await db.listen(OUTBOX_CHANNEL, (payload) => payload === this.schema && this.kick(), () => this.kick()));
    this.stops.push(
      await db.listen(
        SEQUENCED_CHANNEL,
        (payload) => {
          const [schema, upTo] = payload.split(':');
          if (schema === this.schema) this.announce(Number(upTo));
        },
        () => this.announce(undefined),
      ),
    );
    if (redis) {
      const subscriber = redis.duplicate({ enableOfflineQueue: true });
      subscriber.on('error', () => {}); // readiness reports Redis; PostgreSQL NOTIFY carries on meanwhile
      subscriber.on('message', (channel: string, message: string) => {
        if (channel === this.redisChannel()) this.announce(Number(message));
      });
      subscriber.on('ready', () => this.announce(undefined));
      subscriber.subscribe(this.redisChannel()).catch((error: unknown) => log.error({ err: error }, 'event fan-out: Redis subscribe failed'));
      this.stops.push(() => subscriber.disconnect());
    }
    const poll = setInterval(() => this.kick(), this.options.pollMs ?? 1000);
    poll.unref();
    this.stops.push(() => clearInterval(poll));
    const purge = setInterval(() => void this.purge().catch((error: unknown) => log.error({ err: error }, 'outbox purge failed')), PURGE_EVERY_MS);
    purge.unref();
    this.stops.push(() => clearInterval(purge));
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const stop of this.stops.splice(0)) await stop();
    await this.running;
  }

  /** Sequence now (coalesced with a run in progress). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = null;
    });
  }

  /**
   * Committed events still without a position, and the age of the oldest (0 when none), across
   * every practice and instance: a relay that stalls shows here before streams go quiet.
   */
  async backlog(): Promise<{ unsequenced: number; oldestSeconds: number }> {
    const { rows } = await statementAsSystem<{ unsequenced: number; oldest_seconds: number }>(this.options.db, { sql: BACKLOG, params: [] });
    return { unsequenced: rows[0]?.unsequenced ?? 0, oldestSeconds: rows[0]?.oldest_seconds ?? 0 };
  }

  /** Resolves once everything committed before the call has a position (tests, shutdown). */
  async drain(): Promise<void> {
    for (;;) {
      await this.running;
      const result = await this.sequenceOnce();
      if (result.busy) await sleep(LOCK_RETRY_MS);
      else if (result.count < BATCH) return;
    }
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        const result = await this.sequenceOnce();
        if (result.busy) {
          await sleep(LOCK_RETRY_MS);
          this.again = true;
        } else if (result.count === BATCH) this.again = true;
      } catch (error) {
        // The poll tries again; a database outage must not spin here.
        if (!this.stopped) this.options.log.error({ err: error }, 'outbox relay failed');
        return;
      }
    } while (this.again && !this.stopped);
  }

  /** One sequencing transaction. busy: another relay holds the lock. */
  private async sequenceOnce(): Promise<{ count: number; busy: boolean }> {
    const range = await withSystem(this.options.db, async (tx) => {
      const { rows: locked } = await tx.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [RELAY_LOCK_KEY]);
      if (!locked[0]?.ok) return 'busy' as const;
      // The lock is held to the end of this transaction, so the next relay's positions start above
      // these and become visible only after them.
      const { rows } = await tx.query<{ from: number | null; to: number | null; count: number }>(
        `WITH pending AS (
           SELECT seq, row_number() OVER (ORDER BY seq) AS n
             FROM (SELECT seq FROM outbox_events WHERE position IS NULL ORDER BY seq LIMIT $1) p
         ), numbered AS (
           SELECT seq, n + (SELECT coalesce(max(position), 0) FROM outbox_events) AS position FROM pending
         ), updated AS (
           UPDATE outbox_events o SET position = numbered.position, sequenced_at = now()
             FROM numbered WHERE o.seq = numbered.seq
           RETURNING o.position
         )
         SELECT min(position) AS from, max(position) AS to, count(*)::int AS count FROM updated`,
        [BATCH],
      );
      const { from, to, count } = rows[0]!;
      if (count === 0 || from === null || to === null) return null;
      const sequenced = { from: Number(from), to: Number(to), count };
      for (const hook of this.hooks) await hook(tx, sequenced);
      await tx.query('SELECT pg_notify($1, $2)', [SEQUENCED_CHANNEL, `${this.schema}:${sequenced.to}`]);
      return sequenced;
    });
    if (range === 'busy') return { count: 0, busy: true };
    if (range === null) return { count: 0, busy: false };
    this.announce(range.to);
    this.options.redis?.publish(this.redisChannel(), String(range.to)).catch(() => {}); // NOTIFY went too
    return { count: range.count, busy: false };
  }

  private announce(upTo: number | undefined): void {
    if (!this.stopped) this.positions.emit('positions', upTo);
  }

  private redisChannel(): string {
    return `medspa:outbox:${this.namespace}`;
  }

  /**
   * Deletes events older than the retention window, keeping the newest (positions continue from
   * it) and any a keepWhile condition holds on to. Returns how many went.
   */
  async purge(): Promise<number> {
    const cutoff = new Date((this.options.now?.() ?? Date.now()) - this.options.retentionDays * 86_400_000);
    const { rowCount } = await withSystem(this.options.db, (tx) =>
      tx.query(
        `DELETE FROM outbox_events o
          WHERE o.occurred_at < $1 AND o.position < (SELECT max(position) FROM outbox_events)
            ${this.purgeGuards.map((condition) => `AND NOT (${condition})`).join(' ')}`,
        [cutoff.toISOString()],
      ),
    );
    if (rowCount > 0) this.options.log.info({ component: 'events', purged: rowCount }, 'outbox events past retention purged');
    return rowCount;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());
