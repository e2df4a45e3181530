-- Scheduling: the services catalog, appointments that can never be double-booked, and the
-- idempotency keys that make a retried POST safe.
--
-- Double booking is decided by exclusion constraints (btree_gist lets a GiST index combine
-- "same practitioner" (=) with "overlapping time" (&&)). The API looks first so it can name the
-- conflicting appointment; the constraint is what holds under concurrency, on one instance or
-- many. Ranges are half-open [start, end): back-to-back appointments don't overlap.

-- The extension lives in public (where a search_path of "<schema>, public" finds it). The
-- migration runner's advisory lock serialises concurrent migrations on one server; the handler
-- covers a second database on the same cluster creating it at the same moment.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist') THEN
    CREATE EXTENSION btree_gist WITH SCHEMA public;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- Composite keys so an appointment can only point at a patient, practitioner and service of its
-- own practice: a cross-practice reference is impossible even through a bug (foreign-key checks
-- don't go through row-level security, so the practice must be part of the key).
CREATE UNIQUE INDEX IF NOT EXISTS users_practice_id_id_key ON users (practice_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS patients_practice_id_id_key ON patients (practice_id, id);

CREATE TABLE services (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id       uuid NOT NULL REFERENCES practices (id),
  name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  category          text NOT NULL CHECK (length(category) BETWEEN 1 AND 100),
  duration_minutes  integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 720),
  price_cents       integer NOT NULL CHECK (price_cents BETWEEN 0 AND 100000000),
  active            boolean NOT NULL DEFAULT true,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (practice_id, id)
);
-- One service per name in a practice (409 SERVICE_EXISTS), case-insensitively.
CREATE UNIQUE INDEX services_practice_name_key ON services (practice_id, lower(name));
CREATE INDEX services_practice_list_idx ON services (practice_id, lower(category), lower(name), id);

CREATE TABLE appointments (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id          uuid NOT NULL REFERENCES practices (id),
  patient_id           uuid NOT NULL,
  practitioner_id      uuid NOT NULL,
  service_id           uuid NOT NULL,
  start_time           timestamptz NOT NULL,
  end_time             timestamptz NOT NULL,
  room                 text CHECK (room IS NULL OR length(room) BETWEEN 1 AND 50),
  notes                text CHECK (length(notes) <= 2000),
  status               text NOT NULL DEFAULT 'SCHEDULED'
                         CHECK (status IN ('SCHEDULED', 'CONFIRMED', 'COMPLETED', 'CANCELLED', 'NO_SHOW')),
  -- The service's price when booked: a later catalog change doesn't rewrite past revenue.
  price_cents          integer NOT NULL CHECK (price_cents >= 0),
  cancellation_reason  text CHECK (length(cancellation_reason) <= 500),
  cancelled_at         timestamptz,
  created_by           text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT appointments_time_order CHECK (end_time > start_time),
  CONSTRAINT appointments_max_length CHECK (end_time - start_time <= interval '24 hours'),
  CONSTRAINT appointments_cancel_reason CHECK (status <> 'CANCELLED' OR cancellation_reason IS NOT NULL),
  FOREIGN KEY (practice_id, patient_id) REFERENCES patients (practice_id, id),
  FOREIGN KEY (practice_id, practitioner_id) REFERENCES users (practice_id, id),
  FOREIGN KEY (practice_id, service_id) REFERENCES services (practice_id, id),
  -- Cancelled and no-show appointments free their slot; everything else holds it.
  CONSTRAINT appointments_practitioner_overlap EXCLUDE USING gist (
    practitioner_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&
  ) WHERE (status NOT IN ('CANCELLED', 'NO_SHOW')),
  CONSTRAINT appointments_patient_overlap EXCLUDE USING gist (
    patient_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&
  ) WHERE (status NOT IN ('CANCELLED', 'NO_SHOW')),
  -- Rooms are names within a practice, compared case-insensitively ("Laser 1" = "laser 1").
  CONSTRAINT appointments_room_overlap EXCLUDE USING gist (
    practice_id WITH =, lower(room) WITH =, tstzrange(start_time, end_time, '[)') WITH &&
  ) WHERE (room IS NOT NULL AND status NOT IN ('CANCELLED', 'NO_SHOW'))
);
-- Calendar lists and reports scan a practice's time window; INCLUDE lets the report aggregate
-- from the index alone.
CREATE INDEX appointments_practice_start_idx ON appointments (practice_id, start_time, id)
  INCLUDE (status, practitioner_id, service_id, price_cents);
CREATE INDEX appointments_practitioner_start_idx ON appointments (practitioner_id, start_time);
CREATE INDEX appointments_patient_start_idx ON appointments (patient_id, start_time);
CREATE INDEX appointments_service_idx ON appointments (service_id);

-- Idempotency keys (Idempotency-Key header on POST). A key is claimed before the work runs
-- (state in_progress), then holds the response to replay (state completed) for 24 hours.
CREATE TABLE idempotency_keys (
  practice_id      uuid NOT NULL REFERENCES practices (id),
  key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  request_hash     text NOT NULL,
  method           text NOT NULL,
  path             text NOT NULL,
  state            text NOT NULL CHECK (state IN ('in_progress', 'completed')),
  claim_token      uuid NOT NULL,
  locked_until     timestamptz NOT NULL,
  response_status  integer,
  response_headers jsonb,
  response_body    text,
  request_id       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  PRIMARY KEY (practice_id, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

ALTER TABLE services ENABLE ROW LEVEL SECURITY;
ALTER TABLE services FORCE ROW LEVEL SECURITY;
ALTER TABLE appointments ENABLE ROW LEVEL SECURITY;
ALTER TABLE appointments FORCE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY practice_isolation ON services TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON appointments TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON idempotency_keys TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY system_access ON services TO medspa_system USING (true);
CREATE POLICY system_access ON appointments TO medspa_system USING (true);
CREATE POLICY system_access ON idempotency_keys TO medspa_system USING (true);

-- Appointments and services are never deleted (cancel / deactivate instead).
GRANT SELECT, INSERT, UPDATE ON services, appointments TO medspa_app, medspa_system;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO medspa_app, medspa_system;
