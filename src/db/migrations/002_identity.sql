-- Identity and access: sessions (refresh-token families), MFA, API keys, lockout, revocations.

ALTER TABLE users
  ADD COLUMN mfa_enabled          boolean NOT NULL DEFAULT false,
  ADD COLUMN mfa_secret           text,      -- sealed with the secret box, bound to the user id
  ADD COLUMN mfa_pending_secret   text,      -- set by /auth/mfa/setup until one code confirms it
  ADD COLUMN mfa_algorithm        text NOT NULL DEFAULT 'SHA256' CHECK (mfa_algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  ADD COLUMN mfa_last_step        bigint,    -- last accepted TOTP time step: a code is never accepted twice
  ADD COLUMN failed_logins        integer NOT NULL DEFAULT 0,
  ADD COLUMN locked_until         timestamptz,
  ADD COLUMN last_login_at        timestamptz,
  ADD COLUMN tokens_valid_after   timestamptz NOT NULL DEFAULT '-infinity',
  ADD COLUMN deactivated_at       timestamptz;

CREATE TABLE mfa_recovery_codes (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id  uuid NOT NULL REFERENCES practices (id),
  user_id      uuid NOT NULL REFERENCES users (id),
  code_hash    text NOT NULL,
  used_at      timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, code_hash)
);

-- A family is one login; every refresh rotates to a new row of the same family. Presenting a
-- rotated token again means it was stolen (or replayed): the whole family is revoked.
CREATE TABLE refresh_tokens (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id  uuid NOT NULL REFERENCES practices (id),
  user_id      uuid NOT NULL REFERENCES users (id),
  family_id    uuid NOT NULL,
  token_hash   text NOT NULL UNIQUE,
  issued_at    timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  rotated_at   timestamptz,
  revoked_at   timestamptz,
  ip           text,
  user_agent   text
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

CREATE TABLE api_keys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id   uuid NOT NULL REFERENCES practices (id),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  key_hash      text NOT NULL UNIQUE,
  key_hint      text NOT NULL,
  permissions   text[] NOT NULL,
  created_by    uuid REFERENCES users (id),
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz
);
CREATE INDEX api_keys_practice_idx ON api_keys (practice_id, created_at DESC);

CREATE TABLE revoked_access_tokens (
  jti         text PRIMARY KEY,
  expires_at  timestamptz NOT NULL
);

ALTER TABLE mfa_recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_recovery_codes FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE revoked_access_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE revoked_access_tokens FORCE ROW LEVEL SECURITY;

CREATE POLICY practice_isolation ON mfa_recovery_codes TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON refresh_tokens TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON api_keys TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY system_access ON mfa_recovery_codes TO medspa_system USING (true);
CREATE POLICY system_access ON refresh_tokens TO medspa_system USING (true);
CREATE POLICY system_access ON api_keys TO medspa_system USING (true);
CREATE POLICY system_access ON revoked_access_tokens TO medspa_system USING (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON mfa_recovery_codes TO medspa_app, medspa_system;
GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO medspa_app, medspa_system;
GRANT SELECT, INSERT, UPDATE ON api_keys TO medspa_app, medspa_system;
GRANT SELECT, INSERT ON revoked_access_tokens TO medspa_system;
