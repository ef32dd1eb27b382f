//! The inbox page and its sign-in: the link, the cookie, the page's security headers, and the
//! API used with the cookie. The browser itself is in `browser.rs`.

use std::{process::Command, sync::Arc};

use maestro::{App, Settings};
use serde_json::Value;

use crate::{helpers::*, inbox_helpers::*};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src https:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn assert_page_headers(response: &reqwest::Response) {
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-security-policy"], CSP);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn a_sign_in_link_leaves_a_strict_http_only_cookie_that_opens_the_page() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    t.post_alert(&t.groundspan_token(), &post_seed()).await;

    let response = t
        .client
        .get(t.sign_in_link(SEED_USER, COMPANY).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_page_headers(&response);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(
        attributes,
        ["Path=/", "Max-Age=28800", "HttpOnly", "SameSite=Strict"],
        "not Secure on an http public URL"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains(r#"<meta http-equiv="refresh" content="0; url=/inbox">"#),
        "{body}"
    );
    assert!(
        !body.contains("token"),
        "the page does not repeat the link's token"
    );

    let session = cookie.split(';').next().unwrap();
    let page = t
        .client
        .get(t.url("/inbox"))
        .header("Cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_page_headers(&page);
    let html = page.text().await.unwrap();
    for expected in [
        r#"aria-label="1 unread alert""#,
        r#"<script src="/inbox/assets/inbox.js" defer></script>"#,
        "Groundspan: 3 travel offers for you",
        r#"<h3 class="package__title">SFO to CDG  Aug 1</h3>"#,
        r#"data-action="read""#,
        r#"data-action="dismiss""#,
        "<title>Inbox (1 unread) – maestro</title>",
    ] {
        assert!(html.contains(expected), "{expected} missing from\n{html}");
    }

    // The fragment the page reloads, with the badge's number beside it.
    let cards = t
        .client
        .get(t.url("/inbox/cards"))
        .header("Cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(cards.headers()["x-unread-count"], "1");
    assert!(
        cards
            .text()
            .await
            .unwrap()
            .starts_with("\n<ul class=\"alerts\"")
    );
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_public_url_is_https() {
    let t = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.public_url = "https://maestro.example".into();
    })
    .await;
    let link = maestro::inbox::login::sign_in_link(
        &t.app.store,
        &t.app.keyring,
        &t.app.settings.public_url,
        SEED_USER,
        COMPANY,
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let path = link.strip_prefix("https://maestro.example").unwrap();
    let response = t.client.get(t.url(path)).send().await.unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Strict; Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn without_a_session_the_page_asks_for_a_link_and_bad_links_do_not_sign_in() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let response = t.client.get(t.url("/inbox")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_page_headers(&response);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("maestro_inbox=; Path=/; Max-Age=0")
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("maestro inbox open-url")
    );

    // Only a sign-in link's token signs in; an API token is not one, nor is junk.
    for token in [t.seed_user_token(), "junk".to_owned(), String::new()] {
        let response = t
            .client
            .get(t.url(&format!("/inbox/login?token={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers().get("set-cookie").is_none());
    }
    // And a sign-in link's token opens nothing but the page.
    let link = t.sign_in_link(SEED_USER, COMPANY).await;
    let link_token = link.split("token=").nth(1).unwrap();
    expect_error(t.inbox(link_token, "").await, 403, "INSUFFICIENT_SCOPE").await;
    let cookie = format!("maestro_inbox={link_token}");
    let page = t
        .client
        .get(t.url("/inbox"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401);
}

#[tokio::test]
async fn the_api_takes_the_cookie_and_changes_need_the_page_header() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let response = t.post_alert(&t.groundspan_token(), &post_seed()).await;
    let id = response.json::<Value>().await.unwrap()["alertId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = t.sign_in(SEED_USER, COMPANY).await;

    let inbox: Value = t
        .client
        .get(t.url("/maestro/v4/inbox"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inbox["items"][0]["alertId"], id.as_str());

    let read = format!("/maestro/v4/inbox/{id}/read");
    let forged = t
        .client
        .post(t.url(&read))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    expect_error(forged, 401, "INVALID_TOKEN").await;
    let from_the_page = t
        .client
        .post(t.url(&read))
        .header("Cookie", &cookie)
        .header("X-Requested-With", "maestro-inbox")
        .send()
        .await
        .unwrap();
    assert_eq!(from_the_page.status(), 200);
    assert_eq!(
        from_the_page.json::<Value>().await.unwrap()["unreadCount"],
        0
    );
}

#[tokio::test]
async fn the_page_assets_are_served_with_their_types() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    for (path, content_type) in [
        ("/inbox/assets/inbox.js", "text/javascript; charset=utf-8"),
        ("/inbox/assets/inbox.css", "text/css; charset=utf-8"),
    ] {
        let response = t.client.get(t.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn maestro_inbox_open_url_prints_a_link_that_signs_in() {
    let dir = crate::real_binary::migrated_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args([
            "inbox",
            "open-url",
            "--user",
            SEED_USER,
            "--company",
            COMPANY,
            "--public-url",
            "http://inbox.test/",
        ])
        .current_dir(dir.path())
        .env_remove("MAESTRO_DATABASE_URL")
        .env_remove("MAESTRO_PUBLIC_URL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the link on stdout: {stdout:?}");
    let path = lines[0]
        .strip_prefix("http://inbox.test")
        .expect("the link points at the public URL");
    assert!(path.starts_with("/inbox/login?token="), "{path}");

    // A server on the same database accepts it.
    let url = format!("sqlite://{}", dir.path().join("maestro.db").display());
    let mut settings = Settings::with_database("127.0.0.1:0", &url);
    settings.drain_delay = std::time::Duration::ZERO;
    let app = App::open(settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(maestro::serve(Arc::clone(&app), listener, async {
        let _ = stopped.await;
    }));
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("maestro_inbox=")
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
