-- Session revocation that can't be raced: a password change or "log out everywhere" moves the
-- user's sessions_valid_after, and a refresh (which locks the user row first) refuses any login
-- family that started before it, including a rotation committed a moment earlier.
ALTER TABLE users ADD COLUMN sessions_valid_after timestamptz NOT NULL DEFAULT '-infinity';

ALTER TABLE refresh_tokens ADD COLUMN family_started_at timestamptz;
UPDATE refresh_tokens AS t
   SET family_started_at = (SELECT min(f.issued_at) FROM refresh_tokens f WHERE f.family_id = t.family_id);
ALTER TABLE refresh_tokens ALTER COLUMN family_started_at SET NOT NULL;
ALTER TABLE refresh_tokens ALTER COLUMN family_started_at SET DEFAULT now();

-- When a revocation was written, so that every instance can pick up the others' within seconds.
ALTER TABLE revoked_access_tokens ADD COLUMN revoked_at timestamptz NOT NULL DEFAULT now();
