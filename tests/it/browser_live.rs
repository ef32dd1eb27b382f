//! The inbox page's live updates in a real browser (headless Chromium, see `browser.rs`): a
//! change patches the one card it is about — the list is never redrawn, keyboard focus and the
//! scroll position stay — and a stream that drops (the server restarts) resumes where it was,
//! so the changes made meanwhile arrive without a reload.

use serde_json::json;
use tokio::net::TcpListener;

use crate::{
    browser::assert_no_complaints,
    browser_harness::{axe_violations, find_chromium, signed_in_page},
    helpers::*,
};

async fn post_as(t: &TestApp, ext_ref: &str, amount: f64) -> String {
    let mut body = post_seed();
    body["extRef"] = json!(ext_ref);
    body["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(amount);
    t.create_alert(&body).await
}

async fn put_as(t: &TestApp, ext_ref: &str, amount: f64) {
    let mut body = post_seed();
    body["extRef"] = json!(ext_ref);
    body["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(amount);
    let response = t.put_alert(&t.groundspan_token(), None, &body).await;
    assert_eq!(response.status(), 200);
}

fn price_is(alert_id: &str, amount: u32) -> String {
    format!(
        "document.querySelector('#alert-{alert_id} .variant__price data').textContent
           === new Intl.NumberFormat('en-US', {{style: 'currency', currency: 'USD'}}).format({amount})"
    )
}

#[tokio::test]
async fn the_page_patches_one_card_keeps_focus_and_scroll_and_resumes_a_dropped_stream() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let db = std::sync::Arc::new(TestDatabase::new(Backend::Sqlite).await);
    let mut first = TestApp::spawn_listening(db.clone(), listener, |_| {}).await;
    let older = post_as(&first, "older", 100.0).await;
    let newer = post_as(&first, "newer", 200.0).await;
    let (_browser, mut cdp, page) =
        signed_in_page(&first, &chromium, "en-US", "America/New_York").await;
    let page = page.as_str();
    cdp.wait_until(
        page,
        &format!(
            "document.getElementById('live-status').textContent === 'Live'
             && document.querySelectorAll('li.alert').length === 2
             && {}",
            price_is(&older, 100)
        ),
    )
    .await;

    // Keyboard focus on the older card's Dismiss, the page scrolled down to it; the list and
    // the focused element are remembered, to be found the same after the updates.
    cdp.evaluate(
        page,
        &format!(
            "(() => {{
               const card = document.getElementById('alert-{older}');
               card.scrollIntoView({{block: 'start'}});
               window.scrollBy(0, -40);
               card.querySelector('[data-action=\"dismiss\"]').focus();
               window.kept = {{
                 list: document.querySelector('ul.alerts'),
                 focused: document.activeElement,
                 top: card.getBoundingClientRect().top,
               }};
               return window.scrollY > 0;
             }})()"
        ),
    )
    .await;
    let kept = "document.querySelector('ul.alerts') === window.kept.list
         && document.activeElement === window.kept.focused
         && Math.abs(document.getElementById('alert-OLDER').getBoundingClientRect().top
                     - window.kept.top) < 2"
        .replace("OLDER", &older);

    // A partner updates the newer card (above the focus), then the older one itself, then a
    // new alert arrives on top: each patched in place.
    put_as(&first, "newer", 250.0).await;
    cdp.wait_until(page, &format!("{} && {kept}", price_is(&newer, 250)))
        .await;
    put_as(&first, "older", 150.0).await;
    cdp.wait_until(page, &format!("{} && {kept}", price_is(&older, 150)))
        .await;
    let newest = post_as(&first, "newest", 300.0).await;
    cdp.wait_until(
        page,
        &format!(
            "document.querySelectorAll('li.alert').length === 3
             && document.querySelector('li.alert').id === 'alert-{newest}'
             && {kept}"
        ),
    )
    .await;
    cdp.screenshot(page, "inbox-live-patched.png").await;

    // The server goes away; meanwhile another instance marks a card read and takes a new one.
    first.shutdown_signal().send(()).unwrap();
    first.server_task().await.unwrap().unwrap();
    cdp.wait_until(
        page,
        "document.getElementById('live-status').textContent === 'Reconnecting…'",
    )
    .await;
    let other = TestApp::spawn_on(db.clone(), |_| {}).await;
    let user = other.seed_user_token();
    assert_eq!(other.mark(&user, &newer, "read").await.status(), 200);
    let meanwhile = post_as(&other, "meanwhile", 400.0).await;

    // Back at the same address: the browser reconnects with Last-Event-ID and is told what it
    // missed, patched in like any change (the list is the same element: no reload).
    let listener = TcpListener::bind(address).await.unwrap();
    let _second = TestApp::spawn_listening(db.clone(), listener, |_| {}).await;
    cdp.wait_until(
        page,
        &format!(
            "document.getElementById('live-status').textContent === 'Live'
             && document.getElementById('alert-{newer}').dataset.read === 'true'
             && document.querySelector('li.alert').id === 'alert-{meanwhile}'
             && document.querySelectorAll('li.alert').length === 4
             && {kept}"
        ),
    )
    .await;
    cdp.screenshot(page, "inbox-resumed.png").await;
    let violations = axe_violations(&mut cdp, page).await;
    assert!(violations.is_empty(), "axe-core finds: {violations:#?}");
    assert_no_complaints(&cdp);
}
