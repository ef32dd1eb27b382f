//! Throttling failed client authentication at the token endpoint (RFC 6819 §5.1.4.2.3): after
//! a few failures for one client from one address, that client is refused from that address
//! (429 with `Retry-After`) until the window ends, before its secret is checked again — which
//! also bounds the CPU an attacker can make the server spend on Argon2. Keyed by client and
//! address so that someone else's failures do not lock a partner out (behind one proxy every
//! caller shares an address, and the key degrades to the client alone). Counted per instance.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Failures allowed in one window.
const FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Keys remembered at most; past it, windows that ended are forgotten, then everything.
const CAPACITY: usize = 10_000;

type Key = (String, Option<IpAddr>);

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<Key, (u32, Instant)>>,
}

impl Throttle {
    /// `Err(seconds to wait)` while the client is throttled from `address`.
    pub fn check(&self, client_id: &str, address: Option<IpAddr>) -> Result<(), u64> {
        let failures = self.failures.lock().expect("throttle lock poisoned");
        match failures.get(&(client_id.to_owned(), address)) {
            Some((count, started)) if *count >= FAILURES && started.elapsed() < WINDOW => {
                Err((WINDOW - started.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication.
    pub fn failed(&self, client_id: &str, address: Option<IpAddr>) {
        let mut failures = self.failures.lock().expect("throttle lock poisoned");
        if failures.len() >= CAPACITY {
            failures.retain(|_, (_, started)| started.elapsed() < WINDOW);
            if failures.len() >= CAPACITY {
                failures.clear();
            }
        }
        let entry = failures
            .entry((client_id.to_owned(), address))
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// A success forgets the failures before it.
    pub fn succeeded(&self, client_id: &str, address: Option<IpAddr>) {
        self.failures
            .lock()
            .expect("throttle lock poisoned")
            .remove(&(client_id.to_owned(), address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_throttled_after_repeated_failures_from_one_address() {
        let throttle = Throttle::default();
        let here = Some(IpAddr::from([10, 0, 0, 1]));
        let there = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..FAILURES {
            assert!(throttle.check("groundspan", here).is_ok());
            throttle.failed("groundspan", here);
        }
        let wait = throttle.check("groundspan", here).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(
            throttle.check("groundspan", there).is_ok(),
            "another address"
        );
        assert!(throttle.check("other", here).is_ok(), "another client");
        throttle.succeeded("groundspan", here);
        assert!(throttle.check("groundspan", here).is_ok());
    }
}
