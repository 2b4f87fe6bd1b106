-- pgcrypto peer, check-up (one transaction): lock the subject found by the HMAC of its case
-- code, insert the encrypted check-up, update the subject's state columns, append an audit row.
-- Run by bench/pgcrypto-peer.sh as `pgbench -n -M prepared -D subjects=N -f checkup.sql`.
--
-- BENCH CONSTANTS, NOT SECRETS: the HMAC key and the encryption key below are fixed strings
-- (the same as in schema.sql and status.sql), so the runs are repeatable.
-- The payload is a constant 202-byte JSON check-up standing for what a clinic system sends.
-- s2k-mode=1 (salted, not iterated): the key is a random-looking key, not a password, so
-- pgcrypto's default iterated key stretching (65,536+ SHA-1 rounds on every encrypt and
-- decrypt) would only add CPU time that buys nothing.
\set sid random(1, :subjects)
BEGIN;
SELECT id AS subject FROM subject
    WHERE code_hmac = hmac(('case-' || :sid)::text, 'anonreg-peer-bench-hmac-key'::text, 'sha256')
    FOR UPDATE \gset
INSERT INTO checkup (subject_id, payload) VALUES (:subject, pgp_sym_encrypt(
    '{"on":"2026-12-06","outcome":"remission","substances":[],"treatment":["methadone","psychosocial"],"note":"bench: stable on methadone, attended group sessions","clinic":"local","recordedOn":"2026-12-06"}',
    'anonreg-peer-bench-aes-key', 'cipher-algo=aes256, s2k-mode=1'));
UPDATE subject SET status = 'active', last_checkup = current_date, next_due = current_date + 90
    WHERE id = :subject;
INSERT INTO audit (actor, action, subject_id, result) VALUES ('clinic local', 'add-checkup', :subject, 'ok');
END;
