// The delivery worker, one per API instance (any number of instances share the work). It claims
// due deliveries in batches under a lease (jobs/claim.ts: FOR UPDATE SKIP LOCKED, so no attempt
// is made by two workers), signs and POSTs them with up to WEBHOOK_CONCURRENCY in flight, and
// writes the results back in batches, fenced by the claim's token. Claiming also loads the event
// and the subscription (one round trip per batch, not per delivery); writing results also keeps
// each subscription's failure clock. New deliveries wake it (the relay's onPositions, on every
// instance); a poll covers the rest.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { recordAudit, type AuditWriter } from '../audit/audit.js';
import type { WebhookConfig } from '../config.js';
import type { Database } from '../db/database.js';
import { statementAsSystem, withSystem } from '../db/scope.js';
import { STORED_EVENT_COLUMNS, toStoredEvent, type EventOutbox, type StoredEventRow } from '../events/outbox.js';
import { claimStatement, heldBy, type ClaimQueue } from '../jobs/claim.js';
import type { Resolver } from './address.js';
import { attempt, createAgents, type Agents, type AttemptResult } from './delivery.js';
import { signedHeaders, type SecretVault } from './signing.js';

interface Logger {
  error: (obj: object, msg: string) => void;
  warn: (obj: object, msg: string) => void;
}

export interface WorkerOptions {
  db: Database;
  events: EventOutbox;
  audit: AuditWriter;
  vault: SecretVault;
  resolve: Resolver;
  log: Logger;
  config: WebhookConfig;
}

interface ClaimedRow extends StoredEventRow {
  delivery_id: string;
  attempts: number;
  subscription_id: string;
  url: string;
  include_data: boolean;
  secret_sealed: string;
  previous_secret_sealed: string | null;
}

export const DELIVERY_QUEUE: ClaimQueue = {
  table: 'webhook_deliveries',
  ready: `t.status = 'pending' AND t.next_attempt_at <= now()
          AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = t.subscription_id AND s.status = 'active')`,
  order: 't.next_attempt_at, t.occurred_at',
  select: `SELECT c.id AS delivery_id, c.attempts, c.subscription_id, s.url, s.include_data, s.secret_sealed,
                  CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret_sealed END AS previous_secret_sealed,
                  ${STORED_EVENT_COLUMNS}
             FROM c JOIN webhook_subscriptions s ON s.id = c.subscription_id JOIN outbox_events e ON e.id = c.event_id
            ORDER BY c.occurred_at, e.position`,
};

export type Outcome = 'delivered' | 'retry' | 'failed';

interface Completion {
  id: string;
  token: string;
  outcome: Outcome;
  status_code: number | null;
  error: string | null;
  latency_ms: number;
  response: string | null;
  retry_in_ms: number | null;
}

// One statement: the attempts' results, then each touched subscription's failure clock (a success
// stops it, the first failure starts it), then the subscriptions failing for longer than $2 ms.
const COMPLETE = `
  WITH r AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, token text, outcome text, status_code int, error text,
                                                      latency_ms int, response text, retry_in_ms bigint)
  ), d AS (
    UPDATE webhook_deliveries d SET
      attempts = d.attempts + 1,
      status = CASE r.outcome WHEN 'retry' THEN 'pending' ELSE r.outcome END,
      next_attempt_at = CASE WHEN r.outcome = 'retry' THEN now() + r.retry_in_ms * interval '1 millisecond' END,
      last_attempt_at = now(), last_status_code = r.status_code, last_error = r.error,
      last_latency_ms = r.latency_ms, last_response = r.response,
      delivered_at = CASE WHEN r.outcome = 'delivered' THEN now() ELSE d.delivered_at END,
      claimed_by = NULL, lease_until = NULL
      FROM r WHERE d.id = r.id AND ${heldBy('d', 'r.token')}
    RETURNING d.subscription_id, d.status
  ), per_subscription AS (
    SELECT subscription_id, bool_or(status = 'delivered') AS ok FROM d GROUP BY subscription_id
  ), clock AS (
    UPDATE webhook_subscriptions s SET failing_since = CASE WHEN p.ok THEN NULL ELSE now() END
      FROM per_subscription p
     WHERE s.id = p.subscription_id AND CASE WHEN p.ok THEN s.failing_since IS NOT NULL ELSE s.failing_since IS NULL END
  )
  SELECT s.id FROM webhook_subscriptions s JOIN per_subscription p ON p.subscription_id = s.id
   WHERE NOT p.ok AND s.status = 'active' AND s.failing_since < now() - $2 * interval '1 millisecond'`;

