-- The pgcrypto peer (issue 16): what a clinic's IT could build with PostgreSQL 15 and pgcrypto
-- instead of anonreg, doing the same two jobs as `make bench`'s check-up and status read.
-- bench/pgcrypto-peer.sh loads it with `psql -v subjects=N` into a throwaway cluster.
--
-- The design, and where it is weaker than anonreg (so the figures are read fairly):
-- - A subject is found by an HMAC of its case code (hmac(code, key, 'sha256')) in a bytea
--   column with a unique index: the code itself is never stored.
-- - A check-up's content is one pgp_sym_encrypt'ed JSON document (AES-256, OpenPGP's
--   modification detection code, a fresh session key and IV each time). One key for every
--   subject: there is no per-subject key, so erasing a subject means deleting rows, not
--   destroying a key.
-- - The state columns (status, next_due) are set by the check-up from its own date; the history
--   is not decrypted to recompute them, as anonreg does on every check-up.
-- - The audit is a plain append-only table: no hash chain, nothing that shows a deleted or
--   edited row.
--
-- BENCH CONSTANTS, NOT SECRETS: the HMAC key 'anonreg-peer-bench-hmac-key' and the encryption
-- key 'anonreg-peer-bench-aes-key' are written into this file and the two pgbench scripts. A
-- real deployment would keep them out of the database and the scripts (e.g. passed per session).

\set ON_ERROR_STOP on

CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE subject (
    id          bigint PRIMARY KEY,          -- the bench's subject number (pgbench's random pick)
    code_hmac   bytea NOT NULL UNIQUE,       -- hmac(case code, HMAC key, 'sha256'): the lookup
    clinic      text NOT NULL,
    category    text NOT NULL,
    enrolled_on date NOT NULL,
    status      text NOT NULL,               -- active | completed
    next_due    date,
    last_checkup date
);

CREATE TABLE checkup (
    id          bigserial PRIMARY KEY,
    subject_id  bigint NOT NULL REFERENCES subject (id),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    payload     bytea NOT NULL               -- pgp_sym_encrypt(JSON of the check-up, key)
);
-- The status read's "last 5 check-ups of this subject".
CREATE INDEX checkup_subject_recent ON checkup (subject_id, id DESC);

CREATE TABLE audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    subject_id  bigint,                      -- the subject reference (no FK: audit outlives erasure)
    result      text NOT NULL
);

-- N subjects enrolled 100 days ago, each with 3 check-ups, encrypted as the bench encrypts them
-- (the case code of subject i is 'case-i').
INSERT INTO subject (id, code_hmac, clinic, category, enrolled_on, status, next_due, last_checkup)
SELECT i, hmac(('case-' || i)::text, 'anonreg-peer-bench-hmac-key'::text, 'sha256'), 'local', 'dependence',
       current_date - 100, 'active', current_date + 60, current_date - 30
FROM generate_series(1, :subjects) AS i;

INSERT INTO checkup (subject_id, recorded_at, payload)
SELECT i, now() - (k * 30 || ' days')::interval,
       pgp_sym_encrypt(
           json_build_object(
               'on', current_date - k * 30, 'outcome', 'remission', 'substances', json_build_array(),
               'treatment', json_build_array('methadone', 'psychosocial'),
               'note', 'bench: stable on methadone, attended group sessions', 'clinic', 'local')::text,
           'anonreg-peer-bench-aes-key', 'cipher-algo=aes256, s2k-mode=1')
FROM generate_series(1, :subjects) AS i, generate_series(3, 1, -1) AS k;

VACUUM ANALYZE;
CHECKPOINT;
