//! The built-in load driver: customers placing orders for a while, with mixed outcomes —
//! successes, invalid orders, unknown products, a payment gateway that is slow at times and
//! down for a moment.

use std::time::{Duration, Instant};

use serde_json::json;
use tracing::Instrument;

use crate::shop::call;

/// What the driver saw.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// Latency of every order, in milliseconds.
    pub(crate) latencies_ms: Vec<f64>,
    /// Responses by status code.
    pub(crate) statuses: std::collections::BTreeMap<u16, u64>,
    /// Calls that got no response.
    pub(crate) failed_calls: u64,
}

impl Results {
    /// All orders sent.
    pub(crate) fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.failed_calls
    }

    /// Orders answered 5xx or not at all.
    pub(crate) fn errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.failed_calls
    }

    /// The `q` quantile of the latencies (0 to 1), nearest rank.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        let mut v = self.latencies_ms.clone();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    fn merge(&mut self, other: Results) {
        self.latencies_ms.extend(other.latencies_ms);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.failed_calls += other.failed_calls;
    }
}

/// What customer `i`'s `n`th order looks like.
fn order(rng: &mut fastrand::Rng, gateway_down: bool) -> serde_json::Value {
    let roll = rng.u32(0..100);
    let (sku, qty) = match roll {
        0..=7 => (format!("SKU-{}", rng.u32(100..999)), 0), // invalid quantity
        8..=12 => (format!("BOGUS-{}", rng.u32(1..99)), 1), // unknown product
        _ => (format!("SKU-{}", rng.u32(100..999)), rng.u32(1..5)),
    };
    let gateway = if gateway_down {
        "down"
    } else if roll >= 85 {
        "slow"
    } else {
        "ok"
    };
    json!({
        "sku": sku,
        "qty": qty,
        "card_number": "4111 1111 1111 1111",
        "gateway": gateway,
    })
}

/// Runs `customers` concurrent customers against `base` for `duration`; the payment gateway
/// goes down for a moment in the middle.
pub(crate) async fn run(base: String, customers: usize, duration: Duration) -> Results {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let started = Instant::now();
    let outage = (
        duration.mul_f64(0.5),
        duration.mul_f64(0.5) + Duration::from_millis(400),
    );
    let mut tasks = Vec::new();
    for c in 0..customers {
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(c as u64 + 1);
            let mut results = Results::default();
            while started.elapsed() < duration {
                let at = started.elapsed();
                let body = order(&mut rng, at >= outage.0 && at < outage.1);
                let t = Instant::now();
                let answer = call(
                    &client,
                    http::Method::POST,
                    format!("{base}/orders"),
                    Some(body),
                )
                // One trace per order, started by the customer.
                .instrument(tracing::info_span!(parent: None, "place_order", customer = c))
                .await;
                results
                    .latencies_ms
                    .push(t.elapsed().as_secs_f64() * 1000.0);
                match answer {
                    Ok((status, _)) => *results.statuses.entry(status).or_default() += 1,
                    Err(_) => results.failed_calls += 1,
                }
                tokio::time::sleep(Duration::from_millis(rng.u64(5..40))).await;
            }
            results
        }));
    }
    let mut all = Results::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.merge(r);
        }
    }
    all
}
