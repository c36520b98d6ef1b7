//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`): load the
//! board, find the deployed versions, follow a release to its deployment, see a transition arrive
//! over server-sent events without a reload, and save screenshots.
//!
//! Without Chromium the test fails (`.ci/run` installs it); it never skips.

use std::path::PathBuf;

use crate::common;
use crate::webdriver::Driver;

fn which(names: &[&str], env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let chromium = which(
        &["chromium", "chromium-browser", "google-chrome"],
        "CUTOVER_CHROMIUM",
    );
    let chromedriver = which(&["chromedriver"], "CUTOVER_CHROMEDRIVER");
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        panic!(
            "chromium and chromedriver are needed (apt-get install -y chromium chromium-driver)"
        );
    };
    let seeded = common::seed().await;
    let mut state = seeded.state();
    state.event_poll = std::time::Duration::from_millis(200);
    let base = common::serve(state).await;
    let profile = seeded.dir.path().join("chromium-profile");
    let driver = Driver::start(&chromium, &chromedriver, &profile).await;

    // The board: staging runs 1.0.0, and the in-flight 1.1.0 sits in the green slot of `local`.
    driver.goto(&format!("{base}/")).await;
    let current = driver
        .wait_for("#env-staging + dl .version a", |t| t == "1.0.0")
        .await;
    assert!(!current.is_empty());
    let board = driver
        .execute("return document.querySelector('section[aria-labelledby=\"env-staging\"] table').innerText")
        .await;
    let board = board.as_str().unwrap();
    assert!(board.contains("local"), "{board}");
    assert!(board.contains("1.1.0"), "{board}");
    assert!(board.contains("healthy"), "{board}");

    // Follow the version in the green slot to its release page.
    let link = driver
        .find("section[aria-labelledby=\"env-staging\"] tbody tr:nth-child(2) a[href=\"/releases/1.1.0\"]")
        .await
        .expect("the green slot links its release");
    driver.click(&link).await;
    driver.wait_for("h1", |t| t.contains("Release 1.1.0")).await;
    assert_eq!(driver.url().await, format!("{base}/releases/1.1.0"));
    let shots = seeded.dir.path().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // The release's deployment, still observing.
    let dep = driver
        .find(&format!("#dep-{} a", seeded.in_flight))
        .await
        .expect("the release lists its deployment");
    driver.click(&dep).await;
    driver
        .wait_for("h1", |t| {
            t.starts_with(&format!("Deployment #{}", seeded.in_flight))
        })
        .await;
    driver
        .wait_for("[data-deployment-state]", |t| t == "observing")
        .await;
    // The script connected to /events.
    driver
        .wait_for("#live-status", |t| t.starts_with("Live"))
        .await;

    // The deploy engine finishes the deployment: the page shows it without a reload.
    common::transition(
        &*seeded.store,
        seeded.in_flight,
        "staging",
        "1.1.0",
        "observing",
        "live",
        chrono::Utc::now(),
    )
    .await;
    driver
        .wait_for("[data-deployment-state]", |t| t == "live")
        .await;
    let row = driver
        .wait_for("tbody tr.fresh", |t| {
            t.contains("deployment.transition") && t.contains("to=live")
        })
        .await;
    assert!(!row.is_empty());
    let status = driver
        .wait_for("#live-status", |t| t.contains("arrived"))
        .await;
    assert!(!status.is_empty());
    driver
        .execute("document.getElementById('events-h').scrollIntoView()")
        .await;
    std::fs::write(shots.join("deployment.png"), driver.screenshot().await).unwrap();

    // Back on the board (a new page load), staging's release is now 1.1.0.
    driver.goto(&format!("{base}/")).await;
    driver
        .wait_for("#env-staging + dl .version a", |t| t == "1.1.0")
        .await;
    let png = driver.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    std::fs::write(shots.join("board.png"), &png).unwrap();

    // The release page with its bill of materials and findings, the note shown as text.
    driver.goto(&format!("{base}/releases/1.0.0")).await;
    driver
        .wait_for(".notes", |t| t.contains("<script>alert('owned')</script>"))
        .await;
    std::fs::write(shots.join("release.png"), driver.screenshot().await).unwrap();
    // The DORA charts.
    driver
        .goto(&format!("{base}/metrics/dora?since=2026-11-01"))
        .await;
    driver
        .wait_for("#lead_time-h", |t| t == "Lead time for changes")
        .await;
    std::fs::write(shots.join("dora.png"), driver.screenshot().await).unwrap();
    // To look at them: CUTOVER_WEB_SCREENSHOTS=<dir> keeps a copy.
    if let Some(keep) = std::env::var_os("CUTOVER_WEB_SCREENSHOTS") {
        for name in ["board.png", "deployment.png", "release.png", "dora.png"] {
            std::fs::copy(shots.join(name), PathBuf::from(&keep).join(name)).unwrap();
        }
    }
    driver.quit().await;
}
