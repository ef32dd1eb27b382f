//! The inbox page in a real browser: headless Chromium, driven over the DevTools protocol.
//!
//! Signs in with a link as `maestro inbox open-url` prints it, sees the submitted Groundspan
//! alert's card, marks it read with a mouse click, watches a partner's update arrive live, and
//! keeps screenshots in `target/test-artifacts/`. Without Chromium the test is skipped (with a
//! message) on a workstation and fails under CI (`CI=true`); `.ci/run` installs it.
//!
//! The page is shown in a German locale in Tokyo (dates and prices in the reader's), and
//! axe-core audits it. The harness is `browser_harness.rs`.

use serde_json::{Value, json};

use crate::{
    browser_harness::{Cdp, axe_violations, find_chromium, signed_in_page},
    helpers::*,
};

#[tokio::test]
async fn the_inbox_page_shows_a_card_marks_it_read_and_updates_live() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    let t = TestApp::spawn(Backend::Sqlite).await;
    let body = post_seed();
    let response = t.post_alert(&t.groundspan_token(), &body).await;
    assert_eq!(response.status(), 200);

    let (_browser, mut cdp, page) = signed_in_page(&t, &chromium, "de-DE", "Asia/Tokyo").await;
    let page = page.as_str();

    // The card, the badge, and the live stream connected.
    cdp.wait_until(
        page,
        "document.readyState === 'complete'
         && document.getElementById('live-status').textContent === 'Live'
         && document.getElementById('unread-badge').textContent === '1'
         && document.getElementById('unread-badge').getAttribute('aria-label') === '1 unread alert'
         && document.querySelector('li.alert').dataset.read === 'false'
         && document.querySelector('li.alert').getBoundingClientRect().height > 0
         && document.querySelector('.package__title').textContent === 'SFO to CDG  Aug 1'
         && document.querySelectorAll('.variant__action').length === 4",
    )
    .await;
    // Dates and prices in the reader's time zone and locale (Tokyo, German here); the server
    // wrote them in UTC.
    cdp.wait_until(
        page,
        "document.querySelector('.variant__price data').textContent
           === new Intl.NumberFormat('de-DE', {style: 'currency', currency: 'USD'}).format(450)
         && document.querySelector('.variant__dates time').textContent.includes('19:00')
         && !document.querySelector('.variant__dates time').textContent.includes('UTC')",
    )
    .await;
    let violations = axe_violations(&mut cdp, page).await;
    assert!(violations.is_empty(), "axe-core finds: {violations:#?}");

    // Mark it read, with the mouse.
    cdp.click(page, "button[data-action=\"read\"]").await;
    cdp.wait_until(
        page,
        "document.querySelector('li.alert').dataset.read === 'true'
         && document.getElementById('unread-badge').textContent === '0'
         && document.getElementById('unread-badge').getAttribute('aria-label') === '0 unread alerts'
         && !document.querySelector('button[data-action=\"read\"]')",
    )
    .await;
    cdp.screenshot(page, "inbox.png").await;
    let inbox = t.inbox_json(&t.seed_user_token(), "").await;
    assert_eq!(inbox["items"][0]["read"], true, "the server has it read");

    // The partner updates the alert: the page shows it, unread again, without a reload.
    let mut update = body.clone();
    update["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = json!(425.0);
    let response = t.put_alert(&t.groundspan_token(), None, &update).await;
    assert_eq!(response.status(), 200);
    cdp.wait_until(
        page,
        "document.querySelector('li.alert').dataset.read === 'false'
         && document.getElementById('unread-badge').textContent === '1'
         && document.querySelector('.variant__price data').textContent
              === new Intl.NumberFormat('de-DE', {style: 'currency', currency: 'USD'}).format(425)",
    )
    .await;
    cdp.screenshot(page, "inbox-updated.png").await;
    assert_no_complaints(&cdp);
}

/// No script error and no Content Security Policy violation in what the page logged.
pub(crate) fn assert_no_complaints(cdp: &Cdp) {
    let complaints: Vec<&Value> = cdp
        .seen
        .iter()
        .filter(|event| {
            event["method"] == "Runtime.exceptionThrown"
                || (event["method"] == "Log.entryAdded"
                    && event["params"]["entry"]["text"]
                        .as_str()
                        .is_some_and(|text| text.contains("Content Security Policy")))
        })
        .collect();
    assert!(
        complaints.is_empty(),
        "script errors or CSP violations: {complaints:#?}"
    );
}
