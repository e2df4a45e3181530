// The audit log (HIPAA 164.312(b)): who did what to which record, from where, with what result.
// Writers only INSERT (cheap, no lock, inside the caller's transaction so a rolled-back change
// leaves no event claiming it happened). The sealer later links the rows of each practice into a
// SHA-256 hash chain in the order it seals them; a database trigger refuses any other change,
// and verifyAuditChain() finds a row altered behind the trigger's back.
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

  /** Resolves when every event recorded so far is committed (or has failed). */
  async flush(): Promise<void> {
    while (this.draining !== null) await this.draining;
  }

  private async drain(): Promise<void> {
    // Requests answered in the same turn of the event loop join this first batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      try {
        await this.insert(batch);
        for (const waiting of batch) waiting.resolve();
      } catch (error) {
        if (batch.length === 1) batch[0]!.reject(error);
        // One bad event must not fail the requests that happened to share its batch.
        else await Promise.all(batch.map((waiting) => this.insert([waiting]).then(waiting.resolve, waiting.reject)));
      }
    }
    this.draining = null;
  }

  private async insert(batch: Waiting[]): Promise<void> {
    await statementAsSystem(this.db, { sql: INSERT_BATCH, params: [batchPayload(batch.map((waiting) => waiting.event))] });
  }
}

interface AuditRow {
  id: number;
  practice_id: string | null;
  occurred_at: Date;
  actor_type: string;
  actor_id: string | null;
  action: string;
  resource_type: string | null;
  resource_ids: string[];
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  correlation_id: string | null;
  details: unknown;
  chain_seq?: number | null;
  prev_hash?: string | null;
  hash?: string | null;
}

const GENESIS = '0'.repeat(64);
const chainKeyOf = (row: Pick<AuditRow, 'practice_id'>) => row.practice_id ?? 'system';

/** A stable serialisation of everything an event says, so its hash covers all of it. */
function canonicalContent(row: AuditRow): string {
  return JSON.stringify([
    row.id,
    row.practice_id,
    new Date(row.occurred_at).toISOString(),
    row.actor_type,
    row.actor_id,
    row.action,
    row.resource_type,
    row.resource_ids,
    row.outcome,
    row.ip,
    row.user_agent,
    row.request_id,
    row.correlation_id,
    row.details,
  ]);
}

export function chainHash(prevHash: string, seq: number, row: AuditRow): string {
  return createHash('sha256').update(`${prevHash}\n${seq}\n${canonicalContent(row)}`).digest('hex');
}

const SEALER_LOCK_KEY = 0x617564697473; // "audits"
const CONTENT_COLUMNS = `id, practice_id, occurred_at, actor_type, actor_id, action, resource_type, resource_ids,
  outcome, ip, user_agent, request_id, correlation_id, details`;

/** Seals up to `batch` unsealed events; returns how many. Safe to run from several instances. */
export async function sealAuditEvents(db: Database, batch = 1000): Promise<number> {
  return withSystem(db, async (tx) => {
    const { rows: locked } = await tx.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [
      SEALER_LOCK_KEY,
    ]);
    if (!locked[0]?.ok) return 0;
    const { rows } = await tx.query<AuditRow>(
      `SELECT ${CONTENT_COLUMNS} FROM audit_events WHERE hash IS NULL ORDER BY id LIMIT $1`,
      [batch],
    );
    if (rows.length === 0) return 0;
    const keys = [...new Set(rows.map(chainKeyOf))];
    const { rows: headRows } = await tx.query<{ chain_key: string; seq: number; hash: string }>(
      'SELECT chain_key, seq, hash FROM audit_chain_heads WHERE chain_key = ANY($1)',
      [keys],
    );
    const heads = new Map(headRows.map((head) => [head.chain_key, { seq: head.seq, hash: head.hash }]));
    const ids: number[] = [];
    const seqs: number[] = [];
    const prevs: string[] = [];
    const hashes: string[] = [];
    for (const row of rows) {
      const key = chainKeyOf(row);
      const head = heads.get(key) ?? { seq: 0, hash: GENESIS };
      const seq = head.seq + 1;
      const hash = chainHash(head.hash, seq, row);
      ids.push(row.id);
      seqs.push(seq);
      prevs.push(head.hash);
      hashes.push(hash);
      heads.set(key, { seq, hash });
    }
    await tx.query(
      `UPDATE audit_events AS e SET chain_seq = s.seq, prev_hash = s.prev, hash = s.hash
         FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS s(id, seq, prev, hash)
        WHERE e.id = s.id`,
      [ids, seqs, prevs, hashes],
    );
    for (const [key, head] of heads) {
      await tx.query(
        `INSERT INTO audit_chain_heads (chain_key, seq, hash) VALUES ($1, $2, $3)
         ON CONFLICT (chain_key) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash`,
        [key, head.seq, head.hash],
      );
    }
    return rows.length;
  });
}

export interface ChainVerification {
  ok: boolean;
  checked: number;
  /** The first event whose hash does not follow from its content and predecessor. */
  brokenAt: number | null;
}

/** Recomputes one practice's chain (or the system chain for null) from its first event. */
export async function verifyAuditChain(db: Database, practiceId: string | null): Promise<ChainVerification> {
  return withSystem(db, async (tx) => {
    const { rows } = await tx.query<AuditRow>(
      `SELECT ${CONTENT_COLUMNS}, chain_seq, prev_hash, hash FROM audit_events
        WHERE practice_id IS NOT DISTINCT FROM $1 AND hash IS NOT NULL ORDER BY chain_seq`,
      [practiceId],
    );
    let prev = GENESIS;
    let expectedSeq = 1;
    for (const row of rows) {
      if (row.chain_seq !== expectedSeq || row.prev_hash !== prev || row.hash !== chainHash(prev, expectedSeq, row)) {
        return { ok: false, checked: expectedSeq - 1, brokenAt: row.id };
      }
      prev = row.hash;
      expectedSeq += 1;
    }
    return { ok: true, checked: rows.length, brokenAt: null };
  });
}

/**
 * Seals batch after batch until nothing is left (bounded per call), so a sustained load of more
 * than one batch of events per interval can't build an ever-growing unsealed backlog.
 */
export async function sealBacklog(db: Database, batch = 1000, maxBatches = 50): Promise<number> {
  let total = 0;
  for (let i = 0; i < maxBatches; i++) {
    const sealed = await sealAuditEvents(db, batch);
    total += sealed;
    if (sealed < batch) break;
  }
  return total;
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
    (inFlight ??= sealBacklog(db)
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
