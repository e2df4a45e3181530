-- The transactional outbox (docs/events.md). A change of a patient, an appointment, a service or
-- a finished reconciliation run INSERTs its event here in the change's own transaction: no event
-- for a rolled-back change, no committed change without its event.
--
-- Order. `seq` is drawn from a sequence before commit, so seq order is not commit order: a reader
-- that followed `seq > last seen` would skip an event whose transaction committed after a later
-- one's. The outbox relay therefore gives committed events their `position` afterwards, one relay
-- at a time (an advisory lock), in transactions that follow each other: every position below one a
-- reader has seen is already visible to it. Streams resume and webhooks fan out by position.
CREATE TABLE outbox_events (
  seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id             uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  practice_id    uuid NOT NULL REFERENCES practices (id),
  type           text NOT NULL CHECK (type ~ '^[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*$'),
  version        integer NOT NULL DEFAULT 1 CHECK (version >= 1),
  resource_type  text NOT NULL,
  resource_id    uuid NOT NULL,
  occurred_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- Ids, field names, who made the change: never PHI values (docs/events.md says why).
  payload        jsonb NOT NULL DEFAULT '{}',
  -- The resource as the change left it, AES-256-GCM sealed (events/outbox.ts): opened only for a
  -- subscription that opted in to includeData. Null when the change has no resource to show.
  sealed_data    text,
  position       bigint UNIQUE,
  sequenced_at   timestamptz
);
CREATE INDEX outbox_events_unsequenced_idx ON outbox_events (seq) WHERE position IS NULL;
CREATE INDEX outbox_events_practice_position_idx ON outbox_events (practice_id, position);
CREATE INDEX outbox_events_occurred_idx ON outbox_events (occurred_at);

-- Wakes the relays on commit (a NOTIFY is delivered only if its transaction commits). The payload
-- is the schema, so that databases sharing a server (tests use a schema each) ignore each other.
CREATE FUNCTION outbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('medspa_outbox', current_schema());
  RETURN NULL;
END
$$;
CREATE TRIGGER outbox_events_inserted AFTER INSERT ON outbox_events
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify();

ALTER TABLE outbox_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_events FORCE ROW LEVEL SECURITY;
CREATE POLICY practice_isolation ON outbox_events TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY system_access ON outbox_events TO medspa_system USING (true);
GRANT SELECT, INSERT ON outbox_events TO medspa_app;
GRANT SELECT, UPDATE, DELETE ON outbox_events TO medspa_system;
