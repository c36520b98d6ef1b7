//! The strategies: blue-green (and recreate, its variant that stops the previous release),
//! rolling batches, canary weight steps with analysis.

use super::*;

pub(super) async fn blue_green(run: &mut Run<'_>, recreate: bool) -> Flow {
    let start = run.state;
    let hosts = run.target.names();
    if start == State::Queued {
        run.plans = make_plans(run).await?;
        if recreate {
            run.say("recreate: the previous release stops once the new one serves; no slot is kept warm");
        }
        prepare(run, &hosts, &[]).await?;
    } else {
        run.plans = recorded_plans(run.eng, run.dep.id).await?;
    }
    if rank(start) <= rank(State::Preparing) {
        wait_slots(run, &hosts, false, false).await?;
        let smoke_intent = json!({ "commands": run.target.service.smoke.iter().map(|a| a.as_slice().to_vec()).collect::<Vec<_>>() });
        run.transition(
            State::Verifying,
            "the new slot runs on every host",
            &[
                ("verify", json!({ "hosts": hosts })),
                ("smoke", smoke_intent),
            ],
            None,
            false,
        )
        .await?;
    }
    if rank(start) <= rank(State::Verifying) {
        run.say("verifying health and version on every host");
        wait_slots(run, &hosts, true, false).await?;
        smoke(run, &hosts).await?;
        let intent = json!({ "hosts": run.plans.iter().map(|p| json!({"host": p.host, "active": p.new_slot.as_str()})).collect::<Vec<_>>() });
        run.transition(
            State::Switching,
            "healthy on every host",
            &[("switch", intent)],
            None,
            false,
        )
        .await?;
    }
    let mut baseline = BTreeMap::new();
    if rank(start) <= rank(State::Switching) {
        run.say("switching the routers");
        let (views, _) = switch_and_wait(run, &hosts, &to_new, &want_new, false).await?;
        baseline = views;
        let observe = run.target.env.observe.get();
        run.transition(
            State::Observing,
            "every router serves the new release",
            &[(
                "observe",
                json!({ "window_ms": observe.as_millis() as u64 }),
            )],
            None,
            false,
        )
        .await?;
    }
    if baseline.is_empty() {
        baseline = latest_views(run, &hosts).await?;
    }
    let observe = run.target.env.observe.get();
    run.say(format!("observing for {observe:?}"));
    let t = default_thresholds(run);
    watch_window(run, &hosts, observe, &t, &baseline, "observation").await?;
    prove(run, &hosts).await?;
    go_live(run, recreate).await
}

pub(super) async fn rolling(run: &mut Run<'_>, batch: BatchSize, max_unavailable: u32) -> Flow {
    if run.state != State::Queued {
        return Err(Stop::Fail(
            "a rolling deployment interrupted between batches is rolled back, not resumed".into(),
        ));
    }
    let all = run.target.names();
    run.plans = make_plans(run).await?;
    let batches = rolling_batches(all.len(), batch);
    let mut unavailable: Vec<String> = Vec::new();
    let mut delivered: Vec<String> = Vec::new();
    let t = default_thresholds(run);
    let observe = run.target.env.observe.get();
    for (i, range) in batches.iter().enumerate() {
        let hosts: Vec<String> = all[range.clone()].to_vec();
        let step = crate::RolloutStep::Batch {
            index: i,
            of: batches.len(),
        };
        run.say_step(
            Some(step),
            format!("batch {}/{}: {}", i + 1, batches.len(), hosts.join(", ")),
        );
        prepare(
            run,
            &hosts,
            &[(
                "batch",
                json!({ "index": i, "of": batches.len(), "hosts": hosts }),
            )],
        )
        .await?;
        let give_up = |late: Vec<String>, unavailable: &mut Vec<String>| -> Flow<()> {
            unavailable.extend(late);
            if may_continue(unavailable.len(), max_unavailable) {
                Ok(())
            } else {
                Err(Stop::Fail(format!(
                    "{} host(s) unavailable ({}), more than max_unavailable = {max_unavailable}",
                    unavailable.len(),
                    unavailable.join(", ")
                )))
            }
        };
        let (views, late) = wait_slots(run, &hosts, false, true).await?;
        give_up(late, &mut unavailable)?;
        let up: Vec<String> = views.into_keys().collect();
        run.transition(
            State::Verifying,
            "the new slot runs on the batch's hosts",
            &[("verify", json!({ "hosts": up }))],
            None,
            false,
        )
        .await?;
        let (views, late) = wait_slots(run, &up, true, true).await?;
        give_up(late, &mut unavailable)?;
        let up: Vec<String> = views.into_keys().collect();
        smoke(run, &up).await?;
        run.transition(
            State::Switching,
            "healthy on the batch's hosts",
            &[("switch", json!({ "hosts": up }))],
            None,
            false,
        )
        .await?;
        let (baseline, late) = switch_and_wait(run, &up, &to_new, &want_new, true).await?;
        give_up(late, &mut unavailable)?;
        let up: Vec<String> = baseline.keys().cloned().collect();
        run.transition(
            State::Observing,
            "the batch's routers serve the new release",
            &[(
                "observe",
                json!({ "hosts": up, "window_ms": observe.as_millis() as u64 }),
            )],
            None,
            false,
        )
        .await?;
        watch_window(run, &up, observe, &t, &baseline, "observation").await?;
        delivered.extend(up);
    }
    if delivered.is_empty() {
        return Err(Stop::Fail("no host could be deployed".into()));
    }
    if !unavailable.is_empty() {
        run.say(format!(
            "not delivered to the unavailable host(s): {}",
            unavailable.join(", ")
        ));
    }
    prove(run, &delivered).await?;
    go_live(run, false).await
}

