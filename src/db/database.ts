// One interface, two drivers: embedded PGlite (zero setup) and a pooled PostgreSQL connection.
// Everything above this file speaks only `Database` / `Queryable`, so the SQL is the same for both.
import { mkdirSync } from 'node:fs';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { btree_gist } from '@electric-sql/pglite/contrib/btree_gist';
// pg and the one-round-trip query class load with the first PostgreSQL connection: an embedded
// (PGlite) server never holds them (bench/memory.ts).
import type pg from 'pg';

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>;
  /** Several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export type DatabaseKind = 'pglite' | 'postgres';

/** A statement returning no rows whose only effect is transaction-local settings (db/scope.ts). */
export interface ScopeStatement {
  sql: string;
  params: readonly unknown[];
}

export interface Database extends Queryable {
  readonly kind: DatabaseKind;
  /**
   * BEGIN … COMMIT around fn; ROLLBACK and rethrow if fn throws. `prelude`: parameterless SQL run
   * first inside the transaction, sent with BEGIN in the same round trip (tenant scoping).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, prelude?: string): Promise<T>;
  /**
   * One statement in its own transaction, after `scope` (a statement that sets the transaction's
   * role and settings). PostgreSQL: both are prepared once per connection and sent together, so
   * the whole unit of work is a single round trip. For hot reads and the audit writer.
   */
  scopedStatement<T = Record<string, unknown>>(scope: ScopeStatement, sql: string, params: readonly unknown[]): Promise<QueryResult<T>>;
  /** One cheap round trip; throws when the database is unreachable. */
  ping(): Promise<void>;
  /**
   * LISTEN on a channel: `onNotify` gets each payload (NOTIFYs are delivered once their transaction
   * commits). PostgreSQL: on a connection of its own, re-established after a drop, and then
   * `onReconnect` runs, because notifications sent meanwhile are lost. Resolves to a stop function.
   */
  listen(channel: string, onNotify: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>>;
  /** Connections open, in use and waited for, now (the metrics' gauges read it at each scrape). */
  poolUsage(): PoolUsage;
  /** Calls `observer` after every statement and transaction with its duration; returns the unsubscribe. */
  observeQueries(observer: QueryObserver): () => void;
  /**
   * PGlite only: a tar of the data directory as PostgreSQL left it after a checkpoint, taken
   * between transactions (db/backup.ts). Only the process holding the directory can take it.
   */
  dumpDataDir?(): Promise<Buffer>;
  close(): Promise<void>;
}

export interface PoolUsage {
  /** Most connections the pool may open (PGlite: 1, it runs one query at a time). */
  max: number;
  open: number;
  inUse: number;
  /** Units of work waiting for a connection. */
  waiting: number;
}

/** `statement`: one statement (inside a transaction or alone); `transaction`: a whole unit of work. */
export type QueryKind = 'statement' | 'transaction';
export type QueryObserver = (kind: QueryKind, seconds: number, failed: boolean) => void;

/**
 * The observers of one database. With none (metrics off) a call costs one size check; with some,
 * two clock reads and one call per observer.
 */
class QueryObservers {
  private readonly observers = new Set<QueryObserver>();

