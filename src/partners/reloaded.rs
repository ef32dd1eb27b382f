//! Values loaded on first use and reloaded once they are older than a period, one load at a
//! time per key.
//!
//! A server starting under load gets its first requests for a partner all at once: 64 of them
//! in the benchmark, each of which loaded the partner from the store and compiled its templates
//! (a few milliseconds each on two cores), so the first answers took 25–45 ms. And every
//! `catalog_refresh`, the requests arriving while the first of them reloaded reloaded too. Here
//! one caller loads; the others wait for its value when there is none yet, and keep using the
//! previous one while it reloads (docs/PERFORMANCE.md, "the catalogue loaded once").

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

pub struct Reloaded<V> {
    period: Duration,
    slots: RwLock<HashMap<String, Arc<Slot<V>>>>,
}

struct Slot<V> {
    value: RwLock<Option<(Instant, V)>>,
    /// Held by the one caller loading this key.
    loading: tokio::sync::Mutex<()>,
}

impl<V> Slot<V> {
    fn new() -> Slot<V> {
        Slot {
            value: RwLock::new(None),
            loading: tokio::sync::Mutex::new(()),
        }
    }
}

impl<V: Clone> Slot<V> {
    /// The value and whether it is older than `period`.
    fn current(&self, period: Duration) -> Option<(V, bool)> {
        let value = self.value.read().expect("not poisoned");
        value
            .as_ref()
            .map(|(at, v)| (v.clone(), at.elapsed() >= period))
    }

    fn fresh(&self, period: Duration) -> Option<V> {
        self.current(period)
            .and_then(|(value, stale)| (!stale).then_some(value))
    }

    fn set(&self, value: V) {
        *self.value.write().expect("not poisoned") = Some((Instant::now(), value));
    }
}

impl<V: Clone> Reloaded<V> {
    pub fn new(period: Duration) -> Reloaded<V> {
        Reloaded {
            period,
            slots: RwLock::new(HashMap::new()),
        }
    }

    /// The value of `key`, loaded by `load` (given the previous value, if any) when there is
    /// none or it is older than the period. While one caller loads, the others get the previous
    /// value, or wait for the load when there is none. Should that load fail, its caller gets the
    /// error and those waiting load for themselves, at once, not one after another.
    pub async fn get<E, F, Fut>(&self, key: &str, load: F) -> Result<V, E>
    where
        F: FnOnce(Option<V>) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let slot = self.slot(key);
        let loading = match slot.current(self.period) {
            Some((value, false)) => return Ok(value),
            Some((previous, true)) => match slot.loading.try_lock() {
                Ok(loading) => Some(loading),
                Err(_) => return Ok(previous),
            },
            None => match slot.loading.try_lock() {
                Ok(loading) => Some(loading),
                Err(_) => {
                    // Released once the loader is done: it left a value, or failed, in which
                    // case this caller loads without waiting for the others in turn.
                    drop(slot.loading.lock().await);
                    None
                }
            },
        };
        // Another caller may have loaded between the look above and now.
        if let Some(value) = slot.fresh(self.period) {
            return Ok(value);
        }
        let previous = slot.current(self.period).map(|(value, _)| value);
        let value = load(previous).await?;
        slot.set(value.clone());
        drop(loading);
        Ok(value)
    }

    fn slot(&self, key: &str) -> Arc<Slot<V>> {
        if let Some(slot) = self.slots.read().expect("not poisoned").get(key) {
            return Arc::clone(slot);
        }
        let mut slots = self.slots.write().expect("not poisoned");
        Arc::clone(
            slots
                .entry(key.to_owned())
                .or_insert_with(|| Arc::new(Slot::new())),
        )
    }
}

#[cfg(test)]
mod tests;
