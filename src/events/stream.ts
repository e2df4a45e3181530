// The real-time stream's hub: one per instance. It hears from the relay that new positions exist
// (this instance's or another's, by NOTIFY or Redis), reads the newly sequenced events ONCE for
// the whole instance, renders each event's SSE message once, and writes that same string to every
// open stream of the event's practice that may see its type. No stream costs a query for a live
// event; a stream costs a query only when it resumes (its replay, paged, in its practice's scope).
//
// Handover from replay to live, without a gap or a duplicate: a resuming stream is attached to the
// hub BEFORE its replay query runs, in a buffering state; live events for it are kept aside while
// the replay sends everything committed after its Last-Event-ID. Every position the hub had read
// when the stream was attached is visible to the replay's query (positions become visible in
// order, migration 008), so replay and buffer together cover everything; the buffered events at or
// below the last replayed position are dropped, the rest are sent, and the stream goes live.
//
// Bounded: a stream whose socket buffer holds more than maxBufferedBytes unread (a client that
// stopped reading) is cut off, as is one whose buffered live events during a replay exceed it.
// Streams per practice and per instance are capped (reserve()). Every stream ends at its access
// token's expiry, or when its credentials are revoked (checked on every heartbeat), with a final
// event saying why; stop() ends them all with a final event (graceful shutdown).
import type { ServerResponse } from 'node:http';
import type { Principal } from '../auth/guard.js';
import { hasPermission } from '../auth/rbac.js';
import type { RevocationStore } from '../auth/revocation.js';
import type { Database } from '../db/database.js';
import { readInPractice, statementAsSystem } from '../db/scope.js';
import { AppError } from '../http/errors.js';
import { EVENT_TYPE_NAMES, EVENT_TYPES, matchesAnyEventType } from './catalog.js';
import { STORED_EVENT_COLUMNS, toStoredEvent, type EventOutbox, type StoredEvent, type StoredEventRow } from './outbox.js';
import type { OutboxRelay } from './relay.js';

export interface StreamLimits {
  heartbeatMs: number;
  retryMs: number;
  maxBufferedBytes: number;
  maxConnectionsPerPractice: number;
  maxConnections: number;
}

interface Logger {
  error: (obj: object, msg: string) => void;
  warn: (obj: object, msg: string) => void;
  info: (obj: object, msg: string) => void;
}

export interface HubOptions {
  db: Database;
  relay: OutboxRelay;
  outbox: EventOutbox;
  revocations: RevocationStore;
  log: Logger;
  limits: StreamLimits;
  now?: () => number;
}

/** Why a stream ended: the final event's name and its body's code. */
export type EndReason =
  | { event: 'session_expired'; code: 'TOKEN_EXPIRED' }
  | { event: 'session_revoked'; code: 'CREDENTIALS_REVOKED' }
  | { event: 'shutdown'; code: 'SERVER_SHUTTING_DOWN' };

const END_MESSAGES: Record<EndReason['code'], string> = {
  TOKEN_EXPIRED: 'The access token expired: refresh it and reconnect with Last-Event-ID to continue where you left off',
  CREDENTIALS_REVOKED: 'The credentials of this stream were revoked (logout, deactivation or a revoked API key)',
  SERVER_SHUTTING_DOWN: 'The server is shutting down: reconnect with Last-Event-ID to continue where you left off',
};

const READ_BATCH = 1000;
const REPLAY_PAGE = 500;
const READ_RETRY_MS = 1000;

