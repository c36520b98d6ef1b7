//! The recorded steps every strategy is made of: prepare, wait for slots, smoke, switch,
//! observe, prove, go live.

use super::*;

pub(super) fn rank(s: State) -> u8 {
    match s {
        State::Queued => 0,
        State::Preparing => 1,
        State::Verifying => 2,
        State::Switching => 3,
        State::Observing => 4,
        _ => 5,
    }
}

pub(super) fn default_thresholds(run: &Run<'_>) -> Thresholds {
    let c = match &run.target.env.strategy {
        Strategy::Canary(c) => c.clone(),
        _ => cutover_config::Canary::default(),
    };
    Thresholds {
        max_error_rate: c.max_error_rate,
        max_latency_ratio: c.max_latency_ratio,
        min_requests: c.min_requests,
    }
}

/// Computes the per-host plans from the hosts' current assignments.
pub(super) async fn make_plans(run: &Run<'_>) -> Result<Vec<HostPlan>, DeployError> {
    let new = run.new_release();
    let mut plans = Vec::new();
    for host in run.target.names() {
        let (_, a) = run.assignment(&host).await?;
        plans.push(HostPlan::new(
            &host,
            a.services.get(&run.target.service_name),
            &new,
        ));
    }
    Ok(plans)
}

pub(super) fn plans_json(plans: &[HostPlan]) -> Value {
    json!({ "hosts": plans })
}

/// Reads the plans a resumed deployment recorded in its `prepare` step(s).
pub(super) async fn recorded_plans(eng: &Engine, id: i64) -> Result<Vec<HostPlan>, DeployError> {
    let mut plans: Vec<HostPlan> = Vec::new();
    for step in eng.store.list_deployment_steps(id).await? {
        if step.step != "prepare" {
            continue;
        }
        if let Some(hosts) = step.intent.get("hosts") {
            let ps: Vec<HostPlan> = serde_json::from_value(hosts.clone()).unwrap_or_default();
            for p in ps {
                match plans.iter_mut().find(|q| q.host == p.host) {
                    Some(q) => *q = p,
                    None => plans.push(p),
                }
            }
        }
    }
    Ok(plans)
}

