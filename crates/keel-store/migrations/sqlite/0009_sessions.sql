-- Signed-in browsers of the web UI: a session is found by a hash of its cookie, carries the
-- value its state-changing requests must send back (CSRF), and ends with its user.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    expiration_time INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions(expiration_time);