pub(super) async fn canary(
    run: &mut Run<'_>,
    weights: &[u8],
    step: Duration,
    t: Thresholds,
) -> Flow {
    if run.state != State::Queued {
        return Err(Stop::Fail(
            "a canary deployment interrupted between steps is rolled back, not resumed".into(),
        ));
    }
    let hosts = run.target.names();
    run.plans = make_plans(run).await?;
    if run.plans.iter().all(|p| p.old.is_none()) {
        run.say("nothing serves yet: no stable release to compare with, switching like blue-green");
        return blue_green(run, false).await;
    }
    prepare(run, &hosts, &[]).await?;
    wait_slots(run, &hosts, false, false).await?;
    run.transition(
        State::Verifying,
        "the canary slot runs on every host",
        &[("verify", json!({ "hosts": hosts }))],
        None,
        false,
    )
    .await?;
    wait_slots(run, &hosts, true, false).await?;
    smoke(run, &hosts).await?;
    for (k, &w) in weights.iter().enumerate() {
        let last = w >= 100;
        let reason = if k == 0 {
            "healthy on every host".to_owned()
        } else {
            format!("canary step {k} passed")
        };
        run.transition(
            State::Switching,
            &reason,
            &[("canary_step", json!({ "index": k, "weight": w }))],
            None,
            false,
        )
        .await?;
        let at = crate::RolloutStep::Canary {
            index: k,
            of: weights.len(),
            weight: w,
        };
        run.say_step(Some(at), format!("canary at {w}%"));
        let edit = move |p: &HostPlan, svc: &mut DesiredService| match p.old_slot {
            Some(old) if !last && svc.slots.contains_key(&old) => {
                svc.routing.active = Some(old);
                svc.routing.canary = Some(RouterCanary {
                    slot: p.new_slot,
                    weight_percent: w,
                });
            }
            _ => to_new(p, svc),
        };
        let want = move |p: &HostPlan| match p.old_slot {
            Some(old) if !last => (
                Some(old),
                Some(RouterCanary {
                    slot: p.new_slot,
                    weight_percent: w,
                }),
            ),
            _ => (Some(p.new_slot), None),
        };
        let (baseline, _) = switch_and_wait(run, &hosts, &edit, &want, false).await?;
        let window_len = if last {
            run.target.env.observe.get()
        } else {
            step
        };
        run.transition(
            State::Observing,
            &format!("routers send {w}% to the new release"),
            &[(
                "observe",
                json!({ "weight": w, "window_ms": window_len.as_millis() as u64 }),
            )],
            None,
            false,
        )
        .await?;
        let (c, s, _) = watch_window(
            run,
            &hosts,
            window_len,
            &t,
            &baseline,
            &format!("canary at {w}%"),
        )
        .await?;
        if !last {
            let verdict = analyze(&c, &s, &t);
            run.say(format!("analysis at {w}%: {}", verdict.reason()));
            if let Verdict::Fail { reason } = verdict {
                return Err(Stop::Fail(reason));
            }
        }
    }
    prove(run, &hosts).await?;
    go_live(run, false).await
}
