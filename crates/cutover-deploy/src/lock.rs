//! The environment lock: one deployment at a time per environment, held as a lease in the store,
//! renewed in the background, taken over when its holder died.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use cutover_store::{Audit, Change, Store, StoreError};
use serde_json::json;

use crate::DeployError;

/// How long a lock lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Locks held by this process (`environment` of a store location): a lock in the store with this
/// process's hostname and pid but absent here was left by an abandoned deployment.
static HELD: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn held_key(store: &dyn Store, environment: &str) -> String {
    format!("{}\u{0}{environment}", store.location())
}

fn held(f: impl FnOnce(&mut HashSet<String>) -> bool) -> bool {
    let mut g = HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(g.get_or_insert_with(HashSet::new))
}

/// This machine's host name.
#[must_use]
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `<hostname>:<pid>:<what>`.
#[must_use]
pub fn holder(what: &str) -> String {
    format!("{}:{}:{what}", hostname(), std::process::id())
}

fn pid_alive(pid: u32) -> bool {
    // A zombie (killed, not yet reaped: its parent died with it and the new parent reaps late)
    // runs no more, although /proc still lists it.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            != Some("Z")
    })
}

/// Whether a lock held by `holder` may be taken over although its lease runs: its holder is a
/// process of this machine that no longer runs (or this very process, which no longer holds it).
fn holder_dead(store: &dyn Store, environment: &str, holder: &str) -> bool {
    let mut parts = holder.splitn(3, ':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if host != hostname() {
        return false;
    }
    if pid == std::process::id() {
        let key = held_key(store, environment);
        return !held(|h| h.contains(&key));
    }
    !pid_alive(pid)
}

/// A held lock; renewed until released. Dropping it without [`EnvLock::release`] releases it in
/// the background (when a runtime is there to do it).
#[derive(Debug)]
pub struct EnvLock {
    store: Arc<dyn Store>,
    environment: String,
    holder: String,
    actor: String,
    lost: Arc<AtomicBool>,
    renew: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl EnvLock {
    /// Takes the lock of `environment` for `holder` (taking over one whose holder died), or waits
    /// for it when `wait`; else fails naming the holder, since when and its message.
    pub async fn acquire(
        store: Arc<dyn Store>,
        environment: &str,
        holder: &str,
        message: &str,
        actor: &str,
        wait: bool,
    ) -> Result<EnvLock, DeployError> {
        let mut races = 0;
        loop {
            match try_acquire(&*store, environment, holder, message, actor).await {
                Ok(()) => break,
                // The lock changed hands between reading and writing it: look again.
                Err(DeployError::Lock(StoreError::Conflict { .. })) if races < 5 => races += 1,
                Err(DeployError::Lock(StoreError::LockHeld { .. })) if wait => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
        held(|h| h.insert(held_key(&*store, environment)));
        let lost = Arc::new(AtomicBool::new(false));
        let renew = {
            let (store, env, holder, lost) = (
                store.clone(),
                environment.to_owned(),
                holder.to_owned(),
                lost.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let until = Utc::now() + LEASE;
                    match store.renew_lock(&env, &holder, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(environment = %env, error = %e, "cannot renew the environment lock");
                        }
                    }
                }
            })
        };
        Ok(EnvLock {
            store,
            environment: environment.to_owned(),
            holder: holder.to_owned(),
            actor: actor.to_owned(),
            lost,
            renew: Some(renew),
            released: false,
        })
    }

    /// Fails when another holder took the lock over (this deployment must stop).
    pub fn check(&self) -> Result<(), DeployError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(DeployError::LockLost(self.environment.clone()))
        } else {
            Ok(())
        }
    }

    /// Releases the lock (audited `lock.release`).
    pub async fn release(mut self) -> Result<(), DeployError> {
        self.released = true;
        if let Some(r) = self.renew.take() {
            r.abort();
        }
        held(|h| h.remove(&held_key(&*self.store, &self.environment)));
        release(&*self.store, &self.environment, &self.holder, &self.actor).await
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        if let Some(r) = self.renew.take() {
            r.abort();
        }
        if self.released {
            return;
        }
        held(|h| h.remove(&held_key(&*self.store, &self.environment)));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, env, holder, actor) = (
                self.store.clone(),
                self.environment.clone(),
                self.holder.clone(),
                self.actor.clone(),
            );
            rt.spawn(async move {
                let _ = release(&*store, &env, &holder, &actor).await;
            });
        }
    }
}

async fn release(
    store: &dyn Store,
    environment: &str,
    holder: &str,
    actor: &str,
) -> Result<(), DeployError> {
    match store
        .apply_one(
            Change::ReleaseLock {
                environment: environment.to_owned(),
                holder: holder.to_owned(),
            },
            &Audit::new(
                actor,
                "lock.release",
                format!("env:{environment}"),
                json!({ "holder": holder, "message": "" }),
            ),
        )
        .await
    {
        // Taken over meanwhile: it is not ours to release.
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn try_acquire(
    store: &dyn Store,
    environment: &str,
    holder: &str,
    message: &str,
    actor: &str,
) -> Result<(), DeployError> {
    let now = Utc::now();
    let acquire = Change::AcquireLock {
        environment: environment.to_owned(),
        holder: holder.to_owned(),
        message: message.to_owned(),
        at: now,
        lease_until: now + LEASE,
    };
    let current = store.get_lock(environment).await?;
    if let Some(l) = &current
        && l.holder == holder
        && held(|h| h.contains(&held_key(store, environment)))
    {
        // The same holder string in use by another task of this process.
        return Err(DeployError::Lock(StoreError::LockHeld {
            environment: l.environment.clone(),
            holder: l.holder.clone(),
            message: l.message.clone(),
            acquired_at: cutover_core::audit::format_at(&l.acquired_at),
            lease_until: cutover_core::audit::format_at(&l.lease_until),
        }));
    }
    let takeover = current
        .as_ref()
        .filter(|l| l.holder != holder)
        .filter(|l| l.lease_until <= now || holder_dead(store, environment, &l.holder));
    let result = if let Some(old) = takeover {
        store
            .apply(
                &[
                    Change::ReleaseLock {
                        environment: environment.to_owned(),
                        holder: old.holder.clone(),
                    },
                    acquire,
                ],
                &Audit::new(
                    actor,
                    "lock.takeover",
                    format!("env:{environment}"),
                    json!({ "holder": holder, "message": message, "previous": old.holder }),
                ),
            )
            .await
            .map(|_| ())
    } else {
        store
            .apply(
                &[acquire],
                &Audit::new(
                    actor,
                    "lock.acquire",
                    format!("env:{environment}"),
                    json!({ "holder": holder, "message": message }),
                ),
            )
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => Ok(()),
        // The holder changed between the read and the write: report the lock as held.
        Err(StoreError::Conflict { .. }) => match store.get_lock(environment).await? {
            Some(l) => Err(DeployError::Lock(StoreError::LockHeld {
                environment: l.environment,
                holder: l.holder,
                message: l.message,
                acquired_at: cutover_core::audit::format_at(&l.acquired_at),
                lease_until: cutover_core::audit::format_at(&l.lease_until),
            })),
            None => Err(DeployError::Lock(StoreError::Conflict {
                what: format!("the lock of environment {environment} changed hands"),
            })),
        },
        Err(e @ StoreError::LockHeld { .. }) => Err(DeployError::Lock(e)),
        Err(e) => Err(e.into()),
    }
}
