-- Foundation: roles for tenant scoping, practices, users, and the append-only audit log.
--
-- Two roles carry every query the application makes (SET LOCAL ROLE inside a transaction):
--   medspa_app     practice-scoped work; row-level security restricts it to the practice
--                  named by current_setting('app.practice_id').
--   medspa_system  the few cross-practice paths (login by email, first start, audit sealing).
-- The connecting user owns the tables, and FORCE ROW LEVEL SECURITY makes the policies apply to
-- the owner too, so a query that forgets to take one of these roles sees nothing.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'medspa_app') THEN
    CREATE ROLE medspa_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; -- another database created it first
END
$$;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'medspa_system') THEN
    CREATE ROLE medspa_system NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
DO $$
BEGIN
  EXECUTE format('GRANT medspa_app, medspa_system TO %I', current_user);
EXCEPTION WHEN others THEN NULL; -- already a member (or a superuser, who needs no grant)
END
$$;

CREATE TABLE practices (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  time_zone   text NOT NULL DEFAULT 'America/New_York',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id         uuid NOT NULL REFERENCES practices (id),
  email               text NOT NULL CHECK (email = lower(email)),
  password_hash       text NOT NULL,
  role                text NOT NULL CHECK (role IN ('ADMIN', 'PRACTITIONER', 'STAFF', 'MANAGER')),
  first_name          text NOT NULL DEFAULT '',
  last_name           text NOT NULL DEFAULT '',
  active              boolean NOT NULL DEFAULT true,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
-- One account per email across the whole service: login takes only an email and a password,
-- so an email must name exactly one user.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_practice_idx ON users (practice_id);

-- Append-only. Rows are written by requests (cheap inserts, no lock) and later sealed into a
-- per-practice hash chain by the audit sealer, in the order they are sealed: chain_seq, prev_hash
-- and hash are set exactly once, and nothing else may ever change.
CREATE TABLE audit_events (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  practice_id     uuid REFERENCES practices (id),
  occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_type      text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'anonymous')),
  actor_id        text,
  action          text NOT NULL,
  resource_type   text,
  resource_ids    text[] NOT NULL DEFAULT '{}',
  outcome         text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
  ip              text,
  user_agent      text,
  request_id      text,
  correlation_id  text,
  details         jsonb NOT NULL DEFAULT '{}',
  chain_seq       bigint,
  prev_hash       text,
  hash            text
);
CREATE INDEX audit_events_practice_time_idx ON audit_events (practice_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_unsealed_idx ON audit_events (id) WHERE hash IS NULL;

CREATE TABLE audit_chain_heads (
  chain_key  text PRIMARY KEY, -- a practice id, or 'system' for events outside any practice
  seq        bigint NOT NULL,
  hash       text NOT NULL
);

CREATE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.hash IS NOT NULL
     OR NEW.hash IS NULL OR NEW.chain_seq IS NULL OR NEW.prev_hash IS NULL
     OR (to_jsonb(NEW) - ARRAY['chain_seq', 'prev_hash', 'hash'])
        IS DISTINCT FROM (to_jsonb(OLD) - ARRAY['chain_seq', 'prev_hash', 'hash']) THEN
    RAISE EXCEPTION 'audit_events rows can only be sealed, never changed' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_guard();

-- Row-level security: the practice of the current unit of work, or nothing.
ALTER TABLE practices ENABLE ROW LEVEL SECURITY;
ALTER TABLE practices FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;

CREATE POLICY practice_isolation ON practices TO medspa_app
  USING (id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON users TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON audit_events TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);

CREATE POLICY system_access ON practices TO medspa_system USING (true);
CREATE POLICY system_access ON users TO medspa_system USING (true);
CREATE POLICY system_access ON audit_events TO medspa_system USING (true);
CREATE POLICY system_access ON audit_chain_heads TO medspa_system USING (true);

DO $$
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO medspa_app, medspa_system', current_schema());
END
$$;
GRANT SELECT, UPDATE ON practices TO medspa_app;
GRANT SELECT, INSERT, UPDATE ON users TO medspa_app;
GRANT SELECT, INSERT ON audit_events TO medspa_app;
GRANT SELECT, INSERT, UPDATE ON practices, users TO medspa_system;
GRANT SELECT, INSERT, UPDATE ON audit_events TO medspa_system;
GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO medspa_system;
