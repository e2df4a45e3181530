// Writing domain events into the outbox (migration 008) inside the change's own transaction, and
// rendering a stored event as receivers see it. A change and its event commit or roll back
// together; the relay (events/relay.ts) orders committed events and hands them on.
import type { Queryable } from '../db/database.js';
import { createSecretBox, type SecretBox } from '../auth/secret-box.js';
import { isoFromUtcText, utcText } from '../db/timestamps.js';
import { EVENT_TYPES, type EventType } from './catalog.js';

/** The current shape of every event type; bumped for a type whose payload changes incompatibly. */
export const EVENT_VERSION = 1;

export interface DomainEvent {
  practiceId: string;
  type: EventType;
  resourceId: string;
  actor: { type: string; id: string | null };
  /** Names of the fields the change set (never their values). */
  changedFields?: string[];
  /** Other ids and non-PHI facts receivers route on (patientId, status from/to, counts). */
  refs?: Record<string, string | number | boolean | null>;
  /** The resource as the change left it: stored sealed, shown only to includeData subscriptions. */
  resource?: unknown;
}

/** Who made a change and for which practice, from the request's principal (user or API key). */
export const changeBy = (principal: { practiceId: string; kind: string; id: string }): Pick<DomainEvent, 'practiceId' | 'actor'> => ({
  practiceId: principal.practiceId,
  actor: { type: principal.kind, id: principal.id },
});

/** A stored event as the relay, the stream and the webhook worker read it. */
export interface StoredEvent {
  position: number;
  id: string;
  practiceId: string;
  type: string;
  version: number;
  occurredAt: string;
  payload: Record<string, unknown>;
  sealedData: string | null;
}

/** What a receiver gets: the same for a webhook body and an SSE `data:` line. */
export interface EventEnvelope {
  id: string;
  type: string;
  version: number;
  practiceId: string;
  occurredAt: string;
  data: Record<string, unknown>;
  /** Only for subscriptions with includeData (receivers covered by a BAA). */
  resource?: unknown;
}

const EVENT_DATA_INFO = 'medspasync-pro event-data';

export class EventOutbox {
  private readonly box: SecretBox;

  constructor(encryptionKey: string) {
    this.box = createSecretBox(encryptionKey, EVENT_DATA_INFO);
  }

  /** INSERTs the events in one statement, in the order given, in the caller's transaction; returns their ids. */
  async record(tx: Queryable, events: DomainEvent | readonly DomainEvent[]): Promise<string[]> {
    const list: readonly DomainEvent[] = Array.isArray(events) ? (events as readonly DomainEvent[]) : [events as DomainEvent];
    if (list.length === 0) return [];
    const rows = list.map((event) => {
      const id = crypto.randomUUID();
      return {
        id,
        practice_id: event.practiceId,
        type: event.type,
        resource_type: EVENT_TYPES[event.type].resourceType,
        resource_id: event.resourceId,
        payload: payloadOf(event),
        // The event id is the associated data: a sealed snapshot moved onto another event won't open.
        sealed_data: event.resource === undefined ? null : this.box.seal(JSON.stringify(event.resource), id),
      };
    });
    await tx.query(
      `INSERT INTO outbox_events (id, practice_id, type, version, resource_type, resource_id, payload, sealed_data)
       SELECT e.id, e.practice_id, e.type, $2, e.resource_type, e.resource_id, e.payload, e.sealed_data
         FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (id uuid, practice_id uuid, type text, resource_type text,
              resource_id uuid, payload jsonb, sealed_data text)) WITH ORDINALITY AS e
        ORDER BY e.ordinality`,
      [JSON.stringify(rows), EVENT_VERSION],
    );
    return rows.map((row) => row.id);
  }

  /** The envelope of a stored event; with `includeData`, the sealed resource opened into it. */
  envelope(event: StoredEvent, includeData = false): EventEnvelope {
    const envelope: EventEnvelope = {
      id: event.id,
      type: event.type,
      version: event.version,
      practiceId: event.practiceId,
      occurredAt: event.occurredAt,
      data: event.payload,
    };
    if (includeData && event.sealedData !== null) {
      envelope.resource = JSON.parse(this.box.open(event.sealedData, event.id).toString('utf8'));
    }
    return envelope;
  }
}

function payloadOf(event: DomainEvent): Record<string, unknown> {
  const resourceType = EVENT_TYPES[event.type].resourceType;
  return {
    ...event.refs,
    resourceType,
    resourceId: event.resourceId,
    ...(event.changedFields === undefined ? {} : { changedFields: event.changedFields }),
    actor: event.actor,
  };
}

/** The columns of a StoredEvent, for SELECTs over `outbox_events e`. */
export const STORED_EVENT_COLUMNS = `e.position, e.id, e.practice_id, e.type, e.version, ${utcText('e.occurred_at')} AS occurred_at,
  e.payload, e.sealed_data`;

export interface StoredEventRow {
  position: number;
  id: string;
  practice_id: string;
  type: string;
  version: number;
  occurred_at: string;
  payload: Record<string, unknown>;
  sealed_data: string | null;
}

export function toStoredEvent(row: StoredEventRow): StoredEvent {
  return {
    position: Number(row.position),
    id: row.id,
    practiceId: row.practice_id,
    type: row.type,
    version: row.version,
    occurredAt: isoFromUtcText(row.occurred_at),
    payload: row.payload,
    sealedData: row.sealed_data,
  };
}
