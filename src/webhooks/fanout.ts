// Fan-out: inside the relay's sequencing transaction (events/relay.ts onSequenced), one INSERT …
// SELECT creates a delivery row for every (event in the range × active subscription of that
// event's practice that asks for its type). A subscription's patterns are matched in SQL (exact,
// `family.*`, `*`), and its type's catalog permission must be covered by the permissions recorded
// with the subscription (`read:*` and `*:*` style grants included). Sequencing and fan-out commit
// together: an event never has a position without its deliveries, and no delivery is made twice
// (the unique (subscription, event) pair).
import type { Queryable } from '../db/database.js';
import { EVENT_TYPES } from '../events/catalog.js';

/** Type -> permission for every type that fans out. webhook.test goes to one subscription only (routes.ts). */
const FANNED_OUT: string = JSON.stringify(
  Object.fromEntries(Object.entries(EVENT_TYPES).filter(([type]) => type !== 'webhook.test').map(([type, info]) => [type, info.permission])),
);

const FAN_OUT = `
  INSERT INTO webhook_deliveries (practice_id, subscription_id, event_id, event_type, occurred_at)
  SELECT e.practice_id, s.id, e.id, e.type, e.occurred_at
    FROM outbox_events e
    JOIN jsonb_each_text($3::jsonb) AS catalog(type, permission) ON catalog.type = e.type
    JOIN webhook_subscriptions s ON s.practice_id = e.practice_id AND s.status = 'active'
   WHERE e.position BETWEEN $1 AND $2
     AND s.event_types && ARRAY['*', e.type, split_part(e.type, '.', 1) || '.*']
     AND EXISTS (SELECT 1 FROM unnest(s.granted_permissions) AS granted(p)
                  WHERE split_part(granted.p, ':', 1) IN ('*', split_part(catalog.permission, ':', 1))
                    AND split_part(granted.p, ':', 2) IN ('*', split_part(catalog.permission, ':', 2)))
   ORDER BY e.position
  ON CONFLICT (subscription_id, event_id) DO NOTHING`;

/** The onSequenced hook: returns how many deliveries it created. */
export async function fanOut(tx: Queryable, range: { from: number; to: number }): Promise<number> {
  const { rowCount } = await tx.query(FAN_OUT, [range.from, range.to, FANNED_OUT]);
  return rowCount;
}

/** Keeps an event in the outbox while one of its deliveries may still be attempted (relay.keepWhile). */
export const PENDING_DELIVERY_KEEPS_EVENT = `EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = o.id AND d.status = 'pending')`;
