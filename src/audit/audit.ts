// The audit log (HIPAA 164.312(b)): who did what to which record, from where, with what result.
// Writers only INSERT (cheap, no lock, inside the caller's transaction so a rolled-back change
// leaves no event claiming it happened). A database trigger refuses any UPDATE, DELETE or
// TRUNCATE. The sealer appends, per practice, seals that hash the events of finished transactions
// into a SHA-256 chain (migration 007 explains the ranges); verifyAuditChain() recomputes them and
// names an event altered, removed or slipped in behind the trigger's back.
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Database, Queryable } from '../db/database.js';
import { statementAsSystem, withSystem } from '../db/scope.js';

export type ActorType = 'user' | 'api_key' | 'system' | 'anonymous';
export type Outcome = 'success' | 'failure' | 'denied';

export interface AuditEvent {
  practiceId: string | null;
  actorType: ActorType;
  actorId: string | null;
  action: string;
  resourceType?: string | null;
  resourceIds?: string[];
  outcome: Outcome;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
  correlationId?: string | null;
  /** Never PHI: ids, counts, reasons. */
  details?: Record<string, unknown>;
}

/** The request-derived part of an event. */
export function requestOrigin(request: FastifyRequest): Pick<AuditEvent, 'ip' | 'userAgent' | 'requestId' | 'correlationId'> {
  const userAgent = request.headers['user-agent'];
  return {
    ip: request.ip,
    userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 512) : null,
    requestId: request.id,
    correlationId: request.correlationId,
  };
}

const INSERT_COLUMNS = `(practice_id, actor_type, actor_id, action, resource_type, resource_ids, outcome,
   ip, user_agent, request_id, correlation_id, details)`;

/** An event's values in the order of INSERT_COLUMNS. */
function columnValues(event: AuditEvent): unknown[] {
  return [
    event.practiceId,
    event.actorType,
    event.actorId,
    event.action,
    event.resourceType ?? null,
    event.resourceIds ?? [],
    event.outcome,
    event.ip ?? null,
    event.userAgent ?? null,
    event.requestId ?? null,
    event.correlationId ?? null,
    JSON.stringify(event.details ?? {}),
  ];
}

