-- The audit log: one entry per write, chained by hash (entry n holds entry n-1's hash), and
-- its head (the last entry's position and hash), which a trigger moves with each append (in
-- the same transaction) so entries cut off the end are found. Once enabled, every writer
-- appends. Only the subject is indexed: the log is read rarely and written on every write.
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
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
END;