/** A wait drawn between half and all of its nominal value: retries of many deliveries spread out, and the schedule keeps at least half its span. */
export const jittered = (nominalMs: number, random = Math.random) => Math.round(nominalMs / 2 + (random() * nominalMs) / 2);

export type DisableReason = 'gone' | 'failing';

const BACKLOG = `SELECT count(*)::int AS pending,
         coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8 AS oldest_seconds
    FROM webhook_deliveries WHERE status = 'pending'`;

/**
 * Deliveries not yet delivered nor given up (waiting for an attempt or a retry), and the age of the
 * oldest one's event (0 when none), across every practice and instance.
 */
export async function deliveryBacklog(db: Database): Promise<{ pending: number; oldestSeconds: number }> {
  const { rows } = await statementAsSystem<{ pending: number; oldest_seconds: number }>(db, { sql: BACKLOG, params: [] });
  return { pending: rows[0]?.pending ?? 0, oldestSeconds: rows[0]?.oldest_seconds ?? 0 };
}

export class DeliveryWorker {
  private readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly agents: Agents;
  private inFlight = 0;
  private claiming: Promise<void> | null = null;
  private again = false;
  private stopping = false;
  private poll: NodeJS.Timeout | null = null;
  private readonly idle = new Set<() => void>();
  private pending: Array<{ completion: Completion; done: () => void }> = [];
  private writing: Promise<void> | null = null;
  /** Attempts by outcome since start (the metrics read them). */
  private readonly outcomes: Record<Outcome, number> = { delivered: 0, retry: 0, failed: 0 };

  constructor(private readonly options: WorkerOptions) {
    this.agents = createAgents(options.config.concurrency);
  }

  start(): void {
    this.poll = setInterval(() => this.kick(), this.options.config.pollMs);
    this.poll.unref();
    this.kick();
  }

  stats(): { inFlight: number; attempts: Readonly<Record<Outcome, number>> } {
    return { inFlight: this.inFlight, attempts: this.outcomes };
  }

