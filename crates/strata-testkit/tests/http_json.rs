//! OTLP/JSON as the specification writes it (IDs in hex) is decoded to the right IDs.

use std::time::Duration;

use strata_testkit::OtlpReceiver;

#[test]
fn otlp_json_bodies_are_decoded_with_hex_ids() {
    let receiver = OtlpReceiver::start().unwrap();
    let body = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "curl"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "parentSpanId": "eee19b7ec3c1b173",
                "name": "from-json",
                "kind": 2,
                "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": "1544712661000000000",
                "attributes": [{"key": "http.route", "value": {"stringValue": "/x"}}]
            }]}]
        }]
    });
    let response = reqwest::blocking::Client::new()
        .post(receiver.http_traces_endpoint())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().unwrap()
    );
    let spans = receiver.wait_for_spans(1, Duration::from_secs(5));
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(spans[0].span_id, "eee19b7ec3c1b174");
    assert_eq!(spans[0].parent_span_id, "eee19b7ec3c1b173");
    assert_eq!(spans[0].service_name, "curl");
    assert_eq!(spans[0].attributes["http.route"], "/x");

    // Garbage is refused with 400, and nothing is recorded.
    let bad = reqwest::blocking::Client::new()
        .post(receiver.http_traces_endpoint())
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(receiver.spans().len(), 1);
}
