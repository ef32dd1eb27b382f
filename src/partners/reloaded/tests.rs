use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Counts the loads, and holds each until the gate opens.
struct Loader {
    loads: AtomicUsize,
    gate: Semaphore,
}

impl Loader {
    fn new() -> Loader {
        Loader {
            loads: AtomicUsize::new(0),
            gate: Semaphore::new(0),
        }
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    async fn load(&self, result: Result<u32, &'static str>) -> Result<u32, &'static str> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let _permit = self.gate.acquire().await.expect("not closed");
        result
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

/// Runs `get` for each caller and opens the loader's gate once every one of them reached its
/// first wait (all run on this task, so a caller that has arrived has looked at the slot).
async fn all_at_once<F, Fut>(callers: usize, loader: &Loader, get: F) -> Vec<Result<u32, &str>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<u32, &'static str>>,
{
    let arrived = &AtomicUsize::new(0);
    let each = (0..callers).map(|caller| {
        let get = get(caller);
        async move {
            // Counted on the caller's first poll, which then runs `get` to its first wait.
            arrived.fetch_add(1, Ordering::SeqCst);
            get.await
        }
    });
    let results = futures_util::future::join_all(each);
    let open = async {
        while arrived.load(Ordering::SeqCst) < callers {
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        loader.open();
    };
    tokio::join!(results, open).0
}

#[tokio::test]
async fn callers_arriving_together_wait_for_one_load() {
    let cache = Reloaded::new(HOUR);
    let loader = Loader::new();
    let results = all_at_once(8, &loader, |_| {
        cache.get("groundspan", |previous| {
            assert_eq!(previous, None);
            loader.load(Ok(7))
        })
    })
    .await;
    assert_eq!(results, vec![Ok(7); 8]);
    assert_eq!(loader.loads(), 1);

    let again = cache.get("groundspan", |_| loader.load(Ok(8))).await;
    assert_eq!(again, Ok(7), "a fresh value is not loaded again");
    assert_eq!(loader.loads(), 1);
}

#[tokio::test]
async fn keys_load_apart() {
    let cache = Reloaded::new(HOUR);
    let loader = Loader::new();
    loader.open();
    assert_eq!(cache.get("a", |_| loader.load(Ok(1))).await, Ok(1));
    assert_eq!(cache.get("b", |_| loader.load(Ok(2))).await, Ok(2));
    assert_eq!(cache.get("a", |_| loader.load(Ok(3))).await, Ok(1));
    assert_eq!(loader.loads(), 2);
}

#[tokio::test]
async fn a_stale_value_is_served_while_one_caller_reloads_it() {
    // A period of zero makes every value stale at once.
    let cache = Reloaded::new(Duration::ZERO);
    let first = Loader::new();
    first.open();
    assert_eq!(cache.get("groundspan", |_| first.load(Ok(1))).await, Ok(1));

    let loader = Loader::new();
    let results = all_at_once(5, &loader, |_| {
        cache.get("groundspan", |previous| {
            assert_eq!(
                previous,
                Some(1),
                "the loader starts from the previous value"
            );
            loader.load(Ok(2))
        })
    })
    .await;
    assert_eq!(loader.loads(), 1);
    assert_eq!(results.iter().filter(|r| **r == Ok(2)).count(), 1);
    assert_eq!(results.iter().filter(|r| **r == Ok(1)).count(), 4);
}

#[tokio::test]
async fn when_the_load_fails_the_waiting_callers_load_for_themselves() {
    let cache = Reloaded::new(HOUR);
    let loader = &Loader::new();
    let results = all_at_once(4, loader, |caller| {
        let result = if caller == 0 {
            Err("unavailable")
        } else {
            Ok(5)
        };
        cache.get("groundspan", move |_| loader.load(result))
    })
    .await;
    assert_eq!(results[0], Err("unavailable"));
    assert!(results[1..].iter().all(|r| *r == Ok(5)), "{results:?}");
    // The first waiter to run again may load before the others look, or they all load.
    assert!((2..=4).contains(&loader.loads()), "{}", loader.loads());
}
