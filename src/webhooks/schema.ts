// Request and response shapes of /v2/webhooks.
import { Type, type Static } from 'typebox';
import { PageQuery, PathId, paginated } from '../http/pagination.js';

const EventTypes = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
  minItems: 1,
  maxItems: 50,
  uniqueItems: true,
  description: 'Exact types (`appointment.booked`), a family (`appointment.*`) or `*`. An unknown one is a 400.'
});
const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'https only (http and loopback/private hosts only with WEBHOOK_ALLOW_LOOPBACK=true); no credentials in it' });
const Description = Type.String({ maxLength: 500 });
const IncludeData = Type.Boolean({ description: 'Deliveries also carry `resource` (PHI): only for receivers covered by a BAA. Each such delivery is audited as a disclosure.' });
const Timestamp = Type.String({ format: 'date-time' });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

export const WebhookSubscription = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    url: Type.String(),
    description: Type.String(),
    eventTypes: Type.Array(Type.String()),
    includeData: Type.Boolean(),
    status: Type.Union([Type.Literal('active'), Type.Literal('disabled')]),
    disabledReason: Type.Union([Type.String(), Type.Null()]),
    disabledAt: NullableTimestamp,
    previousSecretExpiresAt: Type.Union([Timestamp, Type.Null()], { description: 'After a rotation: until then the old secret signs too' }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  },
  { $id: 'WebhookSubscription' },
);
export type WebhookSubscription = Static<typeof WebhookSubscription>;

const Secret = Type.String({ description: 'The signing secret (`whsec_` + base64 of 32 random bytes). Shown only in this response.' });

export const CreatedWebhookSubscription = Type.Intersect([Type.Ref('WebhookSubscription'), Type.Object({ secret: Secret })]);

export const WebhookCreate = Type.Object(
  { url: Url, eventTypes: EventTypes, description: Type.Optional(Description), includeData: Type.Optional(IncludeData) },
  { additionalProperties: false },
);
export type WebhookCreate = Static<typeof WebhookCreate>;

export const WebhookUpdate = Type.Object(
  {
    url: Type.Optional(Url),
    eventTypes: Type.Optional(EventTypes),
    description: Type.Optional(Description),
    includeData: Type.Optional(IncludeData),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('disabled')], { description: '`active` re-enables a disabled subscription' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type WebhookUpdate = Static<typeof WebhookUpdate>;

export const RotatedSecret = Type.Object({
  id: Type.String({ format: 'uuid' }),
  secret: Secret,
  previousSecretExpiresAt: Timestamp,
});

export const WebhookDelivery = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    subscriptionId: Type.String({ format: 'uuid' }),
    eventId: Type.String({ format: 'uuid', description: 'Also the `webhook-id` header' }),
    eventType: Type.String(),
    occurredAt: Timestamp,
    status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
    attempts: Type.Integer(),
    nextAttemptAt: NullableTimestamp,
    lastAttemptAt: NullableTimestamp,
    responseStatus: Type.Union([Type.Integer(), Type.Null()]),
    latencyMs: Type.Union([Type.Integer(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()], { description: 'Why the last attempt failed (a refused address, a timeout, a status)' }),
    response: Type.Union([Type.String(), Type.Null()], { description: 'The start of the receiver\'s last answer (256 characters at most)' }),
    deliveredAt: NullableTimestamp,
    createdAt: Timestamp,
  },
  { $id: 'WebhookDelivery' },
);
export type WebhookDelivery = Static<typeof WebhookDelivery>;

export const WebhookList = paginated(Type.Ref('WebhookSubscription'));
export const DeliveryList = paginated(Type.Ref('WebhookDelivery'));
export const WebhookListQuery = Type.Object(PageQuery, { additionalProperties: false });
export const DeliveryListQuery = Type.Object(
  { ...PageQuery, status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')])) },
  { additionalProperties: false },
);
export const WebhookIdParams = Type.Object({ webhookId: PathId() });
export const DeliveryIdParams = Type.Object({ webhookId: PathId(), deliveryId: PathId() });
export const TestSent = Type.Object({
  deliveryId: Type.String({ format: 'uuid' }),
  eventId: Type.String({ format: 'uuid' }),
});
