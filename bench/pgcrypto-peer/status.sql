-- pgcrypto peer, audited status read (one transaction): find the subject by the HMAC of its
-- case code, decrypt its last 5 check-ups, append an audit row.
-- Run by bench/pgcrypto-peer.sh as `pgbench -n -M prepared -D subjects=N -f status.sql`.
--
-- BENCH CONSTANTS, NOT SECRETS: the HMAC key and the encryption key below are fixed strings
-- (the same as in schema.sql and checkup.sql), so the runs are repeatable.
\set sid random(1, :subjects)
BEGIN;
SELECT id AS subject, status, next_due FROM subject
    WHERE code_hmac = hmac(('case-' || :sid)::text, 'anonreg-peer-bench-hmac-key'::text, 'sha256') \gset
SELECT recorded_at, pgp_sym_decrypt(payload, 'anonreg-peer-bench-aes-key') FROM checkup
    WHERE subject_id = :subject ORDER BY id DESC LIMIT 5;
INSERT INTO audit (actor, action, subject_id, result) VALUES ('clinic local', 'read-status', :subject, 'ok');
END;
