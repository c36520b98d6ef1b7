//! Every page rendered over the seeded store: status, the facts each page must show, escaping,
//! and snapshots of the `<main>` element (times, which depend on when the test ran, filtered).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::common::{self, EVIL_NOTE};

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The `<main>` element, with blank lines dropped.
fn main_of(html: &str) -> String {
    let start = html.find("<main").expect("every page has a main landmark");
    let end = html.find("</main>").expect("main is closed") + "</main>".len();
    html[start..end]
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! snapshot {
    ($name:expr, $html:expr) => {
        insta::with_settings!({filters => vec![
            // Times written by the store at test time (audit events, jobs, last seen).
            (r#"<time datetime="[^"]+">[^<]+</time>"#, "<time>[time]</time>"),
            (r"\b20\d\d-\d\d-\d\dT[0-9:.]+Z\b", "[time]"),
            // The inline icons are the same few shapes everywhere.
            (r#"<svg aria-hidden="true"[^>]*>.*?</svg>"#, "[icon]"),
        ]}, {
            insta::assert_snapshot!($name, main_of(&$html));
        });
    };
}

fn assert_page(html: &str) {
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("<a class=\"skip\" href=\"#main\">Skip to content</a>"));
    assert!(html.contains("<nav aria-label=\"Main\">"));
    assert!(html.contains("<main id=\"main\""));
    // No resource from elsewhere: every src/href is local.
    for attr in ["src=\"http", "href=\"http", "//cdn"] {
        assert!(!html.contains(attr), "a page refers to {attr}");
    }
}

#[tokio::test]
async fn board_shows_what_runs_where() {
    let seeded = common::seed().await;
    let app = cutover_web::routes(seeded.state());
    let (status, content_type, html) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert_page(&html);
    assert!(html.contains(r#"<h2 id="env-staging">staging</h2>"#));
    assert!(html.contains(r#"<span class="version"><a href="/releases/1.0.0">1.0.0</a></span>"#));
    assert!(html.contains(&format!("href=\"/deployments/{}\"", seeded.in_flight)));
    assert!(html.contains("connected"));
    snapshot!("board", html);
}

#[tokio::test]
async fn release_page_shows_everything_and_escapes_notes() {
    let seeded = common::seed().await;
    let app = cutover_web::routes(seeded.state());
    let (status, _, html) = get(&app, "/releases/1.0.0").await;
    assert_eq!(status, StatusCode::OK);
    assert_page(&html);
    // The note is text, never markup.
    assert!(
        !html.contains("<script>alert"),
        "the release note was not escaped"
    );
    assert!(
        html.contains("Fixes the login &lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt; &amp; the &quot;quotes&quot;"),
        "{EVIL_NOTE} is not shown as text"
    );
    assert!(html.contains("add the &lt;b&gt;greeting&lt;/b&gt; endpoint"));
    assert!(html.contains("MIT OR Apache-2.0"));
    assert!(html.contains("(no license declared)"));
    assert!(html.contains("RUSTSEC-2026-0009"));
    assert!(html.contains("Stack overflow in &lt;format&gt; parsing"));
    assert!(html.contains("SHA256:key1"));
    assert!(html.contains(&format!("Deployment #{} to staging", seeded.staging_live)));
    assert!(html.contains(&format!(
        "Deployment #{} to production",
        seeded.production_live
    )));
    snapshot!("release", html);

    let (status, _, html) = get(&app, "/releases").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.find("1.1.0").unwrap() < html.find("1.0.0").unwrap(),
        "newest first"
    );
    snapshot!("releases", html);

    let (status, _, html) = get(&app, "/releases/9.9.9").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("the release 9.9.9 was not found"));
}

#[tokio::test]
async fn deployment_pages_show_steps_proofs_and_timeline() {
    let seeded = common::seed().await;
    let app = cutover_web::routes(seeded.state());
    let (status, _, html) = get(&app, "/deployments").await;
    assert_eq!(status, StatusCode::OK);
    assert_page(&html);
    assert!(html.contains("data-live"));
    snapshot!("deployments", html);

    let (_, _, html) = get(&app, "/deployments?env=production").await;
    assert!(html.contains(&format!(">#{}</a>", seeded.production_live)));
    assert!(!html.contains(&format!(">#{}</a>", seeded.in_flight)));

    let (status, _, html) = get(&app, &format!("/deployments/{}", seeded.staging_live)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("&quot;checks&quot;"));
    assert!(html.contains("https://cutover.dev/delivery/v1"));
    assert!(html.contains(&format!(
        "data-subject=\"deployment:{}\"",
        seeded.staging_live
    )));
    assert_eq!(html.matches("deployment.transition").count(), 5);
    snapshot!("deployment", html);

    let (status, _, _) = get(&app, "/deployments/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&app, "/deployments/not-a-number").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn audit_explorer_filters_pages_and_answers_what_ran_when() {
    let seeded = common::seed().await;
    let app = cutover_web::routes(seeded.state());
    let (status, _, html) = get(&app, "/audit").await;
    assert_eq!(status, StatusCode::OK);
    assert_page(&html);
    let all = html.matches("<tr data-seq=").count();
    assert!(all > 20, "{all} events shown");

    let (_, _, html) = get(&app, "/audit?action=proof.record").await;
    assert_eq!(html.matches("<tr data-seq=").count(), 1);

    // Paging: two at a time from the newest, then older ones, without repeats or gaps.
    let mut seen = Vec::new();
    let mut uri = "/audit?limit=7".to_owned();
    loop {
        let (status, _, html) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::OK);
        for part in html.split("<tr data-seq=\"").skip(1) {
            seen.push(part[..part.find('"').unwrap()].parse::<i64>().unwrap());
        }
        match html.find("rel=\"next\" href=\"") {
            Some(i) => {
                let rest = &html[i + "rel=\"next\" href=\"".len()..];
                uri = rest[..rest.find('"').unwrap()]
                    .replace("&amp;", "&")
                    .replace('+', "%2B");
            }
            None => break,
        }
    }
    let expected: Vec<i64> = (1..=i64::try_from(all).unwrap()).rev().collect();
    assert_eq!(seen, expected);

    // What ran at a time: after the switch (now), and before anything was deployed.
    let (status, _, html) = get(&app, "/audit?env=staging&at=now").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<th scope=\"row\" rowspan=\"1\">local</th>"));
    assert!(html.contains(&format!(
        "by <a href=\"/deployments/{0}\">#{0}</a>",
        seeded.staging_live
    )));
    let (_, _, html) = get(&app, "/audit?env=staging&at=2020-01-01").await;
    assert!(html.contains("Nothing had been deployed to staging by then."));

    let (status, _, html) = get(&app, "/audit?env=staging&at=yesterday-ish").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("`yesterday-ish` is not a time"));
    let (status, _, _) = get(&app, "/audit?env=nowhere&at=now").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn queue_page() {
    let seeded = common::seed().await;
    let app = cutover_web::routes(seeded.state());
    let (status, _, html) = get(&app, "/queue").await;
    assert_eq!(status, StatusCode::OK);
    assert_page(&html);
    snapshot!("queue", html);
    let (_, _, html) = get(&app, "/queue?state=succeeded").await;
    assert_eq!(html.matches("<tr><th scope=\"row\">#").count(), 1);
    let (status, _, _) = get(&app, "/queue?state=sleeping").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The DORA page draws the metrics crate's report of the production environment: the seeded
/// production deployment of 1.0.0 delivered its two commits.
#[tokio::test]
async fn dora_page_draws_the_four_metrics() {
    let seeded = common::seed().await;
    let app = cutover_web::routes(seeded.state());
    let (status, _, html) = get(&app, "/metrics/dora?since=2026-11-01").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_page(&html);
    assert!(html.contains("<h1>DORA metrics of production</h1>"));
    for title in [
        "Deployment frequency",
        "Lead time for changes",
        "Change failure rate",
        "Failed deployment recovery time",
    ] {
        assert!(html.contains(&format!("{title}</h2>")), "{title}");
    }
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(html.contains("over 2 commits"), "the two commits of 1.0.0");
    assert!(html.contains(&format!(
        "<a href=\"/deployments/{0}\">#{0}</a>",
        seeded.production_live
    )));

    let (status, _, html) = get(
        &app,
        "/metrics/dora?env=staging&granularity=daily&since=2026-11-01",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>DORA metrics of staging</h1>"));
    // The default period: the last 90 days.
    let (status, _, html) = get(&app, "/metrics/dora").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("value=\"90d\""));
    for bad in ["env=nowhere", "since=someday", "granularity=hourly"] {
        let (status, _, _) = get(&app, &format!("/metrics/dora?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// Mounted under a prefix (as the server may do), every link and asset URL carries it.
#[tokio::test]
async fn links_carry_the_mount_path() {
    let seeded = common::seed().await;
    let mut state = seeded.state();
    state.base_path = "/ui".into();
    let app = axum::Router::new().nest("/ui", cutover_web::routes(state));
    let (status, _, html) = get(&app, "/ui/releases").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("href=\"/ui/releases/1.0.0\""));
    assert!(html.contains("src=\"/ui/assets/app.js\""));
    assert!(html.contains("data-base=\"/ui\""));
    for href in html.split("href=\"").skip(1) {
        let target = &href[..href.find('"').unwrap()];
        assert!(
            target == "/ui" || target.starts_with("/ui/") || target.starts_with('#'),
            "{target}"
        );
    }
    // The board's link is the mount path itself, and it serves the board.
    assert!(html.contains("<a class=\"brand\" href=\"/ui\">"));
    let (status, _, html) = get(&app, "/ui").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Environments of hello"));
    let (status, _, _) = get(&app, "/ui/assets/style.css").await;
    assert_eq!(status, StatusCode::OK);
}

/// Pages only load this origin's scripts, styles and images.
#[tokio::test]
async fn pages_carry_a_content_security_policy() {
    let seeded = common::seed().await;
    let app = cutover_web::routes(seeded.state());
    for uri in ["/", "/releases/1.0.0", "/assets/app.js", "/nowhere"] {
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{uri}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{uri}: {csp}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn assets_are_embedded() {
    let seeded = common::seed().await;
    let app = cutover_web::routes(seeded.state());
    for (path, ty) in [
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let (status, content_type, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(content_type, ty);
        assert!(!body.is_empty());
    }
    let (status, _, _) = get(&app, "/assets/../Cargo.toml").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `/events` streams the audit events after `after` (and resumes from `Last-Event-ID`), then
/// pushes new ones as they are written.
#[tokio::test]
async fn events_stream_new_audit_events() {
    let seeded = common::seed().await;
    let mut state = seeded.state();
    state.event_poll = std::time::Duration::from_millis(100);
    let base = common::serve(state).await;
    let newest = seeded
        .store
        .list_audit(&cutover_store::AuditFilter {
            descending: true,
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .seq;
    let subject = format!("deployment:{}", seeded.in_flight);

    let stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let request = Request::get(format!("/events?after={newest}&subject={subject}"))
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();

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
    let mut text = String::new();
    while !text.contains("\n\n") || !text.contains("event: audit") {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(20), body.frame())
            .await
            .expect("an event arrives")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    assert!(text.contains(&format!("id: {}", newest + 1)), "{text}");
    assert!(
        text.contains("\"action\":\"deployment.transition\""),
        "{text}"
    );
    assert!(text.contains("\"to\":\"live\""), "{text}");
}
