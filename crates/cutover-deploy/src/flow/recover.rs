//! Going back: automatic rollback of a failed deployment, the rollback command (warm switch or
//! redeploy) and resuming unfinished deployments.

use super::*;

/// How the last transition of a rolled back deployment begins its reason (the outcome's reason
/// follows; [`crate::pipeline::finished_outcome`] reads it back).
pub(crate) const ROLLED_BACK: &str = "rolled back: ";
/// As [`ROLLED_BACK`], for a failed deployment that had nothing to go back to.
pub(crate) const NOTHING_TO_ROLL_BACK: &str = "failed with nothing to roll back to: ";

/// Fails the deployment and brings the hosts back to what served before: routers back to the
/// previous slot where it still runs, the new slot removed.
pub(super) async fn roll_back(
    run: &mut Run<'_>,
    reason: &str,
) -> Result<DeployOutcome, DeployError> {
    run.say(format!("failed: {reason}"));
    if run.state.is_forward() {
        run.transition(State::Failed, reason, &[], None, false)
            .await?;
    }
    if run.plans.is_empty() {
        run.plans = recorded_plans(run.eng, run.dep.id).await?;
    }
    if run.state == State::Failed {
        let intent = json!({
            "reason": reason,
            "hosts": run.plans.iter().map(|p| json!({
                "host": p.host,
                "to_slot": p.old_slot.map(Slot::as_str),
                "to_version": p.old.as_ref().map(|r| r.version.clone()),
                "remove_slot": p.new_slot.as_str(),
            })).collect::<Vec<_>>(),
        });
        run.transition(
            State::RollingBack,
            reason,
            &[("rollback", intent)],
            None,
            false,
        )
        .await?;
    }
    // Hosts whose router no longer sends everything to the previous slot.
    let mut back = Vec::new();
    for p in &run.plans {
        let (Some(old_slot), Some(old)) = (p.old_slot, &p.old) else {
            continue;
        };
        let (_, a) = run.assignment(&p.host).await?;
        if let Some(svc) = a.services.get(&run.target.service_name)
            && svc.slots.get(&old_slot) == Some(old)
            && (svc.routing.active != Some(old_slot) || svc.routing.canary.is_some())
        {
            back.push(p.host.clone());
        }
    }
    let mut unconfirmed = Vec::new();
    if !back.is_empty() {
        run.say(format!(
            "routers back to the previous release on {}",
            back.join(", ")
        ));
        let edit = |p: &HostPlan, svc: &mut DesiredService| {
            if let Some(old_slot) = p.old_slot {
                svc.routing.active = Some(old_slot);
                svc.routing.canary = None;
            }
        };
        let want = |p: &HostPlan| (p.old_slot, None);
        match switch_and_wait(run, &back, &edit, &want, true).await {
            Ok((_, late)) => unconfirmed = late,
            Err(Stop::Error(e)) => return Err(*e),
            Err(Stop::Fail(r)) => unconfirmed.push(r),
        }
    }
    let any_old = run.plans.iter().any(|p| p.old.is_some());
    let new = run.new_release();
    let hosts = run.target.names();
    let cleanup = move |p: &HostPlan, svc: &mut DesiredService| {
        if svc.slots.get(&p.new_slot) == Some(&new) && svc.routing.active != Some(p.new_slot) {
            svc.slots.remove(&p.new_slot);
            if svc.routing.canary.is_some_and(|c| c.slot == p.new_slot) {
                svc.routing.canary = None;
            }
        }
    };
    let note = if unconfirmed.is_empty() {
        String::new()
    } else {
        format!(" (not confirmed by: {})", unconfirmed.join("; "))
    };
    let (to, text) = if any_old {
        (State::RolledBack, format!("{ROLLED_BACK}{reason}{note}"))
    } else {
        (
            State::Failed,
            format!("{NOTHING_TO_ROLL_BACK}{reason}{note}"),
        )
    };
    run.transition(to, &text, &[], Some((hosts.as_slice(), &cleanup)), true)
        .await?;
    run.say(text);
    Ok(if any_old {
        DeployOutcome::RolledBack {
            deployment: run.dep.id,
            reason: format!("{reason}{note}"),
        }
    } else {
        DeployOutcome::Failed {
            deployment: run.dep.id,
            reason: format!("{reason}{note}"),
        }
    })
}

/// The environment's live deployments, newest first (finished, state `live`).
pub(super) async fn live_deployments(
    eng: &Engine,
    environment: &str,
) -> Result<Vec<Deployment>, DeployError> {
    Ok(eng
        .store
        .list_deployments(&DeploymentFilter {
            environment: Some(environment.to_owned()),
            unfinished_only: false,
            limit: None,
        })
        .await?
        .into_iter()
        .filter(|d| d.state == State::Live.as_str() && d.finished_at.is_some())
        .collect())
}

