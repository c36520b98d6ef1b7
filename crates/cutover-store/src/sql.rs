//! The SQL both backends share: one implementation of [`crate::Store`], expanded for each sqlx driver.
//!
//! The queries use `$N` placeholders, which SQLite and PostgreSQL both accept, and the schema keeps
//! the same column names and types (64-bit integers and text) on both, so only opening, the write
//! transaction's lock and the migrations differ between backends.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{StoreError, Timestamp};

pub(crate) const AUDIT_COLUMNS: &str =
    "seq, at_us, actor, action, subject, payload, prev_hash, hash";
/// [`AUDIT_COLUMNS`] of the audit table aliased `a`.
pub(crate) const AUDIT_COLUMNS_A: &str =
    "a.seq, a.at_us, a.actor, a.action, a.subject, a.payload, a.prev_hash, a.hash";
/// Rows read per query when verifying the chain.
pub(crate) const VERIFY_BATCH: i64 = 10_000;

pub(crate) fn us(t: &Timestamp) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn opt_us(t: &Option<Timestamp>) -> Option<i64> {
    t.as_ref().map(us)
}

pub(crate) fn ts(micros: i64, what: &str) -> Result<Timestamp, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt {
        what: format!("{what}: time {micros} is out of range"),
    })
}

pub(crate) fn opt_ts(micros: Option<i64>, what: &str) -> Result<Option<Timestamp>, StoreError> {
    micros.map(|m| ts(m, what)).transpose()
}

pub(crate) fn js(v: &Value) -> String {
    v.to_string()
}

pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: format!("{what}: not JSON ({e})"),
    })
}

pub(crate) fn opt_json(text: Option<String>, what: &str) -> Result<Option<Value>, StoreError> {
    text.map(|t| parse_json(&t, what)).transpose()
}

/// Maps a write error: unique violations become conflicts, foreign-key violations "not found".
pub(crate) fn write_err(context: String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| {
        if let sqlx::Error::Database(db) = &source {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    return StoreError::Conflict {
                        what: format!("{context}: it already exists"),
                    };
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return StoreError::NotFound {
                        what: format!("a record referenced by {context}"),
                    };
                }
                _ => {}
            }
        }
        StoreError::Database { context, source }
    }
}

pub(crate) fn read_err(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |source| StoreError::Database {
        context: context.to_owned(),
        source,
    }
}

