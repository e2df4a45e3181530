-- Webhook subscriptions and their deliveries (docs/events.md, "Webhooks"; src/webhooks/).
--
-- A subscription is a practice's receiver URL, the event types it wants (exact types, `family.*`
-- or `*`, matched at fan-out) and its signing secret, sealed with the secret box (never stored in
-- clear). `granted_permissions` are the permissions of whoever last set the event types: a
-- subscriber receives only types whose catalog permission those cover.
CREATE TABLE webhook_subscriptions (
  id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id                uuid NOT NULL REFERENCES practices (id),
  url                        text NOT NULL,
  description                text NOT NULL DEFAULT '',
  event_types                text[] NOT NULL,
  granted_permissions        text[] NOT NULL,
  include_data               boolean NOT NULL DEFAULT false,
  secret_sealed              text NOT NULL,
  -- After a rotation the old secret keeps signing alongside the new one until this instant.
  previous_secret_sealed     text,
  previous_secret_expires_at timestamptz,
  status                     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  disabled_reason            text,
  disabled_at                timestamptz,
  -- When the current unbroken run of failed attempts began; null after any success.
  failing_since              timestamptz,
  created_by                 text,
  created_at                 timestamptz NOT NULL DEFAULT now(),
  updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_practice_idx ON webhook_subscriptions (practice_id, created_at);

-- One row per (event, subscription): the fan-out (webhooks/fanout.ts) inserts them in the relay's
-- sequencing transaction, the workers claim them with FOR UPDATE SKIP LOCKED under a lease
-- (jobs/claim.ts). A row's event going (outbox retention) takes the row with it; the relay never
-- purges the event of a pending delivery.
CREATE TABLE webhook_deliveries (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id         uuid NOT NULL REFERENCES practices (id),
  subscription_id     uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  event_id            uuid NOT NULL REFERENCES outbox_events (id) ON DELETE CASCADE,
  event_type          text NOT NULL,
  occurred_at         timestamptz NOT NULL,
  status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts            integer NOT NULL DEFAULT 0,
  next_attempt_at     timestamptz DEFAULT now(),
  claimed_by          text,
  lease_until         timestamptz,
  last_attempt_at     timestamptz,
  last_status_code    integer,
  last_error          text,
  last_latency_ms     integer,
  -- At most a few hundred characters of the receiver's answer, for the delivery list.
  last_response       text,
  delivered_at        timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, occurred_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_subscription_idx ON webhook_deliveries (subscription_id, created_at DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

ALTER TABLE webhook_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_subscriptions FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY practice_isolation ON webhook_subscriptions TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON webhook_deliveries TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY system_access ON webhook_subscriptions TO medspa_system USING (true);
CREATE POLICY system_access ON webhook_deliveries TO medspa_system USING (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_subscriptions TO medspa_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO medspa_app;
GRANT SELECT, UPDATE ON webhook_subscriptions TO medspa_system;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO medspa_system;
-- The workers announce an automatically disabled subscription with a `webhook.disabled` event.
GRANT INSERT ON outbox_events TO medspa_system;
