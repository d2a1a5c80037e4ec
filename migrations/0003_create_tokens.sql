-- 0003: creates holdline.api_tokens, the bearer tokens the service authenticates requests
-- with (`holdline token create | list | revoke`). Only a hash of each secret is stored.
-- Locks: only the table it creates; nothing existing is touched.

-- One row per token ever issued; revoking sets revoked_at and keeps the row, so `token list`
-- can still say who had access and until when.
--
-- secret_hash is SHA-256 of the whole secret string (`hl_` + 43 base64url characters, i.e.
-- 256 random bits). A fast hash is enough here, unlike for passwords: slow hashes (bcrypt,
-- scrypt, argon2) exist to make guessing low-entropy inputs expensive, and nobody can guess
-- a 256-bit random value however cheap each guess is. A fast hash also lets a request find its
-- token by an index lookup on the hash instead of trying every row.
CREATE TABLE holdline.api_tokens (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
  secret_hash bytea NOT NULL UNIQUE CHECK (octet_length(secret_hash) = 32),
  -- Each element is 'admin' or '<action>:<queue pattern>' with action admin, read, send or
  -- receive; a pattern is a queue name in which '*' matches any run of characters.
  scopes text[] NOT NULL CHECK (
    cardinality(scopes) BETWEEN 1 AND 100
    AND array_to_string(scopes, ',') ~
      '^(admin|(admin|read|send|receive):[A-Za-z0-9_.*-]{1,128})(,(admin|(admin|read|send|receive):[A-Za-z0-9_.*-]{1,128}))*$'
  ),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Set once by revocation; a revoked token authenticates nothing from then on.
  revoked_at timestamptz,
  -- When the token last authenticated a request, to within a minute (each service instance
  -- writes it at most once a minute per token, off the request path). NULL: never used.
  last_used_at timestamptz
);

-- A name belongs to one live token at a time; a revoked token's name can be given to its
-- replacement, so rotation is "revoke, then create with the same name".
CREATE UNIQUE INDEX api_tokens_live_name ON holdline.api_tokens (name) WHERE revoked_at IS NULL;
