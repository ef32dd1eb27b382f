use time::macros::datetime;

use super::*;
use crate::store::CompanyEventRecord;

const LIMIT: Duration = Duration::from_millis(50);
const NOW: OffsetDateTime = datetime!(2026-12-03 10:00:00 UTC);

fn pacing() -> Arc<Pacing> {
    Arc::new(Pacing::new(LIMIT, 128, 64, Arc::new(Metrics::new())))
}

/// A delivery to `partner` claimed at `NOW`, due `waited` earlier.
fn claimed(partner: &str, waited: Duration) -> ClaimedDelivery {
    ClaimedDelivery {
        id: format!("msg_{partner}_{}", waited.as_millis()),
        attempts: 0,
        replayed_after: 0,
        due_at: NOW - waited,
        partner_id: partner.into(),
        postback_url: None,
        postback_secret: "secret".into(),
        previous_postback_secret: None,
        event: CompanyEventRecord {
            id: "evt_1".into(),
            object_type: "itinerary".into(),
            event_type: "CREATE".into(),
            company_id: "c".into(),
            user_login: None,
            trip_id: None,
            occurred_at: NOW,
        },
    }
}

/// `attempts` attempts to `partner` that ended after `took` each.
fn answered(pacing: &Arc<Pacing>, partner: &str, took: Duration, attempts: usize) {
    for _ in 0..attempts {
        pacing.underway(partner).ended(took);
    }
}

/// A publish started while the worker is behind, checked to be held back after it had every
/// chance to go on.
async fn held_back(pacing: &Arc<Pacing>) -> tokio::task::JoinHandle<()> {
    let publish = tokio::spawn({
        let pacing = pacing.clone();
        async move { pacing.admit().await }
    });
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        !publish.is_finished(),
        "held back while the worker is behind"
    );
    publish
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_lag_is_the_longest_wait_among_the_deliveries_claimed() {
    let pacing = pacing();
    answered(&pacing, "fast", ms(2), 3);
    let lag = pacing.claimed(
        &[
            claimed("fast", ms(30)),
            claimed("fast", ms(400)),
            claimed("new", ms(90)),
        ],
        NOW,
    );
    assert_eq!(lag, ms(400));
    assert_eq!(*pacing.lag.borrow(), ms(400));
    // A step that claims nothing while a prompt partner's attempts are under way may be held
    // back by that partner's share: the lag stands until they end.
    let underway = pacing.underway("fast");
    assert_eq!(pacing.claimed(&[], NOW), ms(400));
    // Without any, it has caught up.
    underway.ended(ms(2));
    assert_eq!(pacing.claimed(&[], NOW), Duration::ZERO);
    // Not yet due (a clock running behind another instance's) is no lag.
    let early = ClaimedDelivery {
        due_at: NOW + ms(5),
        ..claimed("fast", ms(0))
    };
    assert_eq!(pacing.claimed(&[early], NOW), Duration::ZERO);
}

#[test]
fn a_partner_slower_than_the_limit_is_left_out() {
    let pacing = pacing();
    answered(&pacing, "fast", ms(2), 1);
    answered(&pacing, "slow", ms(900), 1);
    let lag = pacing.claimed(&[claimed("slow", ms(30_000)), claimed("fast", ms(70))], NOW);
    assert_eq!(lag, ms(70), "the slow partner's backlog is its own");
    // One slow answer among quick ones does not make a partner slow; a run of them does.
    answered(&pacing, "fast", ms(200), 1);
    assert_eq!(pacing.claimed(&[claimed("fast", ms(80))], NOW), ms(80));
    answered(&pacing, "fast", ms(200), 20);
    assert_eq!(
        pacing.claimed(&[claimed("fast", ms(80))], NOW),
        Duration::ZERO
    );
}

#[test]
fn no_lag_counts_while_slow_partners_hold_the_slots_the_others_need() {
    let pacing = pacing();
    answered(&pacing, "slow", ms(900), 1);
    answered(&pacing, "other slow", ms(900), 1);
    // 64 of 128 slots held by a slow partner leave the others a partner's share: the lag counts.
    let held: Vec<_> = (0..64).map(|_| pacing.underway("slow")).collect();
    assert_eq!(pacing.claimed(&[claimed("fast", ms(300))], NOW), ms(300));
    // One more, and the worker would fall behind however slowly events came.
    let more = pacing.underway("other slow");
    assert_eq!(
        pacing.claimed(&[claimed("fast", ms(300))], NOW),
        Duration::ZERO
    );
    // Attempts that end (or whose task panicked: the guard is dropped) free their slots.
    drop(more);
    assert_eq!(pacing.claimed(&[claimed("fast", ms(300))], NOW), ms(300));
    drop(held);
    assert_eq!(pacing.lock()["slow"].in_flight, 0);
}

#[tokio::test]
async fn intake_waits_while_the_worker_is_behind_and_goes_on_when_it_catches_up() {
    let pacing = pacing();
    // Within the limit: no wait at all.
    pacing.claimed(&[claimed("fast", ms(50))], NOW);
    pacing.admit().await;

    pacing.claimed(&[claimed("fast", ms(51))], NOW);
    let publish = held_back(&pacing).await;
    pacing.claimed(&[claimed("fast", ms(10))], NOW);
    tokio::time::timeout(Duration::from_secs(10), publish)
        .await
        .expect("let through once the worker caught up")
        .unwrap();
    assert!(
        pacing
            .metrics
            .render()
            .contains("maestro_company_events_paced_total{outcome=\"caught_up\"} 1")
    );
}

#[tokio::test]
async fn a_worker_that_stops_claiming_lets_waiting_intake_through() {
    let pacing = pacing();
    pacing.claimed(&[claimed("fast", ms(5_000))], NOW);
    let publish = held_back(&pacing).await;
    pacing.stopped();
    tokio::time::timeout(Duration::from_secs(10), publish)
        .await
        .expect("let through once the worker stopped")
        .unwrap();
    pacing.admit().await;
}

#[tokio::test]
async fn intake_is_held_back_at_most_the_longest_wait_and_never_when_pacing_is_off() {
    let mut behind = Pacing::new(LIMIT, 128, 64, Arc::new(Metrics::new()));
    behind.wait = ms(20);
    behind.claimed(&[claimed("fast", ms(5_000))], NOW);
    behind.admit().await;
    assert!(
        behind
            .metrics
            .render()
            .contains("maestro_company_events_paced_total{outcome=\"waited_out\"} 1")
    );

    let off = Pacing::new(Duration::ZERO, 128, 64, Arc::new(Metrics::new()));
    off.claimed(&[claimed("fast", ms(5_000))], NOW);
    tokio::time::timeout(Duration::from_secs(10), off.admit())
        .await
        .expect("no pacing at all");
    assert!(
        !off.metrics
            .render()
            .contains("maestro_company_events_paced_total{")
    );
}