export async function recordAudit(tx: Queryable, event: AuditEvent): Promise<void> {
  await tx.query(
    `INSERT INTO audit_events ${INSERT_COLUMNS}
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    columnValues(event),
  );
}

// A batch of events as one JSON parameter: one statement whatever its size, the rows inserted in
// the order given (identity ids follow it).
const INSERT_BATCH = `INSERT INTO audit_events ${INSERT_COLUMNS}
  SELECT e.practice_id, e.actor_type, e.actor_id, e.action, e.resource_type, coalesce(e.resource_ids, '{}'),
         e.outcome, e.ip, e.user_agent, e.request_id, e.correlation_id, coalesce(e.details, '{}')
    FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (practice_id uuid, actor_type text, actor_id text,
         action text, resource_type text, resource_ids text[], outcome text, ip text, user_agent text,
         request_id text, correlation_id text, details jsonb)) WITH ORDINALITY AS e
   ORDER BY e.ordinality`;

function batchPayload(events: readonly AuditEvent[]): string {
  return JSON.stringify(
    events.map((event) => ({
      practice_id: event.practiceId,
      actor_type: event.actorType,
      actor_id: event.actorId,
      action: event.action,
      resource_type: event.resourceType ?? null,
      resource_ids: event.resourceIds ?? [],
      outcome: event.outcome,
      ip: event.ip ?? null,
      user_agent: event.userAgent ?? null,
      request_id: event.requestId ?? null,
      correlation_id: event.correlationId ?? null,
      details: event.details ?? {},
    })),
  );
}

interface Waiting {
  event: AuditEvent;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Audit events of reads, group-committed. `record` resolves once the event is committed, so a
 * handler that awaits it before answering never discloses PHI without a durable record of it;
 * meanwhile the events of concurrent requests share one INSERT and one commit (one WAL flush)
 * instead of each paying for its own write transaction. Changes don't come here: their events
 * belong in the transaction of the change (recordAudit).
 *
 * A batch starts as soon as the previous one is done (no timer): alone, an event is written at
 * once; under load, everything that arrived during a commit goes in the next.
 */
export class AuditWriter {
  private waiting: Waiting[] = [];
  private draining: Promise<void> | null = null;
  private writing = 0;

  constructor(
    private readonly db: Database,
    private readonly maxBatch = 1000,
  ) {}

  record(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ event, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /** Events recorded and not yet committed: waiting for a batch, or in the batch being written. */
  get backlog(): number {
    return this.waiting.length + this.writing;
  }

  /** Resolves when every event recorded so far is committed (or has failed). */
  async flush(): Promise<void> {
    while (this.draining !== null) await this.draining;
  }

  private async drain(): Promise<void> {
    // Requests answered in the same turn of the event loop join this first batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      this.writing = batch.length;
      try {
        await this.insert(batch);
        for (const waiting of batch) waiting.resolve();
      } catch (error) {
        if (batch.length === 1) batch[0]!.reject(error);
        // One bad event must not fail the requests that happened to share its batch. One by one,
        // in order, so the log keeps the order the events arrived in.
        else for (const waiting of batch) await this.insert([waiting]).then(waiting.resolve, waiting.reject);
      } finally {
        this.writing = 0;
      }
    }
    this.draining = null;
  }

  private async insert(batch: Waiting[]): Promise<void> {
    await statementAsSystem(this.db, { sql: INSERT_BATCH, params: [batchPayload(batch.map((waiting) => waiting.event))] });
  }
}

export const GENESIS = '0'.repeat(64);
const SEALER_LOCK_KEY = 0x617564697473; // "audits"
const DIGEST_BYTES = 32;

/**
 * Everything an event says as one fixed JSON text, rendered by PostgreSQL (jsonb's text form is
 * canonical; the time in UTC with microseconds, whatever the session's time zone). Audit exports
 * carry this text as is, so an offline verifier hashes exactly what the seal hashed.
 */
export const EVENT_CANONICAL = `jsonb_build_array(e.id, e.practice_id,
    to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), e.actor_type, e.actor_id, e.action,
    e.resource_type, e.resource_ids, e.outcome, e.ip, e.user_agent, e.request_id, e.correlation_id, e.details,
    e.xact_id::text)::text`;

/** SHA-256 of the canonical text: what a seal lists for each event. */
const EVENT_DIGEST = `sha256(convert_to(${EVENT_CANONICAL}, 'UTF8'))`;

/** bytea arrives as a Buffer from pg and as a plain Uint8Array from PGlite. */
export const bytes = (value: Uint8Array): Buffer => (Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength));

export interface ChainHead {
  seq: number;
  hash: string;
  xactTo: string;
}

/** The seal's own hash: its predecessor's, its position, its range and the events' digests. */
export function sealHash(prevHash: string, seq: number, xactFrom: string, xactTo: string, digests: Buffer): string {
  return createHash('sha256').update(`${prevHash}\n${seq}\n${xactFrom}\n${xactTo}\n`).update(digests).digest('hex');
}

/**
 * Seals the events of every transaction that has ended since the last run: one seal per practice
 * (and one for events outside any practice) with events in that range. Returns how many events it
 * sealed. Safe to run from several instances (one at a time, by an advisory lock).
 */
export async function sealAuditEvents(db: Database): Promise<number> {
  return withSystem(db, async (tx) => {
    const { rows: locked } = await tx.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [SEALER_LOCK_KEY]);
    if (!locked[0]?.ok) return 0;
    // Everything below the oldest running transaction has ended and can no longer change.
    const { rows: range } = await tx.query<{ low: string; high: string }>(
      `SELECT coalesce((SELECT max(xact_to) FROM audit_seals), '0')::text AS low,
              pg_snapshot_xmin(pg_current_snapshot())::text AS high`,
    );
    const { low, high } = range[0]!;
    const { rows: pending } = await tx.query<{ chain_key: string; events: number; digests: Uint8Array }>(
      `SELECT coalesce(e.practice_id::text, 'system') AS chain_key, count(*)::int AS events,
              string_agg(${EVENT_DIGEST}, ''::bytea ORDER BY e.id) AS digests
         FROM audit_events e
        WHERE e.xact_id >= $1::xid8 AND e.xact_id < $2::xid8
        GROUP BY 1`,
      [low, high],
    );
    if (pending.length === 0) return 0;
    const { rows: headRows } = await tx.query<{ chain_key: string; seq: number; hash: string; xact_to: string }>(
      `SELECT DISTINCT ON (chain_key) chain_key, seq, hash, xact_to::text AS xact_to
         FROM audit_seals WHERE chain_key = ANY($1) ORDER BY chain_key, seq DESC`,
      [pending.map((chain) => chain.chain_key)],
    );
    const heads = new Map<string, ChainHead>(headRows.map((head) => [head.chain_key, { seq: Number(head.seq), hash: head.hash, xactTo: head.xact_to }]));
    let sealed = 0;
    for (const chain of pending) {
      const head = heads.get(chain.chain_key) ?? { seq: 0, hash: GENESIS, xactTo: '0' };
      const seq = head.seq + 1;
      const digests = bytes(chain.digests);
      await tx.query(
        `INSERT INTO audit_seals (chain_key, seq, xact_from, xact_to, event_count, event_digests, prev_hash, hash)
         VALUES ($1, $2, $3::xid8, $4::xid8, $5, $6, $7, $8)`,
        [chain.chain_key, seq, head.xactTo, high, chain.events, digests, head.hash, sealHash(head.hash, seq, head.xactTo, high, digests)],
      );
      sealed += chain.events;
    }
    return sealed;
  });
}

/** Where the practice's seals end: its events of transactions below this are sealed. */
export async function sealedThrough(db: Database, practiceId: string | null): Promise<string> {
  const { rows } = await withSystem(db, (tx) =>
    tx.query<{ xact_to: string }>("SELECT coalesce(max(xact_to), '0')::text AS xact_to FROM audit_seals WHERE chain_key = $1", [practiceId ?? 'system']),
  );
  return rows[0]!.xact_to;
}

/**
 * Where a chain's retained seals start: the genesis, or the last purge point (the seq, range end
 * and hash of the last seal a retention purge removed, which the first retained seal links to).
 */
export async function chainStart(tx: Queryable, chainKey: string): Promise<ChainHead> {
  const { rows } = await tx.query<{ seq: string; hash: string; xact_to: string }>(
    `SELECT through_seq::text AS seq, through_hash AS hash, through_xact::text AS xact_to
       FROM audit_purges WHERE chain_key = $1 ORDER BY through_seq DESC LIMIT 1`,
    [chainKey],
  );
  const purge = rows[0];
  return purge === undefined ? { seq: 0, hash: GENESIS, xactTo: '0' } : { seq: Number(purge.seq), hash: purge.hash, xactTo: purge.xact_to };
}

export interface ChainVerification {
  ok: boolean;
  /** Events whose digest was recomputed and found as sealed. */
  checked: number;
  /** The first event that no longer matches its seal (altered, or next to one removed or added). */
  brokenAt: number | null;
}

/**
 * Recomputes one practice's chain (or the system chain for null): every seal's hash from its
 * predecessor, every covered event's digest, and that the seals leave no gap.
 */
export async function verifyAuditChain(db: Database, practiceId: string | null): Promise<ChainVerification> {
  return withSystem(db, async (tx) => {
    // After a retention purge the chain continues from the last purged seal (audit/retention.ts).
    const start = await chainStart(tx, practiceId ?? 'system');
    const { rows: seals } = await tx.query<{ seq: number; xact_from: string; xact_to: string; event_digests: Uint8Array; prev_hash: string; hash: string }>(
      `SELECT seq, xact_from::text AS xact_from, xact_to::text AS xact_to, event_digests, prev_hash, hash
         FROM audit_seals WHERE chain_key = $1 ORDER BY seq`,
      [practiceId ?? 'system'],
    );
    const { rows: events } = await tx.query<{ id: number; xact_id: string; digest: Uint8Array }>(
      `SELECT e.id, e.xact_id::text AS xact_id, ${EVENT_DIGEST} AS digest
         FROM audit_events e
        WHERE e.practice_id IS NOT DISTINCT FROM $1::uuid AND e.xact_id < $2::xid8 AND e.xact_id >= $3::xid8
        ORDER BY e.xact_id, e.id`,
      [practiceId, seals.at(-1)?.xact_to ?? '0', start.xactTo],
    );
    let prev = { hash: start.hash, xactTo: start.xactTo };
    let next = 0; // index into events, which are in seal order
    for (const [index, seal] of seals.entries()) {
      const digests = bytes(seal.event_digests);
      const recomputed = sealHash(seal.prev_hash, Number(seal.seq), seal.xact_from, seal.xact_to, digests);
      const linked = Number(seal.seq) === start.seq + index + 1 && seal.prev_hash === prev.hash && seal.xact_from === prev.xactTo;
      let end = next;
      while (end < events.length && BigInt(events[end]!.xact_id) < BigInt(seal.xact_to)) end++;
      // A seal hashes its events in id order.
      const covered = events.slice(next, end).sort((a, b) => a.id - b.id);
      for (let i = 0; i < Math.max(covered.length, digests.length / DIGEST_BYTES); i++) {
        const stored = digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
        const event = covered[i];
        if (event === undefined || !bytes(event.digest).equals(stored)) {
          return { ok: false, checked: next + i, brokenAt: (event ?? covered.at(-1) ?? events[next - 1])?.id ?? null };
        }
      }
      if (!linked || recomputed !== seal.hash) return { ok: false, checked: next, brokenAt: covered[0]?.id ?? null };
      next += covered.length;
      prev = { hash: seal.hash, xactTo: seal.xact_to };
    }
    return { ok: true, checked: next, brokenAt: null };
  });
}

/** Seals on an interval until stopped; stopping seals what is left. Errors are logged, never
 *  thrown: auditing trouble must not take serving down with it. */
export function startAuditSealer(
  db: Database,
  log: { error: (obj: object, msg: string) => void },
  intervalMs = 1000,
): () => Promise<void> {
  let inFlight: Promise<void> | null = null;
  const sealOnce = (): Promise<void> =>
    (inFlight ??= sealAuditEvents(db)
      .then(
        () => undefined,
        (error: unknown) => log.error({ err: error }, 'audit sealing failed'),
      )
      .finally(() => {
        inFlight = null;
      }));
  const timer = setInterval(() => void sealOnce(), intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await inFlight;
    await sealOnce();
  };
}