  add(observer: QueryObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  timed<T>(kind: QueryKind, work: () => Promise<T>): Promise<T> {
    if (this.observers.size === 0) return work();
    const started = performance.now();
    const report = (failed: boolean) => {
      const seconds = (performance.now() - started) / 1000;
      for (const observer of this.observers) observer(kind, seconds, failed);
    };
    return work().then(
      (result) => {
        report(false);
        return result;
      },
      (error: unknown) => {
        report(true);
        throw error;
      },
    );
  }
}

// Calendar dates stay strings ("1990-04-01"): turning them into Date objects would shift
// them by the server's time zone, and a date of birth has no time zone.
const DATE_OID = 1082;
const INT8_OID = 20;

export interface PgliteOptions {
  /** A directory to persist to, or undefined for an in-memory database. */
  dataDir: string | undefined;
  /**
   * A tar of a data directory to start from instead of running initdb: a restore into the empty
   * `dataDir` (db/backup.ts), or the initialised cluster a test's scratch database starts from.
   */
  loadDataDir?: Blob;
}

/**
 * PGlite's buffer cache. PostgreSQL's default (128 MB) is all resident in PGlite's WebAssembly
 * memory once touched, which was most of an idle embedded server's 560 MB. A front desk's data
 * fits in far less (16 MB measured no slower on the test suite), and a page that misses it is read
 * from the OS file cache, not a disk seek:
 * bench/memory.ts measures the memory.
 */
export const PGLITE_SHARED_BUFFERS = '16MB';

export async function openPglite({ dataDir, loadDataDir }: PgliteOptions): Promise<Database> {
  if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create({
    ...(dataDir === undefined ? {} : { dataDir }),
    ...(loadDataDir === undefined ? {} : { loadDataDir }),
    startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`],
    extensions: { btree_gist },
    parsers: {
      [DATE_OID]: (value: string) => value,
      [pgliteTypes.INT8]: (value: string) => Number(value),
    },
  });
  const observers = new QueryObservers();
  const wrap = (target: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    query<T>(sql: string, params: readonly unknown[] = []) {
      return observers.timed('statement', async () => {
        const result = await target.query<T>(sql, params as unknown[]);
        return { rows: result.rows, rowCount: result.affectedRows || result.rows.length };
      });
    },
    async exec(sql: string) {
      await observers.timed('statement', () => target.exec(sql));
    },
  });
  // PGlite runs one unit of work at a time: the others wait for it, as for a pool of one.
  let active = 0;
  const counted = <T>(work: () => Promise<T>): Promise<T> => {
    active++;
    return work().finally(() => active--);
  };
  const root = wrap(db);
  return {
    kind: 'pglite',
    query: (sql, params) => counted(() => root.query(sql, params)),
    exec: (sql) => counted(() => root.exec(sql)),
    transaction: (fn, prelude) =>
      counted(() =>
        observers.timed('transaction', () =>
          db.transaction(async (tx) => {
            if (prelude) await tx.exec(prelude);
            return fn(wrap(tx));
          }),
        ),
      ),
    scopedStatement: (scope, sql, params) =>
      counted(() =>
        observers.timed('transaction', () =>
          db.transaction(async (tx) => {
            await tx.query(scope.sql, scope.params as unknown[]);
            return wrap(tx).query(sql, params);
          }),
        ),
      ),
    poolUsage: () => ({ max: 1, open: 1, inUse: Math.min(active, 1), waiting: Math.max(active - 1, 0) }),
    observeQueries: (observer) => observers.add(observer),
    async ping() {
      await db.query('SELECT 1');
    },
    async listen(channel, onNotify) {
      const stop = await db.listen(channel, onNotify);
      return async () => {
        if (!db.closed) await stop();
      };
    },
    // Inside a transaction of its own, PGlite's transaction lock is held: no other transaction is
    // half-way through its statements in the copy. The checkpoint writes every committed page
    // into the data files, so the copy needs no WAL replay to be whole.
    dumpDataDir: () =>
      db.transaction(async (tx) => {
        await tx.exec('CHECKPOINT');
        const tar = await db.dumpDataDir('none');
        return Buffer.from(await tar.arrayBuffer());
      }),
    async close() {
      if (!db.closed) await db.close();
    },
  };
}

export interface PostgresOptions {
  connectionString: string;
  poolSize: number;
  /** Extra search_path entries first (tests isolate themselves in a schema). */
  searchPath?: string;
  applicationName?: string;
  /** How long to wait for a connection before failing (the request then gets a 503). */
  connectTimeoutMs?: number;
}

export async function openPostgres(options: PostgresOptions): Promise<Database> {
  const { default: driver } = await import('pg');
  const { ScopedStatementQuery } = await import('./scoped-statement.js');
  const pool = new driver.Pool({
    connectionString: options.connectionString,
    max: options.poolSize,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'medspasync-pro',
    ...(options.searchPath ? { options: `-c search_path=${options.searchPath}` } : {}),
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
        if (oid === DATE_OID) return (value: string) => value;
        if (oid === INT8_OID) return (value: string) => Number(value);
        return driver.types.getTypeParser(oid, format);
      }) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its connection (database restart) must not crash the process;
  // the pool drops it and the next query gets a fresh one.
  pool.on('error', () => {});

  const observers = new QueryObservers();
  const wrap = (target: pg.Pool | pg.PoolClient): Queryable => ({
    query<T>(sql: string, params: readonly unknown[] = []) {
      return observers.timed('statement', async () => {
        const result = await target.query(sql, params as unknown[]);
        return { rows: result.rows as T[], rowCount: result.rowCount ?? result.rows.length };
      });
    },
    async exec(sql: string) {
      await observers.timed('statement', () => target.query(sql));
    },
  });
  /** A pooled client for one transaction; ROLLBACK if the work fails, dropped if the link broke. */
  async function inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken = false;
    // A checked-out client whose connection drops (database restart, network cut) emits
    // 'error'; unheard, that would crash the process. The pending query rejects anyway.
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    try {
      return await work(client);
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // the connection itself failed; don't return it to the pool
      }
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  const root = wrap(pool);
  return {
    kind: 'postgres',
    query: root.query,
    exec: root.exec,
    transaction: (fn, prelude) =>
      observers.timed('transaction', () =>
        inTransaction(async (client) => {
          await client.query(prelude ? `BEGIN; ${prelude}` : 'BEGIN');
          const result = await fn(wrap(client));
          await client.query('COMMIT');
          return result;
        }),
      ),
    scopedStatement<T>(scope: ScopeStatement, sql: string, params: readonly unknown[]) {
      // No BEGIN/COMMIT: the extended protocol runs everything up to its Sync as one transaction,
      // which the scope's transaction-local settings last for. An error rolls it back whole.
      return observers.timed('transaction', async () => {
        const result = (await pool.query(new ScopedStatementQuery(scope, sql, params) as never)) as pg.QueryResult;
        return { rows: result.rows as T[], rowCount: result.rowCount ?? result.rows.length };
      });
    },
    poolUsage: () => ({
      max: options.poolSize,
      open: pool.totalCount,
      inUse: pool.totalCount - pool.idleCount,
      waiting: pool.waitingCount,
    }),
    observeQueries: (observer) => observers.add(observer),
    async ping() {
      await pool.query('SELECT 1');
    },
    listen: (channel, onNotify, onReconnect) => listenPostgres(driver, options, channel, onNotify, onReconnect),
    async close() {
      await pool.end();
    },
  };
}

const LISTEN_RETRY_MAX_MS = 2000;

/** A dedicated connection LISTENing on one channel, reconnected with backoff until stopped. */
async function listenPostgres(
  driver: typeof pg,
  options: PostgresOptions,
  channel: string,
  onNotify: (payload: string) => void,
  onReconnect?: () => void,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let attempt = 0;
  const connect = async (): Promise<void> => {
    const next = new driver.Client({
      connectionString: options.connectionString,
      application_name: `${options.applicationName ?? 'medspasync-pro'} listener`,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    });
    next.on('notification', (message) => {
      if (message.channel === channel) onNotify(message.payload ?? '');
    });
    next.on('error', () => reconnectLater(next));
    next.on('end', () => reconnectLater(next));
    await next.connect();
    await next.query(`LISTEN ${next.escapeIdentifier(channel)}`);
    if (stopped) {
      await next.end().catch(() => {});
      return;
    }
    client = next;
    attempt = 0;
  };
  const reconnectLater = (broken: pg.Client) => {
    if (stopped || client !== broken || retryTimer !== null) return;
    client = null;
    broken.end().catch(() => {});
    const retry = () => {
      retryTimer = setTimeout(() => {
        retryTimer = null;
        connect().then(
          () => onReconnect?.(),
          () => {
            attempt++;
            retry();
          },
        );
      }, Math.min(100 * 2 ** attempt, LISTEN_RETRY_MAX_MS));
      retryTimer.unref();
    };
    retry();
  };
  await connect();
  return async () => {
    stopped = true;
    if (retryTimer !== null) clearTimeout(retryTimer);
    const current = client;
    client = null;
    await current?.end().catch(() => {});
  };
}

export interface OpenDatabaseOptions {
  databaseUrl: string | undefined;
  dataDir: string | undefined;
  poolSize: number;
  connectTimeoutMs?: number;
}

export function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  return options.databaseUrl
    ? openPostgres({
        connectionString: options.databaseUrl,
        poolSize: options.poolSize,
        ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
      })
    : openPglite({ dataDir: options.dataDir });
}
