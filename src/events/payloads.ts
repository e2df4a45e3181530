// What each event type's envelope looks like, as JSON Schema for the OpenAPI document: one schema
// per type in the catalog, built from the fields the emitting routes put in `data` (outbox.ts
// payloadOf: resourceType, resourceId, changedFields, actor, and the type's refs).
import { Type, type TSchema } from 'typebox';
import { EVENT_TYPE_NAMES, EVENT_TYPES, type EventType } from './catalog.js';

const Id = Type.String({ format: 'uuid' });
const AppointmentStatus = Type.String({ examples: ['SCHEDULED'], description: 'SCHEDULED, CONFIRMED, IN_PROGRESS, COMPLETED, CANCELLED or NO_SHOW' });

const appointmentRefs = {
  patientId: Id,
  practitionerId: Id,
  serviceId: Id,
  status: AppointmentStatus,
};

/** The fields a type adds to `data` beyond the common ones. */
const REFS: Record<string, Record<string, TSchema>> = {
  patient: { import: Type.Optional(Type.Boolean({ description: 'true when the patient came from POST /patients/import' })) },
  appointment: { ...appointmentRefs, from: Type.Optional(AppointmentStatus), to: Type.Optional(AppointmentStatus) },
  service: { active: Type.Boolean() },
  reconciliation: {
    target: Type.String(),
    algorithm: Type.String(),
    records: Type.Integer(),
    matched: Type.Integer(),
    unmatched: Type.Integer(),
  },
  webhook: { reason: Type.Optional(Type.String({ description: 'webhook.disabled: `gone` (the receiver answered 410) or `failing` (failed for WEBHOOK_DISABLE_AFTER_HOURS)' })) },
};

/** The JSON Schema of one event type's envelope (a webhook body, an SSE `data:` line). */
export function eventEnvelopeSchema(type: EventType): TSchema {
  const info = EVENT_TYPES[type];
  const family = type.split('.')[0]!;
  return Type.Object(
    {
      id: Type.String({ format: 'uuid', description: 'Unique per event: deduplicate by it (also sent as `webhook-id`)' }),
      type: Type.Literal(type),
      version: Type.Integer({ minimum: 1 }),
      practiceId: Id,
      occurredAt: Type.String({ format: 'date-time' }),
      data: Type.Object({
        resourceType: Type.Literal(info.resourceType),
        resourceId: Id,
        changedFields: Type.Optional(Type.Array(Type.String(), { description: 'Names of the fields the change set, never their values' })),
        actor: Type.Object({ type: Type.String({ examples: ['user', 'api_key', 'system'] }), id: Type.Union([Type.String(), Type.Null()]) }),
        ...REFS[family],
      }),
      resource: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Only for subscriptions with includeData: the resource as the change left it (v2 shape). Audited as a disclosure.' })),
    },
    { description: `${info.description} Receivers need ${info.permission} (held by the subscription's creator).` },
  );
}

/** Every type's envelope schema, by type. */
export function eventEnvelopeSchemas(): Record<string, TSchema> {
  return Object.fromEntries(EVENT_TYPE_NAMES.map((type) => [type, eventEnvelopeSchema(type)]));
}
