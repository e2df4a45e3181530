-- Patients: the practice's PHI records. Never erased (retention): DELETE in the API sets
-- status INACTIVE and deleted_at, so medspa_app gets no DELETE privilege at all.
--
-- The application normalises before writing (names NFC-trimmed, email lower-case, phone in
-- E.164); the CHECKs below are the last line, so a bug or a hand-written INSERT can't store
-- what the API would refuse.
CREATE TABLE patients (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id    uuid NOT NULL REFERENCES practices (id),
  first_name     text NOT NULL CHECK (length(first_name) BETWEEN 1 AND 100),
  last_name      text NOT NULL CHECK (length(last_name) BETWEEN 1 AND 100),
  date_of_birth  date,
  email          text CHECK (email = lower(email) AND length(email) <= 254),
  phone_number   text CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
  gender         text CHECK (length(gender) <= 50),
  address        jsonb CHECK (address IS NULL OR jsonb_typeof(address) = 'object'),
  status         text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'VIP', 'INACTIVE')),
  notes          text CHECK (length(notes) <= 10000),
  external_ids   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(external_ids) = 'object'),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  deleted_at     timestamptz
);

-- Duplicate rules (409 PATIENT_EXISTS). The API looks first to name the existing patient;
-- these unique indexes decide concurrent creates. A deactivated (deleted) record no longer
-- blocks a new one, but is kept.
CREATE UNIQUE INDEX patients_practice_email_key ON patients (practice_id, email)
  WHERE email IS NOT NULL AND deleted_at IS NULL;
CREATE UNIQUE INDEX patients_practice_name_dob_key
  ON patients (practice_id, lower(first_name), lower(last_name), date_of_birth)
  WHERE date_of_birth IS NOT NULL AND deleted_at IS NULL;

-- List order (stable: the id breaks ties) and the status filter.
CREATE INDEX patients_practice_name_idx ON patients (practice_id, lower(last_name), lower(first_name), id);
CREATE INDEX patients_practice_created_idx ON patients (practice_id, created_at, id);
CREATE INDEX patients_practice_status_name_idx
  ON patients (practice_id, status, lower(last_name), lower(first_name), id);
-- Phone search by exact number or digits prefix; name/email substring search scans the
-- practice's rows (no extension needed: works the same on PGlite and PostgreSQL 15).
CREATE INDEX patients_practice_phone_idx ON patients (practice_id, phone_number) WHERE phone_number IS NOT NULL;

-- Exact list totals without counting rows on every page view: one row per practice with the
-- number of patients in each status, kept by statement-level triggers (one upsert per statement,
-- so a 10,000-row import costs one update). Counting 10,000 rows per request cost more than the
-- whole rest of the list query. A search (q) still counts the matching rows.
CREATE TABLE patient_counts (
  practice_id  uuid PRIMARY KEY REFERENCES practices (id),
  active       bigint NOT NULL DEFAULT 0,
  vip          bigint NOT NULL DEFAULT 0,
  inactive     bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION patient_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO patient_counts AS c (practice_id, active, vip, inactive)
    SELECT practice_id, count(*) FILTER (WHERE status = 'ACTIVE'), count(*) FILTER (WHERE status = 'VIP'),
           count(*) FILTER (WHERE status = 'INACTIVE')
      FROM new_rows GROUP BY practice_id
    ON CONFLICT (practice_id) DO UPDATE
      SET active = c.active + excluded.active, vip = c.vip + excluded.vip, inactive = c.inactive + excluded.inactive;
  ELSIF TG_OP = 'UPDATE' THEN
    -- Only status changes move counts; practice_id never changes (RLS refuses it for the app).
    INSERT INTO patient_counts AS c (practice_id, active, vip, inactive)
    SELECT n.practice_id,
           sum((n.status = 'ACTIVE')::int - (o.status = 'ACTIVE')::int),
           sum((n.status = 'VIP')::int - (o.status = 'VIP')::int),
           sum((n.status = 'INACTIVE')::int - (o.status = 'INACTIVE')::int)
      FROM new_rows n JOIN old_rows o ON o.id = n.id
     WHERE n.status IS DISTINCT FROM o.status
     GROUP BY n.practice_id
    ON CONFLICT (practice_id) DO UPDATE
      SET active = c.active + excluded.active, vip = c.vip + excluded.vip, inactive = c.inactive + excluded.inactive;
  ELSE
    UPDATE patient_counts AS c
       SET active = c.active - d.active, vip = c.vip - d.vip, inactive = c.inactive - d.inactive
      FROM (SELECT practice_id, count(*) FILTER (WHERE status = 'ACTIVE') AS active,
                   count(*) FILTER (WHERE status = 'VIP') AS vip, count(*) FILTER (WHERE status = 'INACTIVE') AS inactive
              FROM old_rows GROUP BY practice_id) d
     WHERE c.practice_id = d.practice_id;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER patients_count_insert AFTER INSERT ON patients REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION patient_counts_apply();
CREATE TRIGGER patients_count_update AFTER UPDATE ON patients REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION patient_counts_apply();
CREATE TRIGGER patients_count_delete AFTER DELETE ON patients REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION patient_counts_apply();

ALTER TABLE patient_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY practice_isolation ON patient_counts TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY system_access ON patient_counts TO medspa_system USING (true);
GRANT SELECT, INSERT, UPDATE ON patient_counts TO medspa_app, medspa_system;

ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
CREATE POLICY practice_isolation ON patients TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY system_access ON patients TO medspa_system USING (true);

GRANT SELECT, INSERT, UPDATE ON patients TO medspa_app;
GRANT SELECT, INSERT, UPDATE ON patients TO medspa_system;
