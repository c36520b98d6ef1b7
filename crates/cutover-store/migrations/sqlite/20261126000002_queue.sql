-- cutover store schema v2 (SQLite): the durable priority queue. See src/queue.rs.

-- The aging rank (microseconds; see cutover_core::queue): claims take the lowest.
ALTER TABLE jobs ADD COLUMN rank_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;
-- The release whose result this is (QA checks of a release).
ALTER TABLE jobs ADD COLUMN release_version TEXT;
-- The last attempt's result (JSON) and error.
ALTER TABLE jobs ADD COLUMN result TEXT;
ALTER TABLE jobs ADD COLUMN last_error TEXT;
ALTER TABLE jobs ADD COLUMN started_us INTEGER;
ALTER TABLE jobs ADD COLUMN finished_us INTEGER;

UPDATE jobs SET rank_us = run_at_us;

CREATE INDEX jobs_claim ON jobs (rank_us, id) WHERE state = 'queued';
CREATE INDEX jobs_supersede ON jobs (supersede_key) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_until_us) WHERE state = 'running';
CREATE INDEX jobs_release ON jobs (release_version, id);
-- One running job per concurrency group, enforced by the database itself.
CREATE UNIQUE INDEX jobs_group_running ON jobs (concurrency_group)
    WHERE state = 'running' AND concurrency_group IS NOT NULL;