/// Implements [`crate::Store`] for a backend type that has inherent `pool`, `location`,
/// `begin_write` and `lock_audit_head`.
macro_rules! impl_store {
    ($store:ty, $db:ty, $row:ty, $backend:expr) => {
        mod store_impl {
            use async_trait::async_trait;
            use chrono::Utc;
            use cutover_core::audit::{
                AuditEvent, Broken, BrokenReason, ChainVerifier, GENESIS_HASH, canonical_json,
            };
            use sqlx::Row;

            use super::*;
            use $crate::records::*;
            use $crate::sql::*;
            use $crate::{DataVersion, Store, StoreError};

            type Tx = sqlx::Transaction<'static, $db>;

            fn col<T>(row: &$row, name: &str) -> Result<T, StoreError>
            where
                T: for<'r> sqlx::Decode<'r, $db> + sqlx::Type<$db>,
            {
                row.try_get::<T, _>(name).map_err(read_err(name))
            }

            fn release_of(r: &$row) -> Result<Release, StoreError> {
                let version: String = col(r, "version")?;
                let kind: String = col(r, "kind")?;
                Ok(Release {
                    kind: ReleaseKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                        what: format!("release {version}: kind `{kind}`"),
                    })?,
                    tag: col(r, "tag")?,
                    commit: col(r, "commit_id")?,
                    notes: col(r, "notes")?,
                    changes: parse_json(&col::<String>(r, "changes")?, "release changes")?,
                    artifact_digest: col(r, "artifact_digest")?,
                    bom: opt_json(col(r, "bom")?, "release bom")?,
                    vulns: opt_json(col(r, "vulns")?, "release vulns")?,
                    created_at: ts(col(r, "created_us")?, "release created_at")?,
                    version,
                })
            }

            fn notice_of(r: &$row) -> Result<Notice, StoreError> {
                let recipients = parse_json(&col::<String>(r, "recipients")?, "notice recipients")?;
                Ok(Notice {
                    id: col(r, "id")?,
                    version: col(r, "version")?,
                    content: col(r, "content")?,
                    format: col(r, "format")?,
                    recipients: serde_json::from_value(recipients).map_err(|e| StoreError::Corrupt {
                        what: format!("notice recipients: {e}"),
                    })?,
                    created_at: ts(col(r, "created_us")?, "notice created_at")?,
                    sent_at: opt_ts(col(r, "sent_us")?, "notice sent_at")?,
                })
            }

            fn deployment_of(r: &$row) -> Result<Deployment, StoreError> {
                Ok(Deployment {
                    id: col(r, "id")?,
                    environment: col(r, "environment")?,
                    release_version: col(r, "release_version")?,
                    strategy: col(r, "strategy")?,
                    state: col(r, "state")?,
                    trigger: col(r, "trigger_kind")?,
                    actor: col(r, "actor")?,
                    reverts: col(r, "reverts")?,
                    created_at: ts(col(r, "created_us")?, "deployment created_at")?,
                    updated_at: ts(col(r, "updated_us")?, "deployment updated_at")?,
                    finished_at: opt_ts(col(r, "finished_us")?, "deployment finished_at")?,
                })
            }

            fn step_of(r: &$row) -> Result<DeploymentStep, StoreError> {
                Ok(DeploymentStep {
                    id: col(r, "id")?,
                    deployment_id: col(r, "deployment_id")?,
                    step: col(r, "step")?,
                    intent: parse_json(&col::<String>(r, "intent")?, "step intent")?,
                    result: opt_json(col(r, "result")?, "step result")?,
                    at: ts(col(r, "at_us")?, "step at")?,
                    finished_at: opt_ts(col(r, "finished_us")?, "step finished_at")?,
                })
            }

            fn host_of(r: &$row) -> Result<Host, StoreError> {
                Ok(Host {
                    name: col(r, "name")?,
                    token_hash: col(r, "token_hash")?,
                    agent_version: col(r, "agent_version")?,
                    last_seen: opt_ts(col(r, "last_seen_us")?, "host last_seen")?,
                    created_at: ts(col(r, "created_us")?, "host created_at")?,
                })
            }

            fn assignment_of(r: &$row) -> Result<Assignment, StoreError> {
                Ok(Assignment {
                    host: col(r, "host")?,
                    generation: col(r, "generation")?,
                    desired: parse_json(&col::<String>(r, "desired")?, "assignment desired")?,
                    created_at: ts(col(r, "created_us")?, "assignment created_at")?,
                })
            }

            fn observation_of(r: &$row) -> Result<Observation, StoreError> {
                Ok(Observation {
                    id: col(r, "id")?,
                    host: col(r, "host")?,
                    generation: col(r, "generation")?,
                    observed: parse_json(&col::<String>(r, "observed")?, "observation observed")?,
                    evidence: parse_json(&col::<String>(r, "evidence")?, "observation evidence")?,
                    at: ts(col(r, "at_us")?, "observation at")?,
                })
            }

            fn proof_of(r: &$row) -> Result<Proof, StoreError> {
                Ok(Proof {
                    id: col(r, "id")?,
                    deployment_id: col(r, "deployment_id")?,
                    host: col(r, "host")?,
                    statement: parse_json(&col::<String>(r, "statement")?, "proof statement")?,
                    envelope: parse_json(&col::<String>(r, "envelope")?, "proof envelope")?,
                    created_at: ts(col(r, "created_us")?, "proof created_at")?,
                })
            }

            fn job_of(r: &$row) -> Result<Job, StoreError> {
                Ok(Job {
                    id: col(r, "id")?,
                    class: col(r, "class")?,
                    priority: col(r, "priority")?,
                    kind: col(r, "kind")?,
                    payload: parse_json(&col::<String>(r, "payload")?, "job payload")?,
                    state: col(r, "state")?,
                    supersede_key: col(r, "supersede_key")?,
                    concurrency_group: col(r, "concurrency_group")?,
                    attempts: col(r, "attempts")?,
                    lease_owner: col(r, "lease_owner")?,
                    lease_until: opt_ts(col(r, "lease_until_us")?, "job lease_until")?,
                    run_at: ts(col(r, "run_at_us")?, "job run_at")?,
                    created_at: ts(col(r, "created_us")?, "job created_at")?,
                    rank_us: col(r, "rank_us")?,
                    max_attempts: col(r, "max_attempts")?,
                    release_version: col(r, "release_version")?,
                    result: opt_json(col(r, "result")?, "job result")?,
                    last_error: col(r, "last_error")?,
                    started_at: opt_ts(col(r, "started_us")?, "job started_at")?,
                    finished_at: opt_ts(col(r, "finished_us")?, "job finished_at")?,
                })
            }

            fn incident_of(r: &$row) -> Result<Incident, StoreError> {
                Ok(Incident {
                    id: col(r, "id")?,
                    environment: col(r, "environment")?,
                    summary: col(r, "summary")?,
                    caused_by: col(r, "caused_by")?,
                    restored_by: col(r, "restored_by")?,
                    opened_at: ts(col(r, "opened_us")?, "incident opened_at")?,
                    resolved_at: opt_ts(col(r, "resolved_us")?, "incident resolved_at")?,
                })
            }

            fn api_token_of(r: &$row) -> Result<ApiToken, StoreError> {
                let scope: String = col(r, "scope")?;
                let environments: String = col(r, "environments")?;
                Ok(ApiToken {
                    id: col(r, "id")?,
                    name: col(r, "name")?,
                    scope: TokenScope::parse(&scope).ok_or_else(|| StoreError::Corrupt {
                        what: format!("API token scope {scope:?}"),
                    })?,
                    environments: serde_json::from_str(&environments).map_err(|e| StoreError::Corrupt {
                        what: format!("API token environments {environments:?}: {e}"),
                    })?,
                    token_hash: col(r, "token_hash")?,
                    created_by: col(r, "created_by")?,
                    created_at: ts(col(r, "created_us")?, "token created_at")?,
                    revoked_at: opt_ts(col(r, "revoked_us")?, "token revoked_at")?,
                    last_used_at: opt_ts(col(r, "last_used_us")?, "token last_used_at")?,
                })
            }

            fn lock_of(r: &$row) -> Result<EnvLock, StoreError> {
                Ok(EnvLock {
                    environment: col(r, "environment")?,
                    holder: col(r, "holder")?,
                    message: col(r, "message")?,
                    acquired_at: ts(col(r, "acquired_us")?, "lock acquired_at")?,
                    lease_until: ts(col(r, "lease_until_us")?, "lock lease_until")?,
                })
            }

            /// Reads an audit row with its payload left as the stored text (`payload` is null);
            /// an unreadable row is reported as a broken link, not an error.
            fn stored_event_of(r: &$row) -> Result<(AuditEvent, String), String> {
                let get_s = |name: &str| r.try_get::<String, _>(name).map_err(|e| format!("{name}: {e}"));
                let seq: i64 = r.try_get("seq").map_err(|e| format!("seq: {e}"))?;
                let at_us: i64 = r.try_get("at_us").map_err(|e| format!("at_us: {e}"))?;
                let event = AuditEvent {
                    seq,
                    at: chrono::DateTime::<Utc>::from_timestamp_micros(at_us)
                        .ok_or_else(|| format!("at_us {at_us} is out of range"))?,
                    actor: get_s("actor")?,
                    action: get_s("action")?,
                    subject: get_s("subject")?,
                    payload: serde_json::Value::Null,
                    prev_hash: get_s("prev_hash")?,
                    hash: get_s("hash")?,
                };
                Ok((event, get_s("payload")?))
            }

            fn event_of(r: &$row) -> Result<AuditEvent, String> {
                let (mut event, payload) = stored_event_of(r)?;
                event.payload = serde_json::from_str(&payload).map_err(|e| format!("payload is not JSON: {e}"))?;
                Ok(event)
            }

            async fn append_in_tx(tx: &mut Tx, audit: &Audit) -> Result<AuditEvent, StoreError> {
                <$store>::lock_audit_head(tx).await?;
                let head = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(read_err("reading the head of the audit chain"))?;
                let (seq, prev) = match head {
                    Some(r) => (col::<i64>(&r, "seq")? + 1, col::<String>(&r, "hash")?),
                    None => (1, GENESIS_HASH.to_owned()),
                };
                let event = AuditEvent::seal(
                    seq,
                    Utc::now(),
                    audit.actor.as_str(),
                    audit.action.as_str(),
                    audit.subject.as_str(),
                    audit.payload.clone(),
                    prev,
                );
                sqlx::query(
                    "INSERT INTO audit (seq, at_us, actor, action, subject, payload, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(event.seq)
                .bind(us(&event.at))
                .bind(&event.actor)
                .bind(&event.action)
                .bind(&event.subject)
                .bind(canonical_json(&event.payload))
                .bind(&event.prev_hash)
                .bind(&event.hash)
                .execute(&mut **tx)
                .await
                .map_err(write_err(format!("audit event {seq}")))?;
                let class = $crate::switches::classify(&event.action, &event.subject, &event.payload);
                index_switch(tx, event.seq, us(&event.at), &class).await?;
                Ok(event)
            }

            /// Writes the switch index's rows for one audit event (nothing for other events);
            /// idempotent, so that a backfill may meet rows an append already wrote.
            async fn index_switch(tx: &mut Tx, seq: i64, at_us: i64, class: &$crate::switches::SwitchClass) -> Result<(), StoreError> {
                use $crate::switches::SwitchClass;
                let (environment, readable, hosts): (&str, i64, &[String]) = match class {
                    SwitchClass::NotASwitch | SwitchClass::Foreign => return Ok(()),
                    SwitchClass::Unreadable { environment } => (environment, 0, &[]),
                    SwitchClass::Applied { environment, hosts } => (environment, 1, hosts),
                };
                let context = || format!("the switch index of audit event {seq}");
                sqlx::query(
                    "INSERT INTO audit_switches (seq, environment, at_us, readable) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(seq)
                .bind(environment)
                .bind(at_us)
                .bind(readable)
                .execute(&mut **tx)
                .await
                .map_err(write_err(context()))?;
                for host in hosts {
                    sqlx::query(
                        "INSERT INTO audit_switch_hosts (environment, host, seq, at_us) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(environment)
                    .bind(host)
                    .bind(seq)
                    .bind(at_us)
                    .execute(&mut **tx)
                    .await
                    .map_err(write_err(context()))?;
                    sqlx::query(
                        "INSERT INTO audit_switch_env_hosts (environment, host) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(environment)
                    .bind(host)
                    .execute(&mut **tx)
                    .await
                    .map_err(write_err(context()))?;
                }
                Ok(())
            }

            impl $store {
                /// Indexes the switch events written before migration 000006 (or by anything that
                /// wrote the audit table directly and asked for it by marking the backfill
                /// pending). Runs under the audit lock, so no append races it; another opener
                /// that already did it leaves nothing to do.
                pub(crate) async fn backfill_switch_index(&self) -> Result<(), StoreError> {
                    let pending = |row: Option<$row>| row.is_some();
                    let row = sqlx::query("SELECT pending FROM audit_switch_backfill LIMIT 1")
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading whether the switch index needs a backfill"))?;
                    if !pending(row) {
                        return Ok(());
                    }
                    let mut tx = self.begin_write().await?;
                    <$store>::lock_audit_head(&mut tx).await?;
                    let row = sqlx::query("SELECT pending FROM audit_switch_backfill LIMIT 1")
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(read_err("reading whether the switch index needs a backfill"))?;
                    if pending(row) {
                        let mut last = i64::MIN;
                        loop {
                            let rows = sqlx::query(
                                "SELECT seq, at_us, subject, payload FROM audit WHERE action = $1 AND seq > $2 \
                                 ORDER BY seq LIMIT $3",
                            )
                            .bind($crate::switches::SWITCH_ACTION)
                            .bind(last)
                            .bind(VERIFY_BATCH)
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(read_err("reading switch events to index"))?;
                            if rows.is_empty() {
                                break;
                            }
                            for r in &rows {
                                let seq: i64 = col(r, "seq")?;
                                last = seq;
                                let subject: String = col(r, "subject")?;
                                let payload: String = col(r, "payload")?;
                                // A payload that is not JSON at all cannot be read either.
                                let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null);
                                let class = $crate::switches::classify($crate::switches::SWITCH_ACTION, &subject, &payload);
                                index_switch(&mut tx, seq, col(r, "at_us")?, &class).await?;
                            }
                        }
                        sqlx::query("DELETE FROM audit_switch_backfill")
                            .execute(&mut *tx)
                            .await
                            .map_err(write_err("the switch index backfill".to_owned()))?;
                    }
                    tx.commit().await.map_err(read_err("committing the switch index backfill"))?;
                    Ok(())
                }
            }

            /// The rank of a job inserted through `Change::InsertJob` (default aging policy).
            fn job_rank(j: &NewJob) -> Result<i64, StoreError> {
                let class = cutover_core::queue::JobClass::parse(&j.class).ok_or_else(|| StoreError::Conflict {
                    what: format!("job {}: unknown class `{}` (expected hotfix, release, normal or background)", j.kind, j.class),
                })?;
                Ok(cutover_core::queue::AgingPolicy::default().rank_us(class, j.priority, us(&j.run_at)))
            }

            $crate::queue::queue_fns!($store);

            /// Why a conditional update of row `id` of `table` touched nothing: NotFound when the
            /// row is absent, else Conflict (`what` + `conflict`, e.g. "is already resolved").
            async fn absent_or_conflict(tx: &mut Tx, table: &str, id: i64, what: String, conflict: &str) -> StoreError {
                let exists = sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await;
                match exists {
                    Err(e) => read_err(&format!("reading {what}"))(e),
                    Ok(None) => StoreError::NotFound { what },
                    Ok(Some(_)) => StoreError::Conflict { what: format!("{what} {conflict}") },
                }
            }

            async fn apply_change(tx: &mut Tx, change: &Change) -> Result<Outcome, StoreError> {
                match change {
                    Change::InsertRelease(r) => {
                        sqlx::query(
                            "INSERT INTO releases (version, tag, commit_id, kind, notes, changes, artifact_digest, bom, created_us, vulns) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(&r.version)
                        .bind(&r.tag)
                        .bind(&r.commit)
                        .bind(r.kind.as_str())
                        .bind(&r.notes)
                        .bind(js(&r.changes))
                        .bind(&r.artifact_digest)
                        .bind(r.bom.as_ref().map(js))
                        .bind(us(&r.created_at))
                        .bind(r.vulns.as_ref().map(js))
                        .execute(&mut **tx)
                        .await
                        .map_err(write_err(format!("release {}", r.version)))?;
                        Ok(Outcome::Done)
                    }
                    Change::UpdateRelease(r) => {
                        let done = sqlx::query(
                            "UPDATE releases SET tag = $2, commit_id = $3, kind = $4, notes = $5, changes = $6, \
                             artifact_digest = $7, bom = $8, created_us = $9, vulns = $10 WHERE version = $1",
                        )
                        .bind(&r.version)
                        .bind(&r.tag)
                        .bind(&r.commit)
                        .bind(r.kind.as_str())
                        .bind(&r.notes)
                        .bind(js(&r.changes))
                        .bind(&r.artifact_digest)
                        .bind(r.bom.as_ref().map(js))
                        .bind(us(&r.created_at))
                        .bind(r.vulns.as_ref().map(js))
                        .execute(&mut **tx)
                        .await
                        .map_err(write_err(format!("release {}", r.version)))?;
                        if done.rows_affected() == 0 {
                            return Err(StoreError::NotFound { what: format!("release {}", r.version) });
                        }
                        Ok(Outcome::Done)
                    }
                    Change::InsertNotice(n) => {
                        let recipients = serde_json::to_string(&n.recipients).unwrap_or_else(|_| "[]".into());
                        let row = sqlx::query(
                            "INSERT INTO notices (version, content, format, recipients, created_us) \
                             VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        )
                        .bind(&n.version)
                        .bind(&n.content)
                        .bind(&n.format)
                        .bind(recipients)
                        .bind(us(&n.created_at))
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(write_err(format!("notice for {}", n.version)))?;
                        Ok(Outcome::Id(col(&row, "id")?))
                    }
                    Change::MarkNoticeSent { id, at } => {
                        let done = sqlx::query("UPDATE notices SET sent_us = $2 WHERE id = $1")
                            .bind(id)
                            .bind(us(at))
                            .execute(&mut **tx)
                            .await
                            .map_err(write_err(format!("notice {id}")))?;
                        if done.rows_affected() == 0 {
                            return Err(StoreError::NotFound { what: format!("notice {id}") });
                        }
                        Ok(Outcome::Done)
                    }
                    Change::InsertDeployment(d) => {
                        let row = sqlx::query(
                            "INSERT INTO deployments (environment, release_version, strategy, state, trigger_kind, actor, \
                             reverts, created_us, updated_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
                        )
                        .bind(&d.environment)
                        .bind(&d.release_version)
                        .bind(&d.strategy)
                        .bind(&d.state)
                        .bind(&d.trigger)
                        .bind(&d.actor)
                        .bind(d.reverts)
                        .bind(us(&d.created_at))
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(write_err(format!(
                            "deployment of {} to {}",
                            d.release_version, d.environment
                        )))?;
                        Ok(Outcome::Id(col(&row, "id")?))
                    }
                    Change::UpdateDeployment { id, expected_state, state, at, finished_at } => {
                        let done = sqlx::query(
                            "UPDATE deployments SET state = $2, updated_us = $3, finished_us = COALESCE($4, finished_us) \
                             WHERE id = $1 AND ($5 IS NULL OR state = $5)",
                        )
                        .bind(id)
                        .bind(state)
                        .bind(us(at))
                        .bind(opt_us(finished_at))
                        .bind(expected_state)
                        .execute(&mut **tx)
                        .await
                        .map_err(write_err(format!("deployment {id}")))?;
                        if done.rows_affected() == 0 {
                            let current = sqlx::query("SELECT state FROM deployments WHERE id = $1")
                                .bind(id)
                                .fetch_optional(&mut **tx)
                                .await
                                .map_err(read_err("reading a deployment's state"))?;
                            return Err(match current {
                                None => StoreError::NotFound { what: format!("deployment {id}") },
                                Some(r) => StoreError::Conflict {
                                    what: format!(
                                        "deployment {id} is in state `{}`, not `{}`",
                                        col::<String>(&r, "state")?,
                                        expected_state.as_deref().unwrap_or_default()
                                    ),
                                },
                            });
                        }
                        Ok(Outcome::Done)
                    }
                    Change::InsertDeploymentStep(s) => {
                        let row = sqlx::query(
                            "INSERT INTO deployment_steps (deployment_id, step, intent, at_us) \
                             VALUES ($1, $2, $3, $4) RETURNING id",
                        )
                        .bind(s.deployment_id)
                        .bind(&s.step)
                        .bind(js(&s.intent))
                        .bind(us(&s.at))
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(write_err(format!("step `{}` of deployment {}", s.step, s.deployment_id)))?;
                        Ok(Outcome::Id(col(&row, "id")?))
                    }
                    Change::SetDeploymentStepResult { id, result, at } => {
                        let done = sqlx::query(
                            "UPDATE deployment_steps SET result = $2, finished_us = $3 WHERE id = $1",
                        )
                        .bind(id)
                        .bind(js(result))
                        .bind(us(at))
                        .execute(&mut **tx)
                        .await
                        .map_err(write_err(format!("deployment step {id}")))?;
                        if done.rows_affected() == 0 {
                            return Err(StoreError::NotFound { what: format!("deployment step {id}") });
                        }
                        Ok(Outcome::Done)
                    }
                    Change::UpsertHost { name, token_hash, agent_version, at } => {
                        sqlx::query(
                            "INSERT INTO hosts (name, token_hash, agent_version, created_us) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, \
                             agent_version = excluded.agent_version",
                        )
                        .bind(name)
                        .bind(token_hash)
                        .bind(agent_version)
                        .bind(us(at))
                        .execute(&mut **tx)
                        .await
                        .map_err(write_err(format!("host {name}")))?;
                        Ok(Outcome::Done)
                    }
                    Change::PutAssignment(a) => {
                        let row = sqlx::query("SELECT MAX(generation) AS g FROM assignments WHERE host = $1")
                            .bind(&a.host)
                            .fetch_one(&mut **tx)
                            .await
                            .map_err(read_err("reading a host's generation"))?;
                        let current: Option<i64> = col(&row, "g")?;
                        if let Some(current) = current
                            && a.generation <= current
                        {
                            return Err(StoreError::Conflict {
                                what: format!(
                                    "assignment generation {} for host {} is not above the current generation {current}",
                                    a.generation, a.host
                                ),
                            });
                        }
                        sqlx::query(
                            "INSERT INTO assignments (host, generation, desired, created_us) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&a.host)
                        .bind(a.generation)
                        .bind(js(&a.desired))
                        .bind(us(&a.created_at))
                        .execute(&mut **tx)
                        .await
                        .map_err(write_err(format!("assignment {} of host {}", a.generation, a.host)))?;
                        Ok(Outcome::Done)
                    }
                    Change::InsertObservation(o) => {
                        let row = sqlx::query(
                            "INSERT INTO observations (host, generation, observed, evidence, at_us) \
                             VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        )
                        .bind(&o.host)
                        .bind(o.generation)
                        .bind(js(&o.observed))
                        .bind(js(&o.evidence))
                        .bind(us(&o.at))
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(write_err(format!("observation of host {}", o.host)))?;
                        Ok(Outcome::Id(col(&row, "id")?))
                    }
                    Change::InsertProof(p) => {
                        let row = sqlx::query(
                            "INSERT INTO proofs (deployment_id, host, statement, envelope, created_us) \
                             VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        )
                        .bind(p.deployment_id)
                        .bind(&p.host)
                        .bind(js(&p.statement))
                        .bind(js(&p.envelope))
                        .bind(us(&p.created_at))
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(write_err(format!("proof for deployment {} on {}", p.deployment_id, p.host)))?;
                        Ok(Outcome::Id(col(&row, "id")?))
                    }
                    Change::InsertJob(j) => {
                        let row = sqlx::query(
                            "INSERT INTO jobs (class, priority, kind, payload, state, supersede_key, concurrency_group, \
                             attempts, run_at_us, created_us, rank_us) VALUES ($1, $2, $3, $4, 'queued', $5, $6, 0, $7, $8, $9) RETURNING id",
                        )
                        .bind(&j.class)
                        .bind(j.priority)
                        .bind(&j.kind)
                        .bind(js(&j.payload))
                        .bind(&j.supersede_key)
                        .bind(&j.concurrency_group)
                        .bind(us(&j.run_at))
                        .bind(us(&j.created_at))
                        .bind(job_rank(j)?)
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(write_err(format!("job {}", j.kind)))?;
                        Ok(Outcome::Id(col(&row, "id")?))
                    }
                    Change::OpenIncident(i) => {
                        let row = sqlx::query(
                            "INSERT INTO incidents (environment, summary, caused_by, opened_us) \
                             VALUES ($1, $2, $3, $4) RETURNING id",
                        )
                        .bind(&i.environment)
                        .bind(&i.summary)
                        .bind(i.caused_by)
                        .bind(us(&i.opened_at))
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(write_err(format!("incident in {}", i.environment)))?;
                        Ok(Outcome::Id(col(&row, "id")?))
                    }
                    Change::ResolveIncident { id, restored_by, at } => {
                        let done = sqlx::query(
                            "UPDATE incidents SET restored_by = $2, resolved_us = $3 WHERE id = $1 AND resolved_us IS NULL",
                        )
                        .bind(id)
                        .bind(restored_by)
                        .bind(us(at))
                        .execute(&mut **tx)
                        .await
                        .map_err(write_err(format!("incident {id}")))?;
                        if done.rows_affected() == 0 {
                            return Err(absent_or_conflict(tx, "incidents", *id, format!("incident {id}"), "is already resolved").await);
                        }
                        Ok(Outcome::Done)
                    }
                    Change::AcquireLock { environment, holder, message, at, lease_until } => {
                        let taken = sqlx::query(
                            "INSERT INTO env_locks (environment, holder, message, acquired_us, lease_until_us) \
                             VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (environment) DO UPDATE SET holder = excluded.holder, message = excluded.message, \
                             acquired_us = excluded.acquired_us, lease_until_us = excluded.lease_until_us \
                             WHERE env_locks.lease_until_us <= $4 OR env_locks.holder = excluded.holder \
                             RETURNING environment",
                        )
                        .bind(environment)
                        .bind(holder)
                        .bind(message)
                        .bind(us(at))
                        .bind(us(lease_until))
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(write_err(format!("lock of environment {environment}")))?;
                        if taken.is_none() {
                            let row = sqlx::query("SELECT * FROM env_locks WHERE environment = $1")
                                .bind(environment)
                                .fetch_one(&mut **tx)
                                .await
                                .map_err(read_err("reading an environment lock"))?;
                            let lock = lock_of(&row)?;
                            return Err(StoreError::LockHeld {
                                environment: lock.environment,
                                holder: lock.holder,
                                message: lock.message,
                                acquired_at: cutover_core::audit::format_at(&lock.acquired_at),
                                lease_until: cutover_core::audit::format_at(&lock.lease_until),
                            });
                        }
                        Ok(Outcome::Done)
                    }
                    Change::ReleaseLock { environment, holder } => {
                        let done = sqlx::query("DELETE FROM env_locks WHERE environment = $1 AND holder = $2")
                            .bind(environment)
                            .bind(holder)
                            .execute(&mut **tx)
                            .await
                            .map_err(write_err(format!("lock of environment {environment}")))?;
                        if done.rows_affected() == 0 {
                            return Err(StoreError::Conflict {
                                what: format!("{holder} does not hold the lock of environment {environment}"),
                            });
                        }
                        Ok(Outcome::Done)
                    }
                    Change::InsertApiToken(t) => {
                        let environments = serde_json::to_string(&t.environments).unwrap_or_else(|_| "[]".into());
                        let row = sqlx::query(
                            "INSERT INTO api_tokens (name, scope, environments, token_hash, created_by, created_us) \
                             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        )
                        .bind(&t.name)
                        .bind(t.scope.as_str())
                        .bind(environments)
                        .bind(&t.token_hash)
                        .bind(&t.created_by)
                        .bind(us(&t.created_at))
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(write_err(format!("API token {:?}", t.name)))?;
                        Ok(Outcome::Id(col(&row, "id")?))
                    }
                    Change::RevokeApiToken { id, at } => {
                        let done = sqlx::query("UPDATE api_tokens SET revoked_us = $2 WHERE id = $1 AND revoked_us IS NULL")
                            .bind(id)
                            .bind(us(at))
                            .execute(&mut **tx)
                            .await
                            .map_err(write_err(format!("API token {id}")))?;
                        if done.rows_affected() == 0 {
                            return Err(absent_or_conflict(tx, "api_tokens", *id, format!("API token {id}"), "is already revoked").await);
                        }
                        Ok(Outcome::Done)
                    }
                    Change::RecordWebhookDelivery { provider, delivery_id, at } => {
                        sqlx::query("INSERT INTO webhook_deliveries (provider, delivery_id, received_us) VALUES ($1, $2, $3)")
                            .bind(provider)
                            .bind(delivery_id)
                            .bind(us(at))
                            .execute(&mut **tx)
                            .await
                            .map_err(write_err(format!("{provider} webhook delivery {delivery_id}")))?;
                        Ok(Outcome::Done)
                    }
                }
            }

            #[async_trait]
            impl Store for $store {
                fn backend(&self) -> Backend {
                    $backend
                }

                fn location(&self) -> &str {
                    &self.location
                }

                async fn apply(&self, changes: &[Change], audit: &Audit) -> Result<Applied, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let mut outcomes = Vec::with_capacity(changes.len());
                    for change in changes {
                        outcomes.push(apply_change(&mut tx, change).await?);
                    }
                    let event = match crate::records::subject_with_id(audit, &outcomes) {
                        Some(named) => append_in_tx(&mut tx, &named).await?,
                        None => append_in_tx(&mut tx, audit).await?,
                    };
                    tx.commit().await.map_err(read_err("committing a change"))?;
                    Ok(Applied { outcomes, event })
                }

                async fn get_release(&self, version: &str) -> Result<Option<Release>, StoreError> {
                    let row = sqlx::query("SELECT * FROM releases WHERE version = $1")
                        .bind(version)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading a release"))?;
                    row.as_ref().map(release_of).transpose()
                }

                async fn list_releases(&self) -> Result<Vec<Release>, StoreError> {
                    sqlx::query("SELECT * FROM releases ORDER BY created_us, version")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing releases"))?
                        .iter()
                        .map(release_of)
                        .collect()
                }

                async fn get_notice(&self, id: i64) -> Result<Option<Notice>, StoreError> {
                    let row = sqlx::query("SELECT * FROM notices WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading a notice"))?;
                    row.as_ref().map(notice_of).transpose()
                }

                async fn list_notices(&self, version: Option<&str>) -> Result<Vec<Notice>, StoreError> {
                    sqlx::query("SELECT * FROM notices WHERE ($1 IS NULL OR version = $1) ORDER BY id")
                        .bind(version)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing notices"))?
                        .iter()
                        .map(notice_of)
                        .collect()
                }

                async fn get_deployment(&self, id: i64) -> Result<Option<Deployment>, StoreError> {
                    let row = sqlx::query("SELECT * FROM deployments WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading a deployment"))?;
                    row.as_ref().map(deployment_of).transpose()
                }

                async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, StoreError> {
                    // Only the filters given become conditions (see `list_audit` for why).
                    let mut sql = String::from("SELECT * FROM deployments WHERE TRUE");
                    if filter.environment.is_some() {
                        sql.push_str(" AND environment = $1");
                    }
                    if filter.unfinished_only {
                        sql.push_str(" AND finished_us IS NULL");
                    }
                    let n = if filter.environment.is_some() { 2 } else { 1 };
                    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${n}"));
                    let mut query = sqlx::query(&sql);
                    if let Some(env) = filter.environment.as_deref() {
                        query = query.bind(env);
                    }
                    query
                        .bind(filter.limit.unwrap_or(i64::MAX))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing deployments"))?
                        .iter()
                        .map(deployment_of)
                        .collect()
                }

                async fn search_deployments(&self, search: &DeploymentSearch) -> Result<Vec<Deployment>, StoreError> {
                    let mut sql = String::from("SELECT * FROM deployments WHERE TRUE");
                    let mut n = 0;
                    let mut next = || {
                        n += 1;
                        format!("${n}")
                    };
                    if search.environment.is_some() {
                        sql.push_str(&format!(" AND environment = {}", next()));
                    }
                    if !search.versions.is_empty() {
                        let list: Vec<String> = search.versions.iter().map(|_| next()).collect();
                        sql.push_str(&format!(" AND release_version IN ({})", list.join(", ")));
                    }
                    if search.live_only {
                        sql.push_str(" AND state = 'live' AND finished_us IS NOT NULL");
                    }
                    if search.created_before.is_some() {
                        sql.push_str(&format!(" AND created_us < {}", next()));
                    }
                    if search.before_id.is_some() {
                        sql.push_str(&format!(" AND id < {}", next()));
                    }
                    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", next()));
                    let mut query = sqlx::query(&sql);
                    if let Some(env) = search.environment.as_deref() {
                        query = query.bind(env);
                    }
                    for v in &search.versions {
                        query = query.bind(v.as_str());
                    }
                    if let Some(before) = &search.created_before {
                        query = query.bind(us(before));
                    }
                    if let Some(id) = search.before_id {
                        query = query.bind(id);
                    }
                    query
                        .bind(search.limit.unwrap_or(i64::MAX))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("searching deployments"))?
                        .iter()
                        .map(deployment_of)
                        .collect()
                }

                async fn list_deployment_steps(&self, deployment_id: i64) -> Result<Vec<DeploymentStep>, StoreError> {
                    sqlx::query("SELECT * FROM deployment_steps WHERE deployment_id = $1 ORDER BY id")
                        .bind(deployment_id)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing deployment steps"))?
                        .iter()
                        .map(step_of)
                        .collect()
                }

                async fn get_host(&self, name: &str) -> Result<Option<Host>, StoreError> {
                    let row = sqlx::query("SELECT * FROM hosts WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading a host"))?;
                    row.as_ref().map(host_of).transpose()
                }

                async fn list_hosts(&self) -> Result<Vec<Host>, StoreError> {
                    sqlx::query("SELECT * FROM hosts ORDER BY name")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing hosts"))?
                        .iter()
                        .map(host_of)
                        .collect()
                }

                async fn touch_host(
                    &self,
                    name: &str,
                    at: Timestamp,
                    agent_version: Option<&str>,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE hosts SET last_seen_us = $2, agent_version = COALESCE($3, agent_version) WHERE name = $1",
                    )
                    .bind(name)
                    .bind(us(&at))
                    .bind(agent_version)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("recording a host's heartbeat"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn current_assignment(&self, host: &str) -> Result<Option<Assignment>, StoreError> {
                    let row = sqlx::query(
                        "SELECT * FROM assignments WHERE host = $1 ORDER BY generation DESC LIMIT 1",
                    )
                    .bind(host)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err("reading an assignment"))?;
                    row.as_ref().map(assignment_of).transpose()
                }

                async fn list_observations(
                    &self,
                    host: &str,
                    generation: Option<i64>,
                ) -> Result<Vec<Observation>, StoreError> {
                    sqlx::query(
                        "SELECT * FROM observations WHERE host = $1 AND ($2 IS NULL OR generation = $2) ORDER BY id",
                    )
                    .bind(host)
                    .bind(generation)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err("listing observations"))?
                    .iter()
                    .map(observation_of)
                    .collect()
                }

                async fn latest_observation(
                    &self,
                    host: &str,
                ) -> Result<Option<Observation>, StoreError> {
                    sqlx::query("SELECT * FROM observations WHERE host = $1 ORDER BY id DESC LIMIT 1")
                        .bind(host)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading the latest observation"))?
                        .as_ref()
                        .map(observation_of)
                        .transpose()
                }

                async fn latest_observations(&self, hosts: &[String]) -> Result<Vec<Observation>, StoreError> {
                    if hosts.is_empty() {
                        return Ok(Vec::new());
                    }
                    let list: Vec<String> = (1..=hosts.len()).map(|i| format!("${i}")).collect();
                    let sql = format!(
                        "SELECT * FROM observations WHERE id IN \
                         (SELECT MAX(id) FROM observations WHERE host IN ({}) GROUP BY host) ORDER BY host",
                        list.join(", ")
                    );
                    let mut query = sqlx::query(&sql);
                    for h in hosts {
                        query = query.bind(h.as_str());
                    }
                    query
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("reading the latest observations"))?
                        .iter()
                        .map(observation_of)
                        .collect()
                }

                async fn list_proofs(&self, deployment_id: i64) -> Result<Vec<Proof>, StoreError> {
                    sqlx::query("SELECT * FROM proofs WHERE deployment_id = $1 ORDER BY id")
                        .bind(deployment_id)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing proofs"))?
                        .iter()
                        .map(proof_of)
                        .collect()
                }

                async fn get_job(&self, id: i64) -> Result<Option<Job>, StoreError> {
                    let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading a job"))?;
                    row.as_ref().map(job_of).transpose()
                }

                async fn get_incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
                    let row = sqlx::query("SELECT * FROM incidents WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading an incident"))?;
                    row.as_ref().map(incident_of).transpose()
                }

                async fn list_incidents(&self, environment: Option<&str>) -> Result<Vec<Incident>, StoreError> {
                    sqlx::query("SELECT * FROM incidents WHERE ($1 IS NULL OR environment = $1) ORDER BY id")
                        .bind(environment)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing incidents"))?
                        .iter()
                        .map(incident_of)
                        .collect()
                }

                async fn get_lock(&self, environment: &str) -> Result<Option<EnvLock>, StoreError> {
                    let row = sqlx::query("SELECT * FROM env_locks WHERE environment = $1")
                        .bind(environment)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading an environment lock"))?;
                    row.as_ref().map(lock_of).transpose()
                }

                async fn renew_lock(
                    &self,
                    environment: &str,
                    holder: &str,
                    lease_until: Timestamp,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE env_locks SET lease_until_us = $3 WHERE environment = $1 AND holder = $2",
                    )
                    .bind(environment)
                    .bind(holder)
                    .bind(us(&lease_until))
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("renewing an environment lock"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn enqueue_job(&self, job: &EnqueueJob, policy: &QueuePolicy, actor: &str) -> Result<Enqueued, StoreError> {
                    q_enqueue(self, job, policy, actor).await
                }

                async fn enqueue_jobs(&self, jobs: &[EnqueueJob], policy: &QueuePolicy, actor: &str) -> Result<Vec<Enqueued>, StoreError> {
                    q_enqueue_batch(self, jobs, policy, actor).await
                }

                async fn claim_jobs(&self, worker: &str, now: Timestamp, lease: std::time::Duration, limit: usize) -> Result<Vec<Job>, StoreError> {
                    q_claim_batch(self, worker, now, lease, limit).await
                }

                async fn complete_jobs(&self, worker: &str, results: &[(i64, serde_json::Value)], actor: &str) -> Result<Vec<Job>, StoreError> {
                    q_complete_batch(self, worker, results, actor).await
                }

                async fn claim_job(&self, worker: &str, now: Timestamp, lease: std::time::Duration) -> Result<Option<Job>, StoreError> {
                    q_claim(self, worker, now, lease).await
                }

                async fn heartbeat_job(&self, id: i64, worker: &str, lease_until: Timestamp) -> Result<bool, StoreError> {
                    q_heartbeat(self, id, worker, lease_until).await
                }

                async fn complete_job(&self, id: i64, worker: &str, result: &serde_json::Value, actor: &str) -> Result<Job, StoreError> {
                    q_complete(self, id, worker, result, actor).await
                }

                async fn fail_job(
                    &self,
                    id: i64,
                    worker: &str,
                    error: &str,
                    result: Option<&serde_json::Value>,
                    retry: bool,
                    policy: &QueuePolicy,
                    actor: &str,
                ) -> Result<Job, StoreError> {
                    q_fail(self, id, worker, error, result, retry, policy, actor).await
                }

                async fn reclaim_expired_jobs(&self, now: Timestamp, policy: &QueuePolicy, actor: &str) -> Result<Vec<Job>, StoreError> {
                    q_reclaim(self, now, policy, actor).await
                }

                async fn cancel_job(&self, id: i64, actor: &str, reason: &str) -> Result<Job, StoreError> {
                    q_cancel(self, id, actor, reason).await
                }

                async fn bump_job(&self, id: i64, priority: i64, policy: &QueuePolicy, actor: &str) -> Result<Job, StoreError> {
                    q_bump(self, id, priority, policy, actor).await
                }

                async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
                    q_list(self, filter).await
                }

                async fn wait_for_work(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
                    self.wait_for_work_impl(timeout).await
                }

                async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
                    sqlx::query("SELECT * FROM api_tokens ORDER BY id")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing API tokens"))?
                        .iter()
                        .map(api_token_of)
                        .collect()
                }

                async fn find_api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
                    let row = sqlx::query("SELECT * FROM api_tokens WHERE token_hash = $1")
                        .bind(token_hash)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading an API token"))?;
                    row.as_ref().map(api_token_of).transpose()
                }

                async fn data_version(&self) -> Result<Option<DataVersion>, StoreError> {
                    let Some(expr) = <$store>::DATA_VERSION else {
                        return Ok(None);
                    };
                    let row = sqlx::query(&format!("SELECT {expr} AS data_version"))
                        .fetch_one(&self.pool)
                        .await
                        .map_err(read_err("reading the data version"))?;
                    Ok(Some(DataVersion(col(&row, "data_version")?)))
                }

                async fn find_api_token_versioned(
                    &self,
                    token_hash: &str,
                ) -> Result<(Option<ApiToken>, Option<DataVersion>), StoreError> {
                    let Some(expr) = <$store>::DATA_VERSION else {
                        return Ok((self.find_api_token(token_hash).await?, None));
                    };
                    // One row whether or not the token exists: the version comes either way.
                    let row = sqlx::query(&format!(
                        "SELECT t.*, {expr} AS data_version \
                         FROM (SELECT 1) AS one LEFT JOIN api_tokens t ON t.token_hash = $1"
                    ))
                    .bind(token_hash)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(read_err("reading an API token"))?;
                    let version = DataVersion(col(&row, "data_version")?);
                    let token = match col::<Option<i64>>(&row, "id")? {
                        Some(_) => Some(api_token_of(&row)?),
                        None => None,
                    };
                    Ok((token, Some(version)))
                }

                async fn touch_api_token(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
                    sqlx::query("UPDATE api_tokens SET last_used_us = $2 WHERE id = $1")
                        .bind(id)
                        .bind(us(&at))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("recording an API token's use"))?;
                    Ok(())
                }

                async fn notification_cursor(&self, channel: &str) -> Result<i64, StoreError> {
                    let row = sqlx::query("SELECT seq FROM notification_cursors WHERE channel = $1")
                        .bind(channel)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading a notification cursor"))?;
                    match row {
                        Some(r) => col(&r, "seq"),
                        None => Ok(0),
                    }
                }

                async fn advance_notification_cursor(&self, channel: &str, expected: i64, to: i64) -> Result<bool, StoreError> {
                    // The insert covers a channel's first move (from 0); the conditional update
                    // makes the move a compare-and-set, so only one replica wins it.
                    let done = sqlx::query(
                        "INSERT INTO notification_cursors (channel, seq) SELECT $1, $3 WHERE $2 = 0 \
                         ON CONFLICT (channel) DO UPDATE SET seq = excluded.seq WHERE notification_cursors.seq = $2",
                    )
                    .bind(channel)
                    .bind(expected)
                    .bind(to)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("moving a notification cursor"))?;
                    if done.rows_affected() > 0 {
                        return Ok(true);
                    }
                    let done = sqlx::query("UPDATE notification_cursors SET seq = $3 WHERE channel = $1 AND seq = $2")
                        .bind(channel)
                        .bind(expected)
                        .bind(to)
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("moving a notification cursor"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
                    // Only the filters given become conditions: with `$n IS NULL OR col = $n`
                    // PostgreSQL's generic plan (after five runs of a prepared statement) cannot
                    // use the indexes and scans the whole log.
                    let order = if filter.descending { "DESC" } else { "ASC" };
                    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1");
                    let mut n = 1;
                    let mut cond = |sql: &mut String, what: &str| {
                        n += 1;
                        sql.push_str(&format!(" AND {what} ${n}"));
                    };
                    if filter.since.is_some() {
                        cond(&mut sql, "at_us >=");
                    }
                    if filter.until.is_some() {
                        cond(&mut sql, "at_us <");
                    }
                    if filter.action.is_some() {
                        cond(&mut sql, "action =");
                    }
                    if filter.subject.is_some() {
                        cond(&mut sql, "subject =");
                    }
                    sql.push_str(&format!(" ORDER BY seq {order} LIMIT ${}", n + 1));
                    let mut query = sqlx::query(&sql).bind(filter.after_seq.unwrap_or(i64::MIN));
                    if let Some(since) = &filter.since {
                        query = query.bind(us(since));
                    }
                    if let Some(until) = &filter.until {
                        query = query.bind(us(until));
                    }
                    if let Some(action) = filter.action.as_deref() {
                        query = query.bind(action);
                    }
                    if let Some(subject) = filter.subject.as_deref() {
                        query = query.bind(subject);
                    }
                    let rows = query
                        .bind(filter.limit.unwrap_or(i64::MAX))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("listing audit events"))?;
                    rows.iter()
                        .map(|r| event_of(r).map_err(|what| StoreError::Corrupt { what: format!("audit event: {what}") }))
                        .collect()
                }

                async fn switches_before(&self, environment: &str, until: Timestamp) -> Result<$crate::switches::SwitchesBefore, StoreError> {
                    let corrupt = |what: String| StoreError::Corrupt { what: format!("audit event: {what}") };
                    // Per host the newest switch naming it before `until`: a walk down the
                    // (environment, host, seq, at_us) key from the newest switch, index only.
                    let rows = sqlx::query(&format!(
                        "SELECT l.host AS switch_host, {cols} FROM \
                         (SELECT h.host AS host, (SELECT s.seq FROM audit_switch_hosts s \
                           WHERE s.environment = h.environment AND s.host = h.host AND s.at_us < $2 \
                           ORDER BY s.seq DESC LIMIT 1) AS latest \
                          FROM audit_switch_env_hosts h WHERE h.environment = $1) l \
                         JOIN audit a ON a.seq = l.latest ORDER BY l.host",
                        cols = AUDIT_COLUMNS_A,
                    ))
                    .bind(environment)
                    .bind(us(&until))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err("reading the newest switch of each host"))?;
                    let mut out = $crate::switches::SwitchesBefore::default();
                    for r in &rows {
                        let seq: i64 = col(r, "seq")?;
                        out.latest.push((col(r, "switch_host")?, seq));
                        if !out.events.iter().any(|e| e.seq == seq) {
                            out.events.push(event_of(r).map_err(corrupt)?);
                        }
                    }
                    out.events.sort_by_key(|e| e.seq);
                    let unreadable = sqlx::query(&format!(
                        "SELECT {cols} FROM audit_switches s JOIN audit a ON a.seq = s.seq \
                         WHERE s.environment = $1 AND s.readable = 0 AND s.at_us < $2 ORDER BY s.seq",
                        cols = AUDIT_COLUMNS_A,
                    ))
                    .bind(environment)
                    .bind(us(&until))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err("reading the unreadable switch events"))?;
                    out.unreadable = unreadable.iter().map(|r| event_of(r).map_err(corrupt)).collect::<Result<_, _>>()?;
                    out.deployed = !out.latest.is_empty()
                        || sqlx::query(
                            "SELECT seq FROM audit_switches WHERE environment = $1 AND readable = 1 AND at_us < $2 LIMIT 1",
                        )
                        .bind(environment)
                        .bind(us(&until))
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err("reading whether anything was switched"))?
                        .is_some();
                    Ok(out)
                }

                async fn verify_audit(&self) -> Result<VerifyReport, StoreError> {
                    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2");
                    let mut verifier = ChainVerifier::new();
                    let mut last = i64::MIN;
                    loop {
                        let rows = sqlx::query(&sql)
                            .bind(last)
                            .bind(VERIFY_BATCH)
                            .fetch_all(&self.pool)
                            .await
                            .map_err(read_err("reading the audit chain"))?;
                        if rows.is_empty() {
                            return Ok(VerifyReport { events: verifier.checked(), first_broken: None });
                        }
                        for row in &rows {
                            let seq: i64 = col(row, "seq")?;
                            last = seq;
                            let outcome = match stored_event_of(row) {
                                Ok((event, payload)) => verifier.push_stored(&event, &payload),
                                Err(detail) => Err(Broken { seq, reason: BrokenReason::Unreadable { detail } }),
                            };
                            if let Err(broken) = outcome {
                                return Ok(VerifyReport { events: verifier.checked(), first_broken: Some(broken) });
                            }
                        }
                    }
                }

                async fn close(&self) {
                    // The queue's listener holds a pooled connection: stop it first.
                    self.stop_listening();
                    self.pool.close().await;
                }
            }
        }
    };
}

pub(crate) use impl_store;
