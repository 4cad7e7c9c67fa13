//! Driving a run from async Rust with tokio: a script spawns ten tasks,
//! each fetching a page through the host's `fetch` (simulated with a
//! 100 ms `tokio::time::sleep`) and then looking up a view count through
//! `views`. [`spool::drive_async`] runs the script and hands each batch of
//! requests to an [`AsyncDispatcher`], which answers them as futures, all
//! in flight at once: ten 100 ms fetches take about 100 ms, not a second.
//!
//! The same script is driven twice. With [`AsyncDispatcher::per_request`]
//! every request is a future of its own, and results reach the script as
//! they arrive. With [`AsyncDispatcher::per_batch`] one future answers a
//! whole batch: it starts the batch's fetches together and answers all of
//! its `views` lookups with one query, as a database host would.
//!
//! Run with `cargo run -p spool-examples --example async_host`.

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spool::{
    AsyncDispatcher, CaptureOutput, Completion, Data, Engine, IoRequest, IoResult, Program,
};

/// How long every simulated fetch takes.
const FETCH_TIME: Duration = Duration::from_millis(100);

/// How many pages the script fetches.
const PAGES: usize = 10;

const SCRIPT: &str = r#"
fn page(n: int) -> str {
  let url = "https://example.com/page/${n}"
  let body = fetch(url)
  return "${body} (${views(url)} views)"
}
let count = args()[0].parse_int()!
let tasks: [Task<str>] = []
for n in 0..count {
  tasks.push(spawn page(n))
}
for task in tasks {
  print(await task)
}
"#;

/// What the dispatcher was handed, counted from inside its handlers.
#[derive(Default)]
struct Counts {
    /// Batches, when the dispatcher is handed whole batches.
    batches: AtomicUsize,
    /// Futures the dispatcher started: one per request or per batch.
    futures: AtomicUsize,
    requests: AtomicUsize,
    /// Lookups of view counts sent to the (imaginary) database.
    queries: AtomicUsize,
}

impl Counts {
    fn add(counter: &AtomicUsize, n: usize) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// One line saying what the dispatcher saw.
    fn describe(&self) -> String {
        let get = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        let batches = match get(&self.batches) {
            0 => String::new(),
            n => format!(" in {n} batches"),
        };
        format!(
            "{} requests{batches}, answered by {} futures; view queries: {}",
            get(&self.requests),
            get(&self.futures),
            get(&self.queries)
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut engine = Engine::new();
    engine.register_io("fn fetch(url: str) -> str")?;
    engine.register_io("fn views(url: str) -> int")?;
    let program = engine.compile("pages.spl", SCRIPT)?;

    let counts = Arc::new(Counts::default());
    let mut dispatcher = per_request(Arc::clone(&counts));
    println!("AsyncDispatcher::per_request: a future for each request");
    let lines = drive(&program, &mut dispatcher, &counts).await?;
    for line in &lines {
        println!("  script printed: {line}");
    }

    let counts = Arc::new(Counts::default());
    let mut dispatcher = per_batch(Arc::clone(&counts));
    println!("AsyncDispatcher::per_batch: a future for each batch");
    let batched_lines = drive(&program, &mut dispatcher, &counts).await?;
    if batched_lines != lines {
        return Err("the two dispatchers gave different output".into());
    }
    println!("  the script printed the same {} lines", lines.len());
    Ok(())
}

/// Runs the script to its end with `dispatcher` and reports what the
/// dispatcher saw and how long it took; returns the script's output.
async fn drive(
    program: &Program,
    dispatcher: &mut AsyncDispatcher,
    counts: &Counts,
) -> Result<Vec<String>, Box<dyn Error>> {
    let run = program.start(vec![PAGES.to_string()]);
    let started = Instant::now();
    let driven = spool::drive_async(run, CaptureOutput::default(), dispatcher).await;
    let elapsed = started.elapsed();
    driven.result?;
    let sequential = FETCH_TIME * PAGES as u32;
    println!("  dispatcher: {}", counts.describe());
    println!(
        "  elapsed: {} ms for {PAGES} fetches of {} ms each ({} ms one after the other)",
        elapsed.as_millis(),
        FETCH_TIME.as_millis(),
        sequential.as_millis()
    );
    Ok(driven.output.lines)
}

/// A dispatcher answering each request in a future of its own.
fn per_request(counts: Arc<Counts>) -> AsyncDispatcher {
    AsyncDispatcher::per_request(move |request: IoRequest| {
        let counts = Arc::clone(&counts);
        Counts::add(&counts.futures, 1);
        Counts::add(&counts.requests, 1);
        async move {
            let url: String = request.arg(0).map_err(|error| error.to_string())?;
            match &*request.op {
                "fetch" => fetch(url).await,
                "views" => {
                    Counts::add(&counts.queries, 1);
                    Ok(Data::Int(view_count(&url)))
                }
                other => Err(format!("no operation `{other}`")),
            }
        }
    })
}

/// A dispatcher answering each batch in one future: the batch's fetches
/// run together, and its `views` lookups are answered by one query.
fn per_batch(counts: Arc<Counts>) -> AsyncDispatcher {
    AsyncDispatcher::per_batch(move |batch: Vec<IoRequest>| {
        let counts = Arc::clone(&counts);
        Counts::add(&counts.batches, 1);
        Counts::add(&counts.futures, 1);
        Counts::add(&counts.requests, batch.len());
        async move {
            let (lookups, others): (Vec<IoRequest>, Vec<IoRequest>) = batch
                .into_iter()
                .partition(|request| &*request.op == "views");
            let mut completions = if lookups.is_empty() {
                Vec::new()
            } else {
                Counts::add(&counts.queries, 1);
                views_query(&lookups)
            };
            completions.extend(fetch_all(others).await);
            completions
        }
    })
}

/// Fetches every request's page at once; answers when all have arrived.
async fn fetch_all(requests: Vec<IoRequest>) -> Vec<Completion> {
    let mut running = tokio::task::JoinSet::new();
    for request in requests {
        running.spawn(async move {
            let result = match request.arg::<String>(0) {
                Ok(url) => fetch(url).await,
                Err(error) => Err(error.to_string()),
            };
            Completion {
                id: request.id,
                result,
            }
        });
    }
    let mut completions = Vec::new();
    while let Some(joined) = running.join_next().await {
        completions.extend(joined.ok());
    }
    completions
}

/// One lookup for every `views` request of a batch (a `SELECT … WHERE
/// url IN (…)` against a real database).
fn views_query(requests: &[IoRequest]) -> Vec<Completion> {
    requests
        .iter()
        .map(|request| Completion {
            id: request.id,
            result: request
                .arg::<String>(0)
                .map(|url| Data::Int(view_count(&url)))
                .map_err(|error| error.to_string()),
        })
        .collect()
}

/// The simulated page at `url`, after [`FETCH_TIME`].
async fn fetch(url: String) -> IoResult {
    tokio::time::sleep(FETCH_TIME).await;
    let page = url.rsplit('/').next().unwrap_or_default().to_string();
    Ok(Data::str(format!("<page {page}>")))
}

/// A made-up, stable view count for `url`.
fn view_count(url: &str) -> i64 {
    url.bytes().map(i64::from).sum::<i64>() % 1000
}
