//! Diagnosing a queue backup: jobs arrive faster than one worker handles them, the depth
//! climbs, and jobs wait longer and longer; a few jobs fail, are retried, and end in the
//! dead-letter queue. `Metrics::worker` gives the depth, wait time, processed / failed /
//! retried / dead-lettered counts, and each job's span its duration; more workers drain it.
//!
//! Run with `cargo run -p example-guide --bin diagnose_queue`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::metrics::WorkerMetrics;
use strata::request_id::JobContext;
use tokio::sync::{Mutex, mpsc};
use tracing::{Instrument, info, warn};

struct Job {
    id: u64,
    enqueued: Instant,
    context: JobContext,
}

type Queue = Arc<Mutex<mpsc::Receiver<Job>>>;

/// A worker: takes a job, runs it in the job's span (5 ms), retries a failure twice.
async fn worker(queue: Queue, emails: WorkerMetrics) {
    loop {
        let next = {
            let mut rx = queue.lock().await;
            let job = rx.recv().await;
            emails.set_depth(rx.len() as i64);
            job
        };
        let Some(job) = next else { return };
        emails.waited(job.enqueued.elapsed());
        let span = job.context.span("send_email");
        async {
            for attempt in 1..=3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if job.id % 50 != 0 {
                    emails.processed();
                    return;
                }
                if attempt < 3 {
                    emails.retried();
                    warn!(job_id = job.id, attempt, "mail server refused; retrying");
                }
            }
            emails.failed();
            emails.dead_lettered();
            tracing::error!(
                job_id = job.id,
                "mail server refused 3 times: dead-lettered"
            );
        }
        .instrument(span)
        .await;
    }
}

#[tokio::main]
async fn main() {
    example_guide::workdir("diagnose_queue");
    let mut builder = strata::builder().with_service("mailer");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();
    let metrics = guard.metrics().expect("metrics are on");
    let emails = metrics.worker("emails");

    let (tx, rx) = mpsc::channel::<Job>(10_000);
    let queue: Queue = Arc::new(Mutex::new(rx));
    let mut workers = vec![tokio::spawn(worker(Arc::clone(&queue), emails.clone()))];
    let (producer_metrics, sampler) = (emails.clone(), metrics.clone());
    let producer = tokio::spawn(async move {
        // 300 jobs, one every millisecond or two: more than twice what one worker can do.
        for id in 1..=300 {
            let job = Job {
                id,
                enqueued: Instant::now(),
                context: JobContext::capture(),
            };
            let _ = tx.send(job).await;
            producer_metrics.set_depth((tx.max_capacity() - tx.capacity()) as i64);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    // What a dashboard would plot: the depth, every 50 ms.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let x = sampler.encode();
        let depth = example_guide::sample(&x, "queue_depth", &[("queue", "emails")]).unwrap_or(0.0);
        let done = example_guide::sample(&x, "jobs_processed_total", &[("queue", "emails")]);
        info!(
            event = "queue_sample",
            t_ms = started.elapsed().as_millis() as u64,
            depth,
            processed = done.unwrap_or(0.0),
            workers = workers.len(),
            "queue depth"
        );
        if producer.is_finished() && workers.len() == 1 {
            // The backlog is obvious: scale out to 8 workers.
            for _ in 0..7 {
                workers.push(tokio::spawn(worker(Arc::clone(&queue), emails.clone())));
            }
        }
        if producer.is_finished() && depth == 0.0 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    // The producer is done (its sender dropped): the workers finish what they hold and stop.
    for w in workers {
        let _ = w.await;
    }
    std::fs::write("metrics.txt", sampler.encode()).expect("writable");
    eprintln!(
        "[guide] look at: the queue_sample lines — depth climbs while one worker handles less \
         than half of the load, then falls to 0 with 8; metrics.txt has queue_depth, \
         job_wait_seconds, jobs_processed/failed/retried/dead_lettered_total{{queue=\"emails\"}} and \
         job_duration_seconds{{job_name=\"send_email\"}}. QueueBacklog alerts at > 1000 for 10 min"
    );
}
