//! Durable appends to the embedded event log, against a baseline measured in
//! the same run on the same disk: one `write` + `fdatasync` per event, which
//! is what durability costs without group commit.
//!
//! Usage: log-append [SECONDS_PER_CASE] [DIR]   (DIR defaults to a temp dir)

use anyhow::Result;
use bytes::Bytes;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use weft_eventbus::EventLog;
use weft_eventbus::log::embedded::{EmbeddedConfig, EmbeddedLog};

/// A CloudEvent of a typical size (~250 bytes in structured JSON).
fn event() -> Bytes {
    Bytes::from(format!(
        r#"{{"specversion":"1.0","id":"{}","source":"/bench","type":"com.example.bench","datacontenttype":"application/json","data":{{"user":"u-1","page":"/checkout","items":3,"pad":"{}"}}}}"#,
        fastrand_id(),
        "x".repeat(60)
    ))
}

fn fastrand_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Events/s from `tasks` concurrent producers, each appending `batch` at a time.
async fn run(log: Arc<EmbeddedLog>, topic: &str, tasks: usize, batch: usize, secs: f64) -> Result<f64> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (log, done, topic) = (log.clone(), done.clone(), topic.to_string());
        handles.push(tokio::spawn(async move {
            while Instant::now() < until {
                let records: Vec<Bytes> = (0..batch).map(|_| event()).collect();
                log.append(&topic, records).await?;
                done.fetch_add(batch as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    for h in handles {
        h.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// The baseline: one write and one fdatasync per event, one writer.
fn fsync_each(dir: &std::path::Path, secs: f64) -> Result<f64> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("baseline.log"))?;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while Instant::now() < until {
        f.write_all(&event())?;
        f.sync_data()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let tmp = tempfile::tempdir()?;
    let dir = args.next().map_or_else(|| tmp.path().to_path_buf(), std::path::PathBuf::from);
    let log = Arc::new(EmbeddedLog::open(dir.join("log"), EmbeddedConfig::default())?);
    log.ensure_topic("bench").await?;
    println!("embedded event log, durable appends, {secs} s per case, {} cores, dir {}", num_cpus(), dir.display());
    let base = fsync_each(&dir, secs)?;
    println!("{:<44} {:>12.0} events/s", "baseline: write + fdatasync per event", base);
    for (tasks, batch) in [(1, 1), (64, 1), (256, 1), (1, 100), (8, 100)] {
        let rate = run(log.clone(), "bench", tasks, batch, secs).await?;
        let label = format!("weft log: {tasks} producers x batches of {batch}");
        println!("{label:<44} {rate:>12.0} events/s   {:>7.1}x baseline", rate / base);
    }
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