  /** Claim now if there is room (coalesced with a claim in progress). */
  kick(): void {
    if (this.stopping) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    this.claiming = this.fill()
      .catch((error: unknown) => {
        if (!this.stopping) this.options.log.error({ err: error, component: 'webhooks' }, 'claiming webhook deliveries failed');
      })
      .finally(() => {
        this.claiming = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /**
   * Stops claiming and waits up to `graceMs` for deliveries in flight. What is still running after
   * that is abandoned: its lease expires and another instance (or this one's next start) takes it.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.poll) clearInterval(this.poll);
    await this.claiming;
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.idle.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.writing;
    this.agents['http:'].destroy();
    this.agents['https:'].destroy();
  }

  private async fill(): Promise<void> {
    const { concurrency, leaseMs } = this.options.config;
    while (!this.stopping && this.inFlight < concurrency) {
      const limit = concurrency - this.inFlight;
      const { token, ...statement } = claimStatement(DELIVERY_QUEUE, { owner: this.owner, limit, leaseMs });
      const { rows } = await statementAsSystem<ClaimedRow>(this.options.db, statement);
      for (const row of rows) {
        this.inFlight++;
        void this.run(row, token).finally(() => {
          this.inFlight--;
          if (this.inFlight === 0) for (const resolve of this.idle) resolve();
          this.kick();
        });
      }
      if (rows.length < limit) return;
    }
  }

  private async run(row: ClaimedRow, token: string): Promise<void> {
    let result: AttemptResult;
    try {
      result = await this.send(row);
    } catch (error) {
      // Our own failure (a secret that won't open, the audit store down): a failed attempt, retried.
      this.options.log.error({ err: error, component: 'webhooks', deliveryId: row.delivery_id }, 'webhook delivery attempt failed before sending');
      result = { delivered: false, gone: false, statusCode: null, error: 'internal error before sending', latencyMs: 0, response: null };
    }
    await this.complete(this.completionOf(row, token, result));
    if (result.gone) await this.disable(row.subscription_id, 'gone');
  }

  private completionOf(row: ClaimedRow, token: string, result: AttemptResult): Completion {
    const schedule = this.options.config.retryScheduleMs;
    const attemptNumber = row.attempts + 1;
    let outcome: Outcome = 'delivered';
    let retryInMs: number | null = null;
    if (!result.delivered) {
      const wait = schedule[attemptNumber - 1];
      if (result.gone || wait === undefined) outcome = 'failed';
      else {
        outcome = 'retry';
        retryInMs = jittered(wait);
        // Shorter than the poll (tests, a tight schedule): come back for it on time.
        if (retryInMs < this.options.config.pollMs) setTimeout(() => this.kick(), retryInMs + 5).unref();
      }
    }
    this.outcomes[outcome]++;
    return {
      id: row.delivery_id,
      token,
      outcome,
      status_code: result.statusCode,
      error: result.error,
      latency_ms: result.latencyMs,
      response: result.response,
      retry_in_ms: retryInMs,
    };
  }

  private async send(row: ClaimedRow): Promise<AttemptResult> {
    const { events, vault, audit, config } = this.options;
    const stored = toStoredEvent(row);
    const envelope = events.envelope(stored, row.include_data);
    if (envelope.resource !== undefined) {
      // A disclosure of the resource to the receiver: recorded (and committed) before it leaves.
      await audit.record({
        practiceId: stored.practiceId,
        actorType: 'system',
        actorId: null,
        action: 'webhook.disclosure',
        resourceType: String(stored.payload.resourceType ?? ''),
        resourceIds: [String(stored.payload.resourceId ?? '')],
        outcome: 'success',
        details: { subscriptionId: row.subscription_id, deliveryId: row.delivery_id, eventId: stored.id, eventType: stored.type },
      });
    }
    const body = JSON.stringify(envelope);
    const keys = [vault.key(row.secret_sealed, row.subscription_id)];
    if (row.previous_secret_sealed !== null) keys.push(vault.key(row.previous_secret_sealed, row.subscription_id));
    const headers = signedHeaders(keys, stored.id, Math.floor(Date.now() / 1000), body);
    return attempt(new URL(row.url), headers, body, { resolve: this.options.resolve, allowLoopback: config.allowLoopback, timeoutMs: config.timeoutMs }, this.agents);
  }

  /** Queues a result; results of concurrent attempts are written together (one statement per batch). */
  private complete(completion: Completion): Promise<void> {
    return new Promise((resolve) => {
      this.pending.push({ completion, done: resolve });
      this.writing ??= this.writeResults().finally(() => {
        this.writing = null;
      });
    });
  }

  private async writeResults(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, 500);
      try {
        const { rows } = await statementAsSystem<{ id: string }>(this.options.db, {
          sql: COMPLETE,
          params: [JSON.stringify(batch.map((entry) => entry.completion)), this.options.config.disableAfterMs],
        });
        for (const { id } of rows) await this.disable(id, 'failing');
      } catch (error) {
        // The rows stay claimed until their lease ends, then are attempted again: at least once.
        this.options.log.error({ err: error, component: 'webhooks' }, 'recording webhook delivery results failed');
      }
      for (const entry of batch) entry.done();
    }
  }

  /** Disables a subscription and tells its practice's admins: an audit event, a warn line, a `webhook.disabled` event. */
  async disable(subscriptionId: string, reason: DisableReason): Promise<void> {
    const explanation = reason === 'gone' ? 'the receiver answered 410 Gone' : `deliveries failed for ${this.options.config.disableAfterMs / 3_600_000} hours without a success`;
    await withSystem(this.options.db, async (tx) => {
      const { rows } = await tx.query<{ id: string; practice_id: string; url: string }>(
        `UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = $2, disabled_at = now(), updated_at = now()
          WHERE id = $1 AND status = 'active' RETURNING id, practice_id, url`,
        [subscriptionId, explanation],
      );
      const subscription = rows[0];
      if (subscription === undefined) return; // already disabled (another instance, an admin)
      await recordAudit(tx, {
        practiceId: subscription.practice_id,
        actorType: 'system',
        actorId: null,
        action: 'webhook.disabled',
        resourceType: 'webhook_subscription',
        resourceIds: [subscription.id],
        outcome: 'success',
        details: { reason },
      });
      await this.options.events.record(tx, {
        practiceId: subscription.practice_id,
        type: 'webhook.disabled',
        resourceId: subscription.id,
        actor: { type: 'system', id: null },
        refs: { reason },
      });
      // The origin only: a URL's path or query may carry the receiver's own token.
      this.options.log.warn(
        { component: 'webhooks', subscriptionId: subscription.id, practiceId: subscription.practice_id, target: new URL(subscription.url).origin, reason },
        `webhook subscription disabled: ${explanation}`,
      );
    });
  }
}
