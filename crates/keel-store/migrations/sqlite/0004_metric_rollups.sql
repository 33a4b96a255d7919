-- Each metric history summarised over fixed step ranges, for charts of long histories: at level
-- s, bucket b covers steps [b * 2^s, (b + 1) * 2^s). A row keeps the first and last non-NaN value
-- (by step, timestamp, value), the minimum, the maximum and whether a NaN was logged. Every
-- column merges idempotently, so log_batch upserts the rows its values touch and a repeated
-- value changes nothing (see keel_core::buckets).
CREATE TABLE metric_rollups (
    run_key INTEGER NOT NULL REFERENCES runs(run_key) ON DELETE CASCADE,
    key_id INTEGER NOT NULL REFERENCES metric_keys(key_id),
    level INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    min_value REAL,
    max_value REAL,
    first_step INTEGER,
    first_ts INTEGER,
    first_value REAL,
    last_step INTEGER,
    last_ts INTEGER,
    last_value REAL,
    has_nan INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_key, key_id, level, bucket)
) WITHOUT ROWID;

-- The rollups of the values logged before this table existed.
INSERT INTO metric_rollups (run_key, key_id, level, bucket, min_value, max_value, first_step, first_ts, first_value, last_step, last_ts, last_value, has_nan)
WITH lv(s) AS (VALUES (5), (10), (15)),
m AS (SELECT run_key, key_id, s, step >> s AS b, step, timestamp, value, is_nan FROM metrics, lv),
g AS (SELECT run_key, key_id, s, b, MIN(CASE WHEN is_nan = 0 THEN value END) AS mn, MAX(CASE WHEN is_nan = 0 THEN value END) AS mx, MAX(is_nan) AS nan FROM m GROUP BY run_key, key_id, s, b),
o AS (SELECT run_key, key_id, s, b, step, timestamp, value,
        ROW_NUMBER() OVER (PARTITION BY run_key, key_id, s, b ORDER BY step, timestamp, value) AS up,
        ROW_NUMBER() OVER (PARTITION BY run_key, key_id, s, b ORDER BY step DESC, timestamp DESC, value DESC) AS down
      FROM m WHERE is_nan = 0)
SELECT g.run_key, g.key_id, g.s, g.b, g.mn, g.mx, f.step, f.timestamp, f.value, l.step, l.timestamp, l.value, g.nan
FROM g
LEFT JOIN o f ON f.run_key = g.run_key AND f.key_id = g.key_id AND f.s = g.s AND f.b = g.b AND f.up = 1
LEFT JOIN o l ON l.run_key = g.run_key AND l.key_id = g.key_id AND l.s = g.s AND l.b = g.b AND l.down = 1;