/** One SSE message: `id:` (the position), `event:` (the type), `data:` (one line of JSON). */
export function sseMessage(event: string, data: unknown, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export const HEARTBEAT = ': heartbeat\n\n';

/** An open stream: its socket, what it may see, and its place in the replay/live handover. */
export class StreamConnection {
  state: 'replaying' | 'live' | 'closed' = 'replaying';
  /** Live events that arrived during the replay: sent after it, those it already sent dropped. */
  private pending: Array<{ position: number; message: string }> = [];
  private pendingBytes = 0;
  /** Messages of the hub's current batch, written in one go by flush(). */
  private outgoing = '';
  private expiry: NodeJS.Timeout | null = null;
  sent = 0;
  closeReason = 'client_closed';
  /** The highest position sent (or, before any, the one the stream starts after). */
  through = 0;

  constructor(
    readonly res: ServerResponse,
    readonly principal: Principal,
    /** The exact event types this stream sends: its filter and its permissions, intersected. */
    readonly types: ReadonlySet<string>,
    private readonly maxBufferedBytes: number,
  ) {}

  get practiceId(): string {
    return this.principal.practiceId;
  }

  /** Writes a chunk; a client that leaves more than the limit unread is cut off (false). */
  write(chunk: string): boolean {
    if (this.state === 'closed' || this.res.destroyed) return false;
    this.res.write(chunk);
    if (this.res.writableLength > this.maxBufferedBytes) {
      this.destroy('slow_client');
      return false;
    }
    return true;
  }

  /**
   * A live event from the hub: kept aside during the replay, queued for flush() when live. One at
   * or below the last position sent is dropped: the replay may have read an event (committed and
   * visible to it) that the hub only reads after the handover.
   */
  deliver(position: number, message: string): void {
    if (position <= this.through) return;
    if (this.state === 'live') {
      this.through = position;
      this.outgoing += message;
    } else if (this.state === 'replaying') {
      this.pending.push({ position, message });
      this.pendingBytes += message.length;
      if (this.pendingBytes > this.maxBufferedBytes) this.destroy('slow_client');
    }
  }

  flush(): void {
    if (this.outgoing === '') return;
    const chunk = this.outgoing;
    this.outgoing = '';
    if (this.write(chunk)) this.sent += 1;
  }

  /** Ends the replay: the buffered live events above `through` are sent, and the stream is live. */
  goLive(through: number): void {
    if (this.state !== 'replaying') return;
    this.through = Math.max(this.through, through);
    const rest = this.pending.filter((entry) => entry.position > this.through);
    if (rest.length > 0) this.through = rest[rest.length - 1]!.position;
    this.pending = [];
    this.pendingBytes = 0;
    this.state = 'live';
    if (rest.length > 0 && this.write(rest.map((entry) => entry.message).join(''))) this.sent += rest.length;
  }

  expireAt(atMs: number, now: number, onExpire: () => void): void {
    this.expiry = setTimeout(onExpire, Math.max(0, atMs - now));
    this.expiry.unref();
  }

  /** The final event, then the end of the response (and of its connection: Connection: close). */
  end(reason: EndReason): void {
    if (this.state === 'closed') return;
    if (!this.write(sseMessage(reason.event, { code: reason.code, message: END_MESSAGES[reason.code] }))) return; // cut off
    this.closeReason = reason.code;
    this.state = 'closed';
    this.clearTimers();
    this.res.end();
  }

  destroy(reason: string): void {
    if (this.state === 'closed') return;
    this.closeReason = reason;
    this.state = 'closed';
    this.clearTimers();
    this.pending = [];
    this.res.destroy();
  }

  clearTimers(): void {
    if (this.expiry !== null) clearTimeout(this.expiry);
    this.expiry = null;
  }
}

/** A place held for a stream between the checks and its start; release() if it never starts. */
export interface Reservation {
  release(): void;
}

/** A Last-Event-ID the outbox can't continue from: the client must resync, the stream goes on live. */
export interface ResumeProblem {
  code: 'RESUME_WINDOW_EXCEEDED' | 'RESUME_POSITION_UNKNOWN';
  message: string;
}

export class EventStreamHub {
  private readonly byPractice = new Map<string, Set<StreamConnection>>();
  private readonly reservedByPractice = new Map<string, number>();
  private reserved = 0;
  /** Every event up to this position has been read and dispatched. */
  private cursor = 0;
  private reading: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(private readonly options: HubOptions) {}

  get connectionCount(): number {
    return this.reserved;
  }

  get position(): number {
    return this.cursor;
  }

  async start(): Promise<void> {
    const { rows } = await statementAsSystem<{ position: number | null }>(this.options.db, {
      sql: 'SELECT max(position) AS position FROM outbox_events',
      params: [],
    });
    this.cursor = Number(rows[0]?.position ?? 0);
    this.unsubscribe = this.options.relay.onPositions((upTo) => this.pull(upTo));
    this.heartbeat = setInterval(() => this.beat(), this.options.limits.heartbeatMs);
    this.heartbeat.unref();
    this.pull(undefined);
  }

  /** Ends every stream with a final `shutdown` event and stops listening. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    if (this.retry !== null) clearTimeout(this.retry);
    for (const connections of this.byPractice.values()) {
      for (const connection of connections) connection.end({ event: 'shutdown', code: 'SERVER_SHUTTING_DOWN' });
    }
    await this.reading;
  }

  /**
   * Holds a place for a stream of this practice, or refuses: 429 past the practice's limit (its
   * other streams must close first), 503 past the instance's (another instance may have room).
   */
  reserve(practiceId: string): Reservation {
    const { maxConnections, maxConnectionsPerPractice } = this.options.limits;
    if (this.stopped) throw new AppError('SERVICE_UNAVAILABLE', 503, 'The server is shutting down', [], { 'retry-after': '1' });
    const practiceCount = this.reservedByPractice.get(practiceId) ?? 0;
    if (practiceCount >= maxConnectionsPerPractice) {
      throw new AppError(
        'RATE_LIMITED',
        429,
        `This practice already has ${practiceCount} open event streams on this server (the limit is ${maxConnectionsPerPractice}); close one or share a stream`,
        [],
        { 'retry-after': '30' },
      );
    }
    if (this.reserved >= maxConnections) {
      throw new AppError('SERVICE_UNAVAILABLE', 503, 'This server has no room for another event stream; retry (possibly reaching another instance)', [], {
        'retry-after': '5',
      });
    }
    this.reserved += 1;
    this.reservedByPractice.set(practiceId, practiceCount + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.reserved -= 1;
        const left = (this.reservedByPractice.get(practiceId) ?? 1) - 1;
        if (left === 0) this.reservedByPractice.delete(practiceId);
        else this.reservedByPractice.set(practiceId, left);
      },
    };
  }

  /**
   * Attaches a stream whose headers are written. Without `after` it is live at once and the
   * returned position is where it starts (the `ready` event's id: resuming from it misses
   * nothing). With `after` it stays buffering until resume() has replayed.
   */
  attach(connection: StreamConnection, reservation: Reservation, live: boolean): number {
    let connections = this.byPractice.get(connection.practiceId);
    if (connections === undefined) {
      connections = new Set();
      this.byPractice.set(connection.practiceId, connections);
    }
    connections.add(connection);
    connection.through = this.cursor;
    if (live) connection.state = 'live';
    const { expiresAt } = connection.principal;
    if (expiresAt !== null) {
      connection.expireAt(expiresAt * 1000, this.now(), () => connection.end({ event: 'session_expired', code: 'TOKEN_EXPIRED' }));
    }
    const socket = connection.res.socket;
    connection.res.once('close', () => {
      // A client that went away may leave its half of the connection open (an aborted fetch sends
      // FIN, not RST); the socket served only this stream (Connection: close), so it goes too, or
      // shutdown would wait for it.
      socket?.destroy();
      connection.state = 'closed';
      connection.clearTimers();
      connections.delete(connection);
      if (connections.size === 0 && this.byPractice.get(connection.practiceId) === connections) this.byPractice.delete(connection.practiceId);
      reservation.release();
    });
    return this.cursor;
  }

  /**
   * Replays the events of the stream's practice after `after`, then hands over to live. Returns
   * a problem instead when the outbox can't continue from there (purged, or never given out);
   * the stream then goes live from `startedAt` (the position it was attached at).
   */
  async resume(connection: StreamConnection, after: number, startedAt: number): Promise<ResumeProblem | null> {
    const problem = await this.resumeProblem(after);
    if (problem !== null) {
      connection.write(sseMessage('resync_required', problem, startedAt));
      connection.goLive(startedAt);
      return problem;
    }
    const types = [...connection.types];
    let through = after;
    for (;;) {
      if (connection.state === 'closed') return null;
      const { rows } = await readInPractice<StoredEventRow>(this.options.db, connection.practiceId, {
        sql: `SELECT ${STORED_EVENT_COLUMNS} FROM outbox_events e
               WHERE e.practice_id = $1 AND e.position > $2 AND e.type = ANY($3::text[])
               ORDER BY e.position LIMIT $4`,
        params: [connection.practiceId, through, types, REPLAY_PAGE],
      });
      if (rows.length > 0) {
        const chunk = rows.map((row) => this.message(toStoredEvent(row))).join('');
        if (!connection.write(chunk)) return null;
        connection.sent += rows.length;
        through = Number(rows[rows.length - 1]!.position);
      }
      if (rows.length < REPLAY_PAGE) break;
      // A long replay goes at the client's pace; a client that stops reading is cut off by the
      // buffered-bytes limit (heartbeats and buffered live events keep counting meanwhile).
      if (connection.res.writableNeedDrain) await drained(connection.res);
    }
    connection.goLive(through);
    return null;
  }

  private async resumeProblem(after: number): Promise<ResumeProblem | null> {
    // Positions are shared by all practices: only numbers leave this system read.
    const { rows } = await statementAsSystem<{ oldest: number | null; newest: number | null }>(this.options.db, {
      sql: 'SELECT min(position) AS oldest, max(position) AS newest FROM outbox_events',
      params: [],
    });
    const oldest = rows[0]?.oldest === null || rows[0]?.oldest === undefined ? null : Number(rows[0].oldest);
    const newest = Number(rows[0]?.newest ?? 0);
    if (after > newest) {
      return {
        code: 'RESUME_POSITION_UNKNOWN',
        message: `Last-Event-ID ${after} was never given out by this server (its newest is ${newest}): resync, then continue from this event's id`,
      };
    }
    if (oldest !== null && after + 1 < oldest) {
      return {
        code: 'RESUME_WINDOW_EXCEEDED',
        message: `Events after ${after} are past the retention window and were purged: resync (fetch the resources again), then continue from this event's id`,
      };
    }
    return null;
  }

  /** The SSE message of a stored event: the envelope without the sealed resource, ever. */
  private message(event: StoredEvent): string {
    return sseMessage(event.type, this.options.outbox.envelope(event, false), event.position);
  }

  /** Reads what the relay sequenced past the cursor (coalesced: one read loop at a time). */
  private pull(upTo: number | undefined): void {
    if (this.stopped) return;
    if (upTo !== undefined && upTo <= this.cursor) return;
    if (this.reading !== null) {
      this.again = true;
      return;
    }
    this.reading = this.readLoop().finally(() => {
      this.reading = null;
    });
  }

  private async readLoop(): Promise<void> {
    do {
      this.again = false;
      try {
        const { rows } = await statementAsSystem<StoredEventRow>(this.options.db, {
          sql: `SELECT ${STORED_EVENT_COLUMNS} FROM outbox_events e WHERE e.position > $1 ORDER BY e.position LIMIT $2`,
          params: [this.cursor, READ_BATCH],
        });
        if (rows.length > 0) this.dispatch(rows.map(toStoredEvent));
        if (rows.length === READ_BATCH) this.again = true;
      } catch (error) {
        if (this.stopped) return;
        this.options.log.error({ err: error }, 'event stream: reading new events failed; retrying');
        this.retry ??= setTimeout(() => {
          this.retry = null;
          this.pull(undefined);
        }, READ_RETRY_MS);
        this.retry.unref();
        return;
      }
    } while (this.again && !this.stopped);
  }

  /** Each event's message rendered once, shared by all its recipients; one write per stream per batch. */
  private dispatch(events: StoredEvent[]): void {
    const touched = new Set<StreamConnection>();
    for (const event of events) {
      this.cursor = event.position;
      const connections = this.byPractice.get(event.practiceId);
      if (connections === undefined) continue;
      let message: string | undefined;
      for (const connection of connections) {
        if (!connection.types.has(event.type)) continue;
        message ??= this.message(event);
        connection.deliver(event.position, message);
        touched.add(connection);
      }
    }
    for (const connection of touched) connection.flush();
  }

  /** The heartbeat comment to every stream, and the credentials of every stream re-checked. */
  private beat(): void {
    const all: StreamConnection[] = [];
    for (const connections of this.byPractice.values()) for (const connection of connections) all.push(connection);
    for (const connection of all) connection.write(HEARTBEAT);
    if (this.checking || all.length === 0) return;
    this.checking = true;
    this.checkCredentials(all)
      .catch((error: unknown) => this.options.log.warn({ err: error }, 'event stream: credential check failed; retrying at the next heartbeat'))
      .finally(() => {
        this.checking = false;
      });
  }

  /** Revoked tokens (logout, deactivation, password change) and revoked API keys end their streams. */
  private async checkCredentials(connections: StreamConnection[]): Promise<void> {
    const revoked = (connection: StreamConnection) => connection.end({ event: 'session_revoked', code: 'CREDENTIALS_REVOKED' });
    const keys = connections.filter((connection) => connection.principal.kind === 'api_key');
    for (const connection of connections) {
      const { kind, jti, id, issuedAt } = connection.principal;
      if (kind !== 'user' || jti === null) continue;
      const { tokenRevoked, userCutoff } = await this.options.revocations.check(jti, id);
      // The guard's rule: a user's cut-off revokes every token issued before it.
      if (tokenRevoked || (userCutoff !== null && issuedAt !== null && issuedAt < userCutoff)) revoked(connection);
    }
    if (keys.length === 0) return;
    const { rows } = await statementAsSystem<{ id: string }>(this.options.db, {
      sql: 'SELECT id FROM api_keys WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL',
      params: [[...new Set(keys.map((connection) => connection.principal.id))]],
    });
    const valid = new Set(rows.map((row) => row.id));
    for (const connection of keys) if (!valid.has(connection.principal.id)) revoked(connection);
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }
}

/** Resolves when the response drained or closed, whichever comes first. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * The exact types a stream sends: those its filter matches and its caller may read. `denied`
 * names the permissions that would have added more, for the 403 when nothing is left.
 */
export function streamTypes(patterns: readonly string[], permissions: readonly string[]): { allowed: Set<string>; denied: string[] } {
  const allowed = new Set<string>();
  const denied = new Set<string>();
  for (const type of EVENT_TYPE_NAMES) {
    if (!matchesAnyEventType(type, patterns)) continue;
    const { permission } = EVENT_TYPES[type];
    if (hasPermission(permissions, permission)) allowed.add(type);
    else denied.add(permission);
  }
  return { allowed, denied: [...denied] };
}

/** The read permissions of every event type: holding one of them opens a stream. */
export const EVENT_READ_PERMISSIONS: readonly string[] = [...new Set(EVENT_TYPE_NAMES.map((type) => EVENT_TYPES[type].permission))];
