//! The inbox's page and unread count at any size: a harness, not a timed test. It opens a fresh
//! database through the store, gives one user 10 live alerts and another 10,000 (unread, a few
//! read, snoozed and dismissed among them), then times the inbox's first page with its count
//! (`inbox_page`, 20 items) and the count alone (`inbox_unread_count`) for each, many times, and
//! prints the median and the 99th percentile. Before timing, it checks that the page is the
//! target's: a full first page, and the exact unread count its marks leave.
//!
//! ```text
//! cargo bench --bench inbox_count                                       # SQLite (release)
//! cargo bench --bench inbox_count -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench inbox_count -- --large 100000 --rounds 200
//! cargo bench --bench inbox_count -- --preload 5000000     # 5M alerts of others stored first
//! ```

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::future::join_all;
use maestro::{
    config::DatabaseArgs,
    store::{
        AlertContent, AlertOwner, DynStore, InboxFilter, InboxMark, InboxOwner, InboxQuery,
        NewAlert, Rendering,
    },
};
use sqlx::{Connection, Executor};
use time::OffsetDateTime;

#[path = "shared/preload.rs"]
mod preload;

#[derive(Parser, Debug)]
#[command(about = "maestro inbox page and unread count benchmark")]
struct Args {
    /// Live alerts of the large inbox.
    #[arg(long, default_value_t = 10_000)]
    large: usize,
    /// Live alerts of the small inbox.
    #[arg(long, default_value_t = 10)]
    small: usize,
    /// Timed calls per measurement.
    #[arg(long, default_value_t = 500)]
    rounds: usize,
    /// Alerts of other users stored first, straight into the database (`shared/preload.rs`),
    /// to compare a large database with an empty one.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Run against PostgreSQL: a server URL; a fresh database is created on it and dropped after.
    #[arg(long)]
    postgres: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const PARTNER: &str = "groundspan";
const COMPANY: &str = "bench-company";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (url, admin) = match &args.postgres {
        None => (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            None,
        ),
        Some(server) => {
            let name = format!("maestro_inbox_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(server).await?;
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await?;
            let base = server
                .rsplit_once('/')
                .map_or(server.as_str(), |(base, _)| base);
            (format!("{base}/{name}"), Some((admin, name)))
        }
    };
    let database = DatabaseArgs {
        url: url.clone(),
        master_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".parse()?),
        ..DatabaseArgs::default()
    };
    let store = maestro::app::open_store(&database, maestro::store::Open::CreateIfMissing).await?;
    if args.preload > 0 {
        let started = Instant::now();
        preload::preload(&url, args.preload).await?;
        println!(
            "preloaded {} alerts in {:.1?}",
            args.preload,
            started.elapsed()
        );
    }
    let now = OffsetDateTime::now_utc();
    let small = owner("small");
    let large = owner("large");
    println!(
        "backend: {}",
        if admin.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    fill(&store, &small, args.small, now).await?;
    let started = Instant::now();
    fill(&store, &large, args.large, now).await?;
    println!("stored {} alerts in {:.1?}", args.large, started.elapsed());
    for (name, who, size) in [("small", &small, args.small), ("large", &large, args.large)] {
        let first_page = InboxQuery {
            owner: who.clone(),
            filter: InboxFilter::All,
            before: None,
            limit: 21,
            now,
        };
        // What is timed must be what the target names: the first page and the exact count.
        let checked = store.inbox_page(&first_page).await?;
        let shown = FillPattern(size);
        anyhow::ensure!(
            checked.unread_count == shown.unread() && checked.items.len() == shown.first_page(),
            "the {name} inbox's first page holds {} items and counts {} unread; expected {} and {}",
            checked.items.len(),
            checked.unread_count,
            shown.first_page(),
            shown.unread()
        );
        let count = checked.unread_count;
        let page = time_calls(args.rounds, || async {
            store.inbox_page(&first_page).await.map(drop)
        })
        .await?;
        let counted = time_calls(args.rounds, || async {
            store.inbox_unread_count(who, now).await.map(drop)
        })
        .await?;
        println!(
            "{name:>5} inbox ({size} live, {count} unread): page of 20 with its count p50 {:.2} ms, p99 {:.2} ms; the count alone p50 {:.2} ms, p99 {:.2} ms",
            page.0, page.1, counted.0, counted.1
        );
    }
    drop(store);
    if let Some((mut admin, name)) = admin {
        admin
            .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await?;
    }
    Ok(())
}

fn owner(user: &str) -> InboxOwner {
    InboxOwner {
        company_id: COMPANY.into(),
        user_id: user.into(),
    }
}

/// What `fill` leaves in an inbox of `.0` alerts, by its marks.
struct FillPattern(usize);

impl FillPattern {
    fn is_read(i: usize) -> bool {
        i % 10 == 1
    }

    fn is_dismissed(i: usize) -> bool {
        !Self::is_read(i) && i % 50 == 2
    }

    fn is_snoozed(i: usize) -> bool {
        !Self::is_read(i) && !Self::is_dismissed(i) && i % 100 == 3
    }

    /// Neither read, dismissed nor snoozed.
    fn unread(&self) -> i64 {
        (0..self.0)
            .filter(|&i| !Self::is_read(i) && !Self::is_dismissed(i) && !Self::is_snoozed(i))
            .count() as i64
    }

    /// Items of the first page asked with a limit of 21: the awake, undismissed ones.
    fn first_page(&self) -> usize {
        (0..self.0)
            .filter(|&i| !Self::is_dismissed(i) && !Self::is_snoozed(i))
            .count()
            .min(21)
    }
}

/// `n` alerts for `who`, written 64 at a time (the SQLite writer commits them together); one in
/// ten read, one in fifty dismissed, one in a hundred snoozed.
async fn fill(
    store: &DynStore,
    who: &InboxOwner,
    n: usize,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let rendering = Arc::new(Rendering {
        title: "Groundspan: 3 travel offers for you".into(),
        html: "<article class=\"offer-card\"><p>An offer</p></article>".repeat(20),
        text: "An offer".into(),
    });
    // Ids sort by receipt, as UUID v7 ids do; each inbox has its own range.
    let inbox = u128::from(who.user_id.as_bytes()[0]);
    let ids: Vec<String> = (0..n)
        .map(|i| format!("alt_{:032x}", inbox << 64 | i as u128))
        .collect();
    for chunk in ids.chunks(64) {
        let writes = chunk.iter().map(|id| {
            let alert = NewAlert {
                id: id.clone(),
                owner: AlertOwner {
                    partner_id: PARTNER.into(),
                    company_id: COMPANY.into(),
                },
                content: AlertContent {
                    ext_ref: format!("{}-{id}", who.user_id),
                    user_id: who.user_id.clone(),
                    template_id: "NOTIFY_TEMPLATE_ID".into(),
                    template_version: 1,
                    msg_type: String::new(),
                    topic: None,
                    title: None,
                    created_at: "2030-01-01T00:00:00Z".into(),
                    expires_at: now + Duration::from_secs(30 * 24 * 3600),
                    body_hash: format!("hash-{id}"),
                    payload: "{}".into(),
                    rendering: rendering.clone(),
                    payload_metadata: None,
                },
                received_at: now,
            };
            async move { store.create_alert(&alert).await }
        });
        for result in join_all(writes).await {
            result?;
        }
    }
    for (i, id) in ids.iter().enumerate() {
        if FillPattern::is_read(i) {
            store.mark_inbox(who, id, InboxMark::Read, now).await?;
        } else if FillPattern::is_dismissed(i) {
            store.mark_inbox(who, id, InboxMark::Dismissed, now).await?;
        } else if FillPattern::is_snoozed(i) {
            store
                .snooze_inbox(who, id, now + Duration::from_secs(3600), now)
                .await?;
        }
    }
    Ok(())
}

/// The median and 99th percentile of `rounds` calls, in milliseconds (after 20 unmeasured).
async fn time_calls<F, Fut>(rounds: usize, mut call: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = maestro::store::StoreResult<()>>,
{
    for _ in 0..20 {
        call().await?;
    }
    let mut took = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        call().await?;
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}
