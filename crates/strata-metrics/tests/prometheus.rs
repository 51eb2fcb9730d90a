//! A real Prometheus (the Debian package) scrapes a running axum service's `/metrics`; after
//! known traffic its query API returns the request counts and a p99 from the histogram.

use std::time::{Duration, Instant};

use strata_metrics::Metrics;
use tracing_subscriber::prelude::*;

mod support;
use support::backend::{self, Daemon};

/// A Prometheus process scraping `target` every second; killed on drop.
struct Prometheus {
    _daemon: Daemon,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Option<Prometheus> {
        if !backend::installed("prometheus") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = backend::free_port();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs: [{{job_name: app, static_configs: [{{targets: [\"{target}\"]}}]}}]\n"
        );
        Some(Prometheus {
            _daemon: backend::prometheus(dir.path(), port, &config, &[]),
            port,
            _dir: dir,
        })
    }

    /// The value of an instant query's first series, if any.
    async fn query(&self, client: &reqwest::Client, q: &str) -> Option<f64> {
        let body: serde_json::Value = client
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", q)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Polls `q` until `done` holds for its value, or 60 s (the first scrape takes seconds).
    async fn wait_for(&self, client: &reqwest::Client, q: &str, done: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = self.query(client, q).await
                && done(v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{q}: last value {:?}",
                self.query(client, q).await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[test]
fn prometheus_scrapes_request_counts_and_a_p99_from_the_histogram() {
    let metrics = Metrics::new();
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(metrics.layer());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let app = axum::Router::new()
                .route("/fast", axum::routing::get(|| async { "ok" }))
                .route(
                    "/slow",
                    axum::routing::get(|| async {
                        tokio::time::sleep(Duration::from_millis(320)).await;
                        "slow"
                    }),
                )
                .layer(strata_request_id::RequestIdLayer::new())
                .route_service("/metrics", metrics.service());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            let Some(prometheus) = Prometheus::start(addr) else {
                return;
            };
            // Known traffic: 90 fast requests and 10 that take 320 ms (concurrently).
            let client = reqwest::Client::new();
            for _ in 0..90 {
                client.get(format!("http://{addr}/fast")).send().await.unwrap();
            }
            let slow: Vec<_> = (0..10)
                .map(|_| tokio::spawn(reqwest::get(format!("http://{addr}/slow"))))
                .collect();
            for s in slow {
                assert!(s.await.unwrap().unwrap().status().is_success());
            }
            let fast = prometheus
                .wait_for(
                    &client,
                    r#"sum(http_server_requests_total{route="/fast",status_class="2xx"})"#,
                    |v| v >= 90.0,
                )
                .await;
            assert_eq!(fast, 90.0);
            let total = prometheus
                .wait_for(
                    &client,
                    r#"sum(http_server_requests_total{route=~"/fast|/slow"})"#,
                    |v| v >= 100.0,
                )
                .await;
            assert_eq!(total, 100.0);
            // 10 % of requests took 320 ms: the p99 lies in the 0.3–0.4 s bucket, the p50 in the
            // first one.
            let q = |p: f64| {
                format!(
                    r#"histogram_quantile({p}, sum by (le) (http_server_request_duration_seconds_bucket{{route=~"/fast|/slow"}}))"#
                )
            };
            let p99 = prometheus.query(&client, &q(0.99)).await.unwrap();
            assert!(p99 > 0.3 && p99 <= 0.4, "p99 {p99}");
            let p50 = prometheus.query(&client, &q(0.5)).await.unwrap();
            assert!(p50 <= 0.005, "p50 {p50}");
            let up = prometheus.query(&client, r#"up{job="app"}"#).await;
            assert_eq!(up, Some(1.0), "the scrape succeeded");
        });
    });
}
