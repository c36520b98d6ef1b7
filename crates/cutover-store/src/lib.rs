//! cutover's store: records, SQLite and PostgreSQL backends, the audit chain
