//! The inbox page's session and the host product's embedding (SPEC §5): a sign-out ends the
//! session for every instance, a sign-in link works once, and CORS answers the configured
//! origins only.

use reqwest::{Method, header};

use crate::{helpers::*, inbox_helpers::*};

crate::on_both_backends!(
    a_sign_out_ends_the_session_on_every_instance,
    a_sign_in_link_works_once_on_every_instance,
);

async fn page_status(t: &TestApp, cookie: &str) -> u16 {
    t.client
        .get(t.url("/inbox"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn a_sign_out_ends_the_session_on_every_instance(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
    let cookie = a.sign_in(SEED_USER, COMPANY).await;
    assert!(
        cookie.starts_with("maestro_inbox=mis_"),
        "an opaque session: {cookie}"
    );
    assert_eq!(
        page_status(&b, &cookie).await,
        200,
        "any instance knows the session"
    );

    let logout = |t: &TestApp, marked: bool| {
        let mut request = t
            .client
            .post(t.url("/inbox/logout"))
            .header(header::COOKIE, cookie.as_str());
        if marked {
            request = request.header("X-Requested-With", "maestro-inbox");
        }
        request.send()
    };
    let refused = logout(&a, false).await.unwrap();
    assert_eq!(
        refused.status(),
        401,
        "another site cannot sign the user out"
    );
    assert_eq!(page_status(&b, &cookie).await, 200);

    let response = logout(&a, true).await.unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("maestro_inbox=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // The old cookie, replayed on the other instance: refused by the page and the API.
    assert_eq!(page_status(&b, &cookie).await, 401);
    let api = b
        .client
        .get(b.url("/maestro/v4/inbox"))
        .header(header::COOKIE, cookie.as_str())
        .send()
        .await
        .unwrap();
    expect_error(api, 401, "INVALID_TOKEN").await;
    let stream = b
        .client
        .get(b.url("/maestro/v4/inbox/stream"))
        .header(header::COOKIE, cookie.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 401);
    assert_eq!(
        logout(&b, true).await.unwrap().status(),
        204,
        "signing out twice is fine"
    );
}

async fn a_sign_in_link_works_once_on_every_instance(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.db.clone(), |_| {}).await;
    let link = a.sign_in_link(SEED_USER, COMPANY).await;
    let first = a.client.get(&link).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().contains_key(header::SET_COOKIE));
    for t in [&a, &b] {
        let again = t.client.get(&link).send().await.unwrap();
        assert_eq!(again.status(), 401, "a link works once");
        assert!(!again.headers().contains_key(header::SET_COOKIE));
        assert!(again.text().await.unwrap().contains("used already"));
    }
    // A new link still works.
    assert!(
        b.sign_in(SEED_USER, COMPANY)
            .await
            .starts_with("maestro_inbox=mis_")
    );
}

const HOST: &str = "https://host.example";

async fn preflight(t: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    t.client
        .request(Method::OPTIONS, t.url(path))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_answers_the_host_products_origins_for_the_inbox_api_only() {
    let t = TestApp::spawn_with(Backend::Sqlite, |settings| {
        settings.inbox_allowed_origins = vec![HOST.into(), "http://localhost:3000".into()];
    })
    .await;
    let allowed = preflight(&t, "/maestro/v4/inbox/read-all", HOST).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], HOST);
    let allow_headers = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    assert!(
        headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        !headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        "never with cookies"
    );

    // The request itself, with the bearer header.
    let user = t.seed_user_token();
    let response = t
        .client
        .get(t.url("/maestro/v4/inbox"))
        .header(header::ORIGIN, HOST)
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        HOST
    );
    let varies = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .any(|value| {
            value
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("origin")
        });
    assert!(varies, "caches keep one answer per origin");

    // Another origin, or another surface: no CORS header, so the browser refuses the answer.
    for (path, origin) in [
        ("/maestro/v4/inbox", "https://evil.example"),
        ("/maestro/v4/alerts", HOST),
    ] {
        let response = preflight(&t, path, origin).await;
        assert!(
            !response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "{path} from {origin}"
        );
    }
    let response = t
        .client
        .get(t.url("/maestro/v4/inbox"))
        .header(header::ORIGIN, "https://evil.example")
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    // Without the setting, no origin is allowed.
    let plain = TestApp::spawn(Backend::Sqlite).await;
    let response = preflight(&plain, "/maestro/v4/inbox", HOST).await;
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}
