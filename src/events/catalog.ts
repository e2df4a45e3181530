// Every event type the API emits, what resource it is about, and the permission that may see it.
// One list serves the outbox (what may be written), webhook subscriptions (what may be asked for),
// the stream (who may see what) and the OpenAPI document (what each payload looks like).

export interface EventTypeInfo {
  resourceType: string;
  /** A subscriber or stream client must hold this to receive the event. */
  permission: string;
  description: string;
}

export const EVENT_TYPES = {
  'patient.created': { resourceType: 'patient', permission: 'read:patients', description: 'A patient was created (POST /patients or an import).' },
  'patient.updated': { resourceType: 'patient', permission: 'read:patients', description: 'A patient was changed; `changedFields` names the fields.' },
  'patient.deactivated': { resourceType: 'patient', permission: 'read:patients', description: 'A patient was deactivated (DELETE /patients/{id}).' },
  'appointment.booked': { resourceType: 'appointment', permission: 'read:appointments', description: 'An appointment was booked.' },
  'appointment.rescheduled': { resourceType: 'appointment', permission: 'read:appointments', description: 'An appointment moved (time, practitioner or room).' },
  'appointment.status_changed': { resourceType: 'appointment', permission: 'read:appointments', description: 'An appointment changed status (CONFIRMED, IN_PROGRESS, COMPLETED, NO_SHOW); `from` and `to` say which.' },
  'appointment.cancelled': { resourceType: 'appointment', permission: 'read:appointments', description: 'An appointment was cancelled.' },
  'appointment.updated': { resourceType: 'appointment', permission: 'read:appointments', description: 'An appointment\'s notes changed.' },
  'service.created': { resourceType: 'service', permission: 'read:services', description: 'A service was added to the catalog.' },
  'service.updated': { resourceType: 'service', permission: 'read:services', description: 'A service changed (active: false retires it).' },
  'emergency_access.granted': { resourceType: 'emergency_access_grant', permission: 'admin:audit-events', description: 'A user broke glass: emergency permissions were granted (`userId`, `permissions`, `expiresAt`; the reason stays in the grant, GET /emergency-access).' },
  'emergency_access.ended': { resourceType: 'emergency_access_grant', permission: 'admin:audit-events', description: 'An emergency access grant was ended early by its user or revoked by an administrator (`by`).' },
  'reconciliation.completed': { resourceType: 'reconciliation_run', permission: 'read:reconciliations', description: 'A reconciliation run finished; its results are at its run resource.' },
  'webhook.test': { resourceType: 'webhook_subscription', permission: 'admin:webhooks', description: 'Sent by POST /v2/webhooks/{id}/test, to that subscription only.' },
  'webhook.disabled': { resourceType: 'webhook_subscription', permission: 'admin:webhooks', description: 'A subscription was disabled: its receiver answered 410 Gone, or its deliveries failed for WEBHOOK_DISABLE_AFTER_HOURS; `reason` says which.' },
} as const satisfies Record<string, EventTypeInfo>;

export type EventType = keyof typeof EVENT_TYPES;

export const EVENT_TYPE_NAMES = Object.keys(EVENT_TYPES) as EventType[];

export const isEventType = (value: string): value is EventType => Object.hasOwn(EVENT_TYPES, value);

/** The resource families (`appointment`, …): `appointment.*` in a filter means all of one. */
const FAMILIES = new Set(EVENT_TYPE_NAMES.map((type) => type.split('.')[0]!));

/**
 * Whether a filter entry is one the API understands: `*`, a family wildcard (`appointment.*`) or
 * an exact type. A typo must be refused, not silently match nothing forever.
 */
export function isEventTypePattern(pattern: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return FAMILIES.has(pattern.slice(0, -2));
  return isEventType(pattern);
}

export function matchesEventType(type: string, pattern: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return type.startsWith(pattern.slice(0, -1));
  return type === pattern;
}

export const matchesAnyEventType = (type: string, patterns: readonly string[]) => patterns.some((pattern) => matchesEventType(type, pattern));
