//! Keeping the URL sources fresh: the background refresh, and the refetches tokens naming
//! unknown keys ask for, at most once per [`REFETCH_INTERVAL`] per source.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::{Issuers, Location, REFETCH_INTERVAL, Schedule, Source, fetch, keys::document_keys};

impl Issuers {
    /// Asks every URL source that has rested [`REFETCH_INTERVAL`] since its last fetch for a
    /// refetch, which `run` takes up. Called on the verify path: it never waits.
    pub(super) fn ask_refetch(&self) {
        let now = self.clock.now();
        let mut asked = false;
        for source in self.url_sources().map(|(_, source, _)| source) {
            let mut schedule = source.schedule.lock().expect("schedule lock poisoned");
            // A clock set back by more than the interval counts as the interval having passed.
            let rested = schedule
                .last_fetch
                .is_none_or(|last| (now - last).unsigned_abs() >= REFETCH_INTERVAL);
            if rested && !schedule.refetch_asked {
                schedule.refetch_asked = true;
                schedule.last_fetch = Some(now);
                self.requested.fetch_add(1, Ordering::SeqCst);
                asked = true;
            }
        }
        if asked {
            self.wake.notify_one();
        }
    }

    /// Refreshes the URL sources when they are due, and refetches those asked for, until `stop`.
    /// A fetch under way when `stop` comes is dropped: it only reads, and the keys it would
    /// have brought serve no one after the shutdown.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if self.client.is_none() {
            return;
        }
        loop {
            let pass = async {
                tokio::select! {
                    () = tokio::time::sleep(self.until_next_refresh()) => {}
                    () = self.wake.notified() => {}
                }
                self.refresh_due().await;
            };
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = pass => {}
            }
        }
    }

    /// One pass of `run`: fetches every URL source that is due or asked for.
    pub async fn refresh_due(&self) {
        for (index, url) in self.take_due() {
            if let Err(err) = self.fetch_and_install(index, &url, false).await {
                tracing::error!(%url, error = %format!("{err:#}"), "refreshing a trusted JWKS failed; the keys fetched before are kept");
            }
        }
    }

    /// The URL sources due or asked for, each taken for fetching under the lock that found it
    /// due. A source's next refresh is known only once its fetch ends; were it not taken, a
    /// pass running meanwhile (the tests drive passes while the server's loop runs) would find
    /// it due still and fetch it a second time for the same due time.
    pub(super) fn take_due(&self) -> Vec<(usize, url::Url)> {
        let now = self.clock.now();
        self.url_sources()
            .filter(|(_, source, _)| {
                let mut schedule = source.schedule.lock().expect("schedule lock poisoned");
                let due =
                    schedule.refetch_asked || schedule.next_refresh.is_none_or(|at| now >= at);
                if due {
                    self.begin_fetch(&mut schedule, now);
                }
                due
            })
            .map(|(index, _, url)| (index, url.clone()))
            .collect()
    }

    /// Records that the source is fetched from `now` on (counting the fetch, unless a token
    /// asked for it and so counted it already).
    pub(super) fn begin_fetch(&self, schedule: &mut Schedule, now: OffsetDateTime) {
        if !std::mem::take(&mut schedule.refetch_asked) {
            self.requested.fetch_add(1, Ordering::SeqCst);
        }
        // From the decision rather than the fetch's start: a token asking while the source
        // waits behind another in the pass is answered by this fetch.
        schedule.last_fetch = Some(now);
        // Not due again until the fetch ends and schedules the next refresh; a fetch that never
        // ends (dropped at shutdown) counts as a failed one, tried again a minute later.
        schedule.next_refresh = Some(now + fetch::MIN_REFRESH);
    }

    pub(super) fn until_next_refresh(&self) -> Duration {
        let now = self.clock.now();
        self.url_sources()
            .map(|(_, source, _)| {
                let schedule = source.schedule.lock().expect("schedule lock poisoned");
                match schedule.next_refresh {
                    _ if schedule.refetch_asked => Duration::ZERO,
                    None => Duration::ZERO,
                    Some(at) => (at - now).try_into().unwrap_or(Duration::ZERO),
                }
            })
            .min()
            .unwrap_or(fetch::MAX_REFRESH)
            .min(fetch::MAX_REFRESH)
    }

    pub(super) fn url_sources(&self) -> impl Iterator<Item = (usize, &Source, &url::Url)> {
        self.sources
            .iter()
            .enumerate()
            .filter_map(|(index, source)| match &source.described.location {
                Location::Url(url) => Some((index, source, url)),
                Location::File(_) => None,
            })
    }

    /// Fetches source `index`'s document and installs its keys. The fetch counts as completed
    /// once its keys are in place (or it failed).
    pub(super) async fn fetch_and_install(
        &self,
        index: usize,
        url: &url::Url,
        at_start: bool,
    ) -> anyhow::Result<()> {
        let installed = match self.fetch(index, url).await {
            Ok(document) => document_keys(&document, &self.sources[index].described)
                .and_then(|keys| self.install(index, keys, at_start)),
            Err(err) => Err(err),
        };
        self.completed.fetch_add(1, Ordering::SeqCst);
        installed
    }

    /// Fetches source `index`'s document (taken by `begin_fetch`) and schedules its next
    /// refresh: as the answer asks, or, after a failure, [`fetch::MIN_REFRESH`] later.
    async fn fetch(&self, index: usize, url: &url::Url) -> anyhow::Result<Vec<u8>> {
        let client = self.client.as_ref().context("no client for URL sources")?;
        let started = self.clock.now();
        let fetched = fetch::fetch(client, url).await;
        let refresh_after = match &fetched {
            Ok(fetched) => fetched.refresh_after,
            Err(_) => fetch::MIN_REFRESH,
        };
        self.sources[index]
            .schedule
            .lock()
            .expect("schedule lock poisoned")
            .next_refresh = Some(started + refresh_after);
        Ok(fetched?.body)
    }
}
