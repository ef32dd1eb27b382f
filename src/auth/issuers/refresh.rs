//! Keeping the URL sources fresh: the background refresh, and the refetches tokens naming
//! unknown keys ask for, at most once per [`REFETCH_INTERVAL`] per source.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use tokio::sync::watch;

use super::{Issuers, Location, REFETCH_INTERVAL, Source, fetch, keys::document_keys};

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
        let now = self.clock.now();
        let due: Vec<_> = self
            .url_sources()
            .filter(|(_, source, _)| {
                let schedule = source.schedule.lock().expect("schedule lock poisoned");
                schedule.refetch_asked || schedule.next_refresh.is_none_or(|at| now >= at)
            })
            .map(|(index, _, url)| (index, url.clone()))
            .collect();
        for (index, url) in due {
            if let Err(err) = self.fetch_and_install(index, &url, false).await {
                tracing::error!(%url, error = %format!("{err:#}"), "refreshing a trusted JWKS failed; the keys fetched before are kept");
            }
        }
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

    /// Fetches source `index`'s document and schedules its next refresh: as the answer asks,
    /// or, after a failure, [`fetch::MIN_REFRESH`] later.
    async fn fetch(&self, index: usize, url: &url::Url) -> anyhow::Result<Vec<u8>> {
        let client = self.client.as_ref().context("no client for URL sources")?;
        let started = self.clock.now();
        {
            let mut schedule = self.sources[index].schedule.lock().expect("poisoned");
            if !std::mem::take(&mut schedule.refetch_asked) {
                self.requested.fetch_add(1, Ordering::SeqCst);
            }
            schedule.last_fetch = Some(started);
        }
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