pub(crate) async fn rollback(
    engine: &Engine,
    environment: &str,
    to: Option<&str>,
    progress: &dyn Fn(Progress),
) -> Result<DeployOutcome, DeployError> {
    let target = Target::resolve(engine, environment)?;
    let lives = live_deployments(engine, environment).await?;
    let current = lives
        .first()
        .cloned()
        .ok_or_else(|| DeployError::NothingLive(environment.to_owned()))?;
    let version = match to {
        Some(v) => {
            if !lives.iter().any(|d| d.release_version == v) {
                return Err(DeployError::NeverLive {
                    environment: environment.to_owned(),
                    version: v.to_owned(),
                });
            }
            v.to_owned()
        }
        None => lives
            .iter()
            .find(|d| d.release_version != current.release_version)
            .map(|d| d.release_version.clone())
            .ok_or_else(|| DeployError::NoEarlierRelease(environment.to_owned()))?,
    };
    let (release, digest) = release_with_artifact(engine, &version).await?;
    crate::appdb::check_rollback(engine, environment, &version).await?;
    tracing::debug!(environment, %version, "rollback: target resolved");
    // Warm: every host runs it healthy in a slot its assignment still holds.
    let want = crate::desired::desired_release(&version, &digest);
    let mut warm = Vec::new();
    for name in target.names() {
        let (_, a) = current_assignment(engine, &name).await?;
        let Some(svc) = a.services.get(&target.service_name) else {
            break;
        };
        let Some((slot, _)) = svc
            .slots
            .iter()
            .find(|(_, r)| r.version == want.version && r.artifact_sha256 == want.artifact_sha256)
        else {
            break;
        };
        let Some(o) = engine.store.latest_observation(&name).await? else {
            break;
        };
        let view = HostView::of(&o, &target.service_name);
        if slot_healthy(&view, *slot, &version) != Check::Ready {
            break;
        }
        warm.push(HostPlan {
            host: name.clone(),
            new_slot: *slot,
            old_slot: svc.routing.active.filter(|a| a != slot),
            old: svc
                .routing
                .active
                .filter(|a| a != slot)
                .and_then(|a| svc.slots.get(&a).cloned()),
            prepared_generation: Some(o.generation),
        });
    }
    tracing::debug!(
        warm = warm.len(),
        hosts = target.hosts.len(),
        "rollback: warm check done"
    );
    if warm.len() != target.hosts.len() {
        progress(Progress {
            deployment: 0,
            state: State::Queued.as_str().to_owned(),
            message: format!("{version} is not warm on every host: redeploying it"),
            step: None,
        });
        return deploy(
            engine,
            DeployRequest {
                environment: environment.to_owned(),
                version,
                trigger: "rollback".into(),
                reverts: Some(current.id),
                wait_for_lock: false,
                message: None,
            },
            progress,
        )
        .await;
    }
    let lock = EnvLock::acquire(
        engine.store.clone(),
        environment,
        &holder(&format!("rollback {environment}")),
        &format!("rollback {environment} to {version}"),
        &engine.actor,
        false,
    )
    .await?;
    tracing::debug!("rollback: environment locked");
    let dep = insert_deployment(
        engine,
        &target,
        &version,
        "rollback",
        Some(current.id),
        None,
    )
    .await?;
    tracing::debug!(deployment = dep.id, "rollback: deployment recorded");
    let _active = activate(engine, dep.id);
    let mut run = Run {
        eng: engine,
        progress,
        state: State::Queued,
        dep,
        target,
        release,
        digest,
        plans: warm,
        open_steps: Vec::new(),
        reports: engine.control.reports(),
        lock,
        smoke: BTreeMap::new(),
        observation: BTreeMap::new(),
        commits: HashMap::new(),
    };
    run.say(format!(
        "{version} is warm on every host: switching the routers only"
    ));
    let result = match database_before_switch(&mut run).await {
        Ok(()) => warm_switch(&mut run).await,
        Err(stop) => Err(stop),
    };
    let outcome = match result {
        Ok(()) => DeployOutcome::Live {
            deployment: run.dep.id,
        },
        Err(Stop::Fail(reason)) => roll_back(&mut run, &reason).await?,
        Err(Stop::Error(e)) => return Err(*e),
    };
    tracing::debug!("rollback: finished");
    let Run { lock, .. } = run;
    lock.release().await?;
    tracing::debug!("rollback: environment unlocked");
    Ok(outcome)
}

