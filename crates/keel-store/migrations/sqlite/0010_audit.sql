-- The audit log: one entry per write, chained by hash (entry n holds entry n-1's hash), and
-- its head (the last entry's position and hash), updated in the same transaction as each
-- append so entries cut off the end are found. Once enabled, every writer appends.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    request TEXT,
    state_before TEXT,
    state_after TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_subject ON audit_log(subject_kind, subject_id, seq);
CREATE INDEX audit_by_time ON audit_log(time);
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
