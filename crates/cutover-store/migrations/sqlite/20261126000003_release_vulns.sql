-- cutover store schema v3 (SQLite): the known vulnerabilities found in a release's bill of
-- materials when it was recorded (JSON: the database scanned, when, and the findings), so that
-- `cutover vulns --release V` can say which findings are new since then.
ALTER TABLE releases ADD COLUMN vulns TEXT;