pub(super) async fn warm_switch(run: &mut Run<'_>) -> Flow {
    let hosts = run.target.names();
    let plans = json!({ "hosts": run.plans, "warm": true });
    run.transition(
        State::Switching,
        "warm rollback: the release runs healthy on every host",
        &[("prepare", plans), ("switch", json!({ "hosts": hosts }))],
        None,
        false,
    )
    .await?;
    tracing::debug!("warm rollback: `switching` recorded");
    let (views, _) = switch_and_wait(run, &hosts, &to_new, &want_new, false).await?;
    // The proof's checks are those reported since the switch (the slot's older evidence was
    // proven by the deployment that started it).
    for p in &mut run.plans {
        if let Some(v) = views.get(&p.host) {
            p.prepared_generation = Some(v.generation);
        }
    }
    run.say(format!("every router serves {} again", run.release.version));
    run.transition(
        State::Observing,
        "every router serves the release again",
        &[],
        None,
        false,
    )
    .await?;
    tracing::debug!("warm rollback: `observing` recorded");
    for (h, v) in &views {
        let c = run
            .plan(h)
            .map(|p| counters(v, p.new_slot))
            .unwrap_or_default();
        run.observation.insert(
            h.clone(),
            json!({ "from": v.at, "to": v.at, "requests": c.requests, "errors_5xx": c.errors_5xx() }),
        );
    }
    prove(run, &hosts).await?;
    tracing::debug!("warm rollback: proofs recorded");
    go_live(run, false).await
}

pub(crate) async fn resume_all(
    engine: &Engine,
    progress: &dyn Fn(Progress),
) -> Result<Vec<DeployOutcome>, DeployError> {
    let mut unfinished = engine
        .store
        .list_deployments(&DeploymentFilter {
            environment: None,
            unfinished_only: true,
            limit: None,
        })
        .await?;
    unfinished.reverse();
    let mut outcomes = Vec::new();
    for dep in unfinished {
        let busy = engine
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&dep.id);
        if busy {
            continue;
        }
        let lock = match EnvLock::acquire(
            engine.store.clone(),
            &dep.environment,
            &holder(&format!("resume {}", dep.id)),
            &format!("resume deployment {}", dep.id),
            &engine.actor,
            false,
        )
        .await
        {
            Ok(l) => l,
            // A live process drives it.
            Err(DeployError::Lock(_)) => continue,
            Err(e) => return Err(e),
        };
        // Read again under the lock: its previous driver may have finished it meanwhile.
        let Some(dep) = engine.store.get_deployment(dep.id).await? else {
            continue;
        };
        if dep.finished_at.is_some() {
            lock.release().await?;
            continue;
        }
        let Some(_active) = activate(engine, dep.id) else {
            continue;
        };
        outcomes.push(resume_one(engine, dep, lock, progress).await?);
    }
    Ok(outcomes)
}

pub(super) async fn resume_one(
    engine: &Engine,
    dep: Deployment,
    lock: EnvLock,
    progress: &dyn Fn(Progress),
) -> Result<DeployOutcome, DeployError> {
    let state = State::parse(&dep.state).ok_or_else(|| DeployError::Interrupted {
        id: dep.id,
        reason: format!("unknown state `{}`", dep.state),
    })?;
    let target = Target::resolve(engine, &dep.environment)?;
    let (release, digest) = release_with_artifact(engine, &dep.release_version).await?;
    let mut run = Run {
        eng: engine,
        progress,
        state,
        dep,
        target,
        release,
        digest,
        plans: Vec::new(),
        open_steps: Vec::new(),
        reports: engine.control.reports(),
        lock,
        smoke: BTreeMap::new(),
        observation: BTreeMap::new(),
        commits: HashMap::new(),
    };
    // Steps left without a result get one at the next transition.
    run.open_steps = engine
        .store
        .list_deployment_steps(run.dep.id)
        .await?
        .into_iter()
        .filter(|s| s.result.is_none())
        .map(|s| (s.id, s.step))
        .collect();
    run.say(format!("resuming deployment {} from `{state}`", run.dep.id));
    if state.is_forward() {
        // A rollback goes forward to where it was going: whatever the strategy, its recorded
        // plan covers every host, and blue-green's steps finish it from any state.
        if run.dep.trigger == "rollback" && state != State::Queued {
            let plans = recorded_plans(engine, run.dep.id).await?;
            let names = run.target.names();
            if !plans.is_empty() && names.iter().all(|h| plans.iter().any(|p| &p.host == h)) {
                return drive_as(run, Strategy::BlueGreen).await;
            }
        }
        return drive(run).await;
    }
    run.plans = recorded_plans(engine, run.dep.id).await?;
    let outcome = roll_back(&mut run, "interrupted; rolled back on resume").await?;
    let Run { lock, .. } = run;
    lock.release().await?;
    Ok(outcome)
}