/// Writes the `prepare` intent with the new slot's assignment on `hosts` (the transition to
/// `preparing`), filling the plans' prepared generations.
pub(super) async fn prepare(
    run: &mut Run<'_>,
    hosts: &[String],
    extra_steps: &[(&str, Value)],
) -> Flow {
    let new = run.new_release();
    for p in run.plans.iter_mut().filter(|p| hosts.contains(&p.host)) {
        let (g, _) = current_assignment(run.eng, &p.host).await?;
        p.prepared_generation = Some(g + 1);
    }
    let batch: Vec<HostPlan> = run
        .plans
        .iter()
        .filter(|p| hosts.contains(&p.host))
        .cloned()
        .collect();
    let mut steps = vec![("prepare", plans_json(&batch))];
    steps.extend(extra_steps.iter().cloned());
    let edit = move |p: &HostPlan, svc: &mut DesiredService| {
        svc.slots.insert(p.new_slot, new.clone());
    };
    let gens = run
        .transition(
            State::Preparing,
            &format!("preparing slot(s) on {}", hosts.join(", ")),
            &steps,
            Some((hosts, &edit)),
            false,
        )
        .await?;
    // The generations actually written (another writer may have bumped them).
    for (h, g) in gens {
        if let Some(p) = run.plans.iter_mut().find(|p| p.host == h) {
            p.prepared_generation = Some(g);
        }
    }
    run.say(format!(
        "preparing {} on {}",
        run.release.version,
        hosts
            .iter()
            .map(|h| format!(
                "{h} (slot {})",
                run.plan(h).map_or("?", |p| p.new_slot.as_str())
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

pub(super) fn min_gens(run: &Run<'_>, hosts: &[String]) -> Vec<(String, i64)> {
    hosts
        .iter()
        .map(|h| {
            (
                h.clone(),
                run.plan(h).and_then(|p| p.prepared_generation).unwrap_or(0),
            )
        })
        .collect()
}

/// Waits until the new slot runs the release (`present`) or is healthy on `hosts`. With
/// `tolerate_timeout`, hosts that do not report in time are returned as unavailable instead.
pub(super) async fn wait_slots(
    run: &mut Run<'_>,
    hosts: &[String],
    healthy: bool,
    tolerate_timeout: bool,
) -> Flow<(BTreeMap<String, HostView>, Vec<String>)> {
    let version = run.release.version.clone();
    let slots: BTreeMap<String, Slot> = run
        .plans
        .iter()
        .map(|p| (p.host.clone(), p.new_slot))
        .collect();
    let cond = move |host: &str, v: &HostView| {
        let slot = slots.get(host).copied().unwrap_or(Slot::Blue);
        if healthy {
            slot_healthy(v, slot, &version)
        } else {
            slot_present(v, slot, &version)
        }
    };
    let gens = min_gens(run, hosts);
    let timeout = start_timeout(&run.target.service);
    let what = if healthy {
        "verifying health and version"
    } else {
        "starting the new slot"
    };
    match wait_hosts(
        &*run.eng.store,
        &mut run.reports,
        &run.target.service_name,
        &gens,
        timeout,
        &cond,
    )
    .await
    {
        Ok(views) => Ok((views, Vec::new())),
        Err(WaitError::Timeout { hosts: late }) if tolerate_timeout => {
            let late_names: Vec<String> = late.iter().map(|(h, _)| h.clone()).collect();
            for (h, r) in &late {
                run.say(format!("host {h} is unavailable: {r}"));
            }
            // The others got there: read them again.
            let ready: Vec<(String, i64)> = gens
                .into_iter()
                .filter(|(h, _)| !late_names.contains(h))
                .collect();
            let views = wait_hosts(
                &*run.eng.store,
                &mut run.reports,
                &run.target.service_name,
                &ready,
                Duration::ZERO,
                &cond,
            )
            .await
            .map_err(|e| wait_failure(e, what))?;
            Ok((views, late_names))
        }
        Err(e) => Err(wait_failure(e, what)),
    }
}

/// Runs the smoke commands against the new slot of every host in `hosts`.
pub(super) async fn smoke(run: &mut Run<'_>, hosts: &[String]) -> Flow {
    if run.target.service.smoke.is_empty() {
        return Ok(());
    }
    for host in hosts {
        let Some(plan) = run.plan(host).cloned() else {
            continue;
        };
        let port = run
            .target
            .addresses(host)
            .and_then(|a| a.ports.get(&plan.new_slot).copied())
            .unwrap_or(0);
        run.say(format!("smoke tests on {host} (port {port})"));
        let results = crate::smoke::run(
            &run.target.service.smoke,
            port,
            &run.release.version,
            plan.new_slot.as_str(),
            crate::smoke::SMOKE_TIMEOUT,
        )
        .await;
        run.smoke
            .insert(host.clone(), results.iter().map(|r| r.to_json()).collect());
        if let Some(bad) = results.iter().find(|r| !r.ok) {
            return Err(Stop::Fail(format!(
                "smoke command {:?} failed on host {host}: {}",
                bad.argv, bad.detail
            )));
        }
    }
    Ok(())
}

/// Switches the routers of `hosts` with `edit` and waits for the reports showing it.
pub(super) async fn switch_and_wait(
    run: &mut Run<'_>,
    hosts: &[String],
    edit: &(dyn Fn(&HostPlan, &mut DesiredService) + Sync),
    want: &(dyn Fn(&HostPlan) -> WantRouting + Sync),
    tolerate_timeout: bool,
) -> Flow<(BTreeMap<String, HostView>, Vec<String>)> {
    let gens = run.switch(hosts, edit).await?;
    tracing::debug!(hosts = hosts.len(), "routers: assignments written");
    let wants: BTreeMap<String, WantRouting> = run
        .plans
        .iter()
        .map(|p| (p.host.clone(), want(p)))
        .collect();
    let cond = move |host: &str, v: &HostView| {
        let (active, canary) = wants.get(host).copied().unwrap_or((None, None));
        routed(v, active, canary)
    };
    let timeout = start_timeout(&run.target.service);
    match wait_hosts(
        &*run.eng.store,
        &mut run.reports,
        &run.target.service_name,
        &gens,
        timeout,
        &cond,
    )
    .await
    {
        Ok(v) => {
            tracing::debug!("routers: every host reported the switch");
            Ok((v, Vec::new()))
        }
        Err(WaitError::Timeout { hosts: late }) if tolerate_timeout => {
            let names: Vec<String> = late.iter().map(|(h, _)| h.clone()).collect();
            let ready: Vec<(String, i64)> = gens
                .into_iter()
                .filter(|(h, _)| !names.contains(h))
                .collect();
            let views = wait_hosts(
                &*run.eng.store,
                &mut run.reports,
                &run.target.service_name,
                &ready,
                Duration::ZERO,
                &cond,
            )
            .await
            .map_err(|e| wait_failure(e, "switching the routers"))?;
            Ok((views, names))
        }
        Err(e) => Err(wait_failure(e, "switching the routers")),
    }
}

pub(super) fn to_new(p: &HostPlan, svc: &mut DesiredService) {
    svc.routing.active = Some(p.new_slot);
    svc.routing.canary = None;
}

pub(super) fn want_new(p: &HostPlan) -> (Option<Slot>, Option<RouterCanary>) {
    (Some(p.new_slot), None)
}

/// A slot's state during observation: a failure is final.
pub(super) fn observe_check(view: &HostView, slot: Slot, version: &str) -> Option<String> {
    let Some(svc) = &view.service else {
        return Some("the service no longer runs".into());
    };
    let Some(s) = svc.slots.get(&slot) else {
        return Some(format!("slot {slot} no longer runs"));
    };
    if s.version != version {
        return Some(format!(
            "slot {slot} runs {} instead of {version}",
            s.version
        ));
    }
    match (&s.process, &s.health) {
        (ProcessState::Failed { reason }, _) => Some(format!("slot {slot} failed: {reason}")),
        (_, Health::Unhealthy) => Some(format!("slot {slot} became unhealthy")),
        (_, Health::WrongVersion { reported }) => Some(format!(
            "slot {slot} reports version {reported:?}, expected {version:?}"
        )),
        _ => None,
    }
}

/// Watches `hosts` for `duration`: the new slot must stay healthy and the traffic it serves
/// (router counters since `baseline`) within the thresholds. `stable` compares against the old
/// slot (canary analysis). Returns the windows of the new and the stable slot at the end.
pub(super) async fn watch_window(
    run: &mut Run<'_>,
    hosts: &[String],
    duration: Duration,
    t: &Thresholds,
    baseline: &BTreeMap<String, HostView>,
    what: &str,
) -> Flow<(Window, Window, BTreeMap<String, HostView>)> {
    let started = Utc::now();
    let end = tokio::time::Instant::now() + duration;
    let version = run.release.version.clone();
    loop {
        run.reports.borrow_and_update();
        let mut canary = Window::default();
        let mut stable = Window::default();
        let mut views = BTreeMap::new();
        for host in hosts {
            let Some(plan) = run.plan(host).cloned() else {
                continue;
            };
            let Some(o) = run
                .eng
                .store
                .latest_observation(host)
                .await
                .map_err(DeployError::from)?
            else {
                continue;
            };
            let view = HostView::of(&o, &run.target.service_name);
            if let Some(problem) = observe_check(&view, plan.new_slot, &version) {
                return Err(Stop::Fail(format!("{what} on host {host}: {problem}")));
            }
            let base = baseline.get(host);
            let before = |slot: Slot| base.map(|b| counters(b, slot)).unwrap_or_default();
            let w = window(&before(plan.new_slot), &counters(&view, plan.new_slot));
            canary = canary.merge(w);
            if let Some(old) = plan.old_slot {
                stable = stable.merge(window(&before(old), &counters(&view, old)));
            }
            views.insert(host.clone(), view);
        }
        if let Verdict::Fail { reason } = analyze(&canary, &stable, t) {
            return Err(Stop::Fail(format!("{what}: {reason}")));
        }
        let now = tokio::time::Instant::now();
        if now >= end {
            for host in hosts {
                let w = views
                    .get(host)
                    .zip(run.plan(host))
                    .map(|(v, p)| {
                        let b = baseline
                            .get(host)
                            .map(|b| counters(b, p.new_slot))
                            .unwrap_or_default();
                        window(&b, &counters(v, p.new_slot))
                    })
                    .unwrap_or_default();
                run.observation.insert(
                    host.clone(),
                    json!({ "from": started, "to": Utc::now(), "requests": w.requests, "errors_5xx": w.errors_5xx }),
                );
            }
            return Ok((canary, stable, views));
        }
        let wait = crate::observe::RECHECK.min(end - now);
        let _ = tokio::time::timeout(wait, run.reports.changed()).await;
    }
}

/// Latest views of `hosts` (the baseline of a window).
pub(super) async fn latest_views(
    run: &Run<'_>,
    hosts: &[String],
) -> Flow<BTreeMap<String, HostView>> {
    let mut out = BTreeMap::new();
    for h in hosts {
        if let Some(o) = run
            .eng
            .store
            .latest_observation(h)
            .await
            .map_err(DeployError::from)?
        {
            out.insert(h.clone(), HostView::of(&o, &run.target.service_name));
        }
    }
    Ok(out)
}

/// Signs and records the proof of delivery of every host in `hosts` that has none yet.
pub(super) async fn prove(run: &mut Run<'_>, hosts: &[String]) -> Flow {
    let existing: Vec<String> = run
        .eng
        .store
        .list_proofs(run.dep.id)
        .await
        .map_err(DeployError::from)?
        .into_iter()
        .map(|p| p.host)
        .collect();
    for host in hosts {
        if existing.contains(host) {
            continue;
        }
        let Some(plan) = run.plan(host).cloned() else {
            continue;
        };
        let store = &run.eng.store;
        let Some(latest) = store
            .latest_observation(host)
            .await
            .map_err(DeployError::from)?
        else {
            continue;
        };
        let view = HostView::of(&latest, &run.target.service_name);
        let from = plan.prepared_generation.unwrap_or(latest.generation);
        let mut checks = Vec::new();
        for g in from..=latest.generation {
            for o in store
                .list_observations(host, Some(g))
                .await
                .map_err(DeployError::from)?
            {
                if let Some(e) = evidence_of(&o, &run.target.service_name).remove(&plan.new_slot) {
                    checks.extend(e);
                }
            }
        }
        let smoke = run.smoke.get(host).cloned().unwrap_or_default();
        let observation = run.observation.get(host).cloned().unwrap_or(Value::Null);
        let pred = predicate(
            &HostEvidence {
                environment: &run.target.environment,
                host,
                deployment: run.dep.id,
                version: &run.release.version,
                commit: &run.release.commit,
                artifact_sha256: &run.digest,
                slot: plan.new_slot,
                view: &view,
                checks: &checks,
                smoke: &smoke,
                observation,
            },
            Utc::now(),
        );
        let name = format!(
            "{}-{}.tar.zst",
            run.target.service_name, run.release.version
        );
        let statement = run.eng.signer.statement(&name, &run.digest, pred);
        let envelope = run.eng.signer.sign(&statement);
        let now = Utc::now();
        let applied = store
            .apply(
                &[
                    Change::InsertDeploymentStep(NewDeploymentStep {
                        deployment_id: run.dep.id,
                        step: "proof".into(),
                        intent: json!({ "host": host, "slot": plan.new_slot.as_str() }),
                        at: now,
                    }),
                    Change::InsertProof(NewProof {
                        deployment_id: run.dep.id,
                        host: host.clone(),
                        statement,
                        envelope,
                        created_at: now,
                    }),
                ],
                &Audit::new(
                    &run.eng.actor,
                    "proof.record",
                    format!("deployment:{}", run.dep.id),
                    json!({
                        "environment": run.target.environment,
                        "host": host,
                        "version": run.release.version,
                        "artifact_sha256": run.digest,
                        "keyid": run.eng.signer.keyid(),
                    }),
                ),
            )
            .await
            .map_err(DeployError::from)?;
        // Its result is written with the transition to live.
        if let Some(id) = applied.id(0) {
            run.open_steps.push((id, "proof".to_owned()));
        }
        run.say(format!("proof of delivery recorded for {host}"));
    }
    Ok(())
}

/// Observing → live; `recreate` stops the previous slot in the same transaction.
pub(super) async fn go_live(run: &mut Run<'_>, recreate: bool) -> Flow {
    let hosts = run.target.names();
    let drop_old = |p: &HostPlan, svc: &mut DesiredService| {
        if let (Some(old_slot), Some(old)) = (p.old_slot, &p.old)
            && old_slot != p.new_slot
            && svc.slots.get(&old_slot) == Some(old)
            && svc.routing.active == Some(p.new_slot)
        {
            svc.slots.remove(&old_slot);
        }
    };
    // The previous slot stays warm for `keep_warm` (an instant rollback); the agent stops it at
    // that deadline on its own. The serving slot has no deadline.
    let warm_until = Utc::now()
        + chrono::Duration::from_std(run.target.env.keep_warm.get())
            .unwrap_or(chrono::Duration::MAX);
    let keep_old_warm = |p: &HostPlan, svc: &mut DesiredService| {
        if let Some(new) = svc.slots.get_mut(&p.new_slot) {
            new.warm_until = None;
        }
        if let Some(old_slot) = p.old_slot
            && old_slot != p.new_slot
            && svc.routing.active == Some(p.new_slot)
            && let Some(old) = svc.slots.get_mut(&old_slot)
        {
            old.warm_until = Some(warm_until);
        }
    };
    let edit: Edit<'_> = if recreate { &drop_old } else { &keep_old_warm };
    run.transition(
        State::Live,
        "verified, observed and proven on every host",
        &[],
        Some((hosts.as_slice(), edit)),
        true,
    )
    .await?;
    if recreate {
        run.say("recreate: the previous release was stopped");
    }
    run.say(format!(
        "{} is live in {}",
        run.release.version, run.target.environment
    ));
    Ok(())
}

/// The application database before anything of the release starts (expand migrations after a
/// recovery point; a rollback's down migrations or restore): a failure stops the deployment
/// before traffic moves.
pub(super) async fn database_before_switch(run: &mut Run<'_>) -> Flow {
    match crate::appdb::before_switch(run).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(Stop::Fail(reason)),
        Err(e) => Err(e.into()),
    }
}

/// The application database once the release is live: contract migrations (or their deferral).
pub(super) async fn database_after_live(run: &mut Run<'_>) -> Result<(), DeployError> {
    crate::appdb::after_live(run).await
}
