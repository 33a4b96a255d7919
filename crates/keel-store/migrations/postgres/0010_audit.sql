-- The audit log: one entry per write, chained by hash (entry n holds entry n-1's hash), and
-- its head (the last entry's position and hash), which a trigger moves with each append (in
-- the same transaction) so entries cut off the end are found. Once enabled, every writer
-- appends. Only the subject is indexed: the log is read rarely and written on every write.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    time BIGINT NOT NULL,
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
    enabled BOOLEAN NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
CREATE FUNCTION audit_head_follows() RETURNS trigger AS $$
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_head_follows();
