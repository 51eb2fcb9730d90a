//! OTLP/JSON as the specification writes it (IDs in hex, 64-bit integers as strings) is decoded
//! to the right IDs and values, for traces and logs.

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

#[test]
fn otlp_json_logs_are_decoded_and_bad_bodies_refused() {
    let receiver = OtlpReceiver::start().unwrap();
    // As the specification's examples write it: upper-case hex IDs are fine too.
    let body = serde_json::json!({
        "resourceLogs": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "billing"}},
                {"key": "service.version", "value": {"stringValue": "2.1.0"}}
            ]},
            "scopeLogs": [{
                "scope": {"name": "billing::invoice", "version": "1.0.0"},
                "logRecords": [{
                    "timeUnixNano": "1544712660300000000",
                    "observedTimeUnixNano": "1544712660300000001",
                    "severityNumber": 17,
                    "severityText": "ERROR",
                    "traceId": "5B8EFFF798038103D269B633813FC60C",
                    "spanId": "EEE19B7EC3C1B174",
                    "eventName": "invoice.failed",
                    "body": {"stringValue": "card declined"},
                    "attributes": [
                        {"key": "attempt", "value": {"intValue": "3"}},
                        {"key": "retry", "value": {"boolValue": true}}
                    ]
                }, {
                    "severityNumber": 9,
                    "body": {"stringValue": "outside any span"}
                }]
            }]
        }]
    });
    let response = reqwest::blocking::Client::new()
        .post(receiver.http_logs_endpoint())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    // A JSON request gets a JSON response.
    let answer: serde_json::Value = serde_json::from_str(&response.text().unwrap()).unwrap();
    assert!(answer.is_object(), "{answer}");

    let logs = receiver.wait_for_logs(2, Duration::from_secs(5));
    assert_eq!(logs.len(), 2, "{logs:#?}");
    let failed = &logs[0];
    assert_eq!(failed.body, "card declined");
    assert_eq!(failed.severity_number, 17);
    assert_eq!(failed.severity_text, "ERROR");
    assert_eq!(failed.trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(failed.span_id, "eee19b7ec3c1b174");
    assert_eq!(failed.event_name, "invoice.failed");
    assert_eq!(failed.time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(failed.attributes["attempt"], "3");
    assert_eq!(failed.attributes["retry"], "true");
    assert_eq!(failed.service_name, "billing");
    assert_eq!(failed.resource["service.version"], "2.1.0");
    assert_eq!(failed.scope_name, "billing::invoice");
    let plain = &logs[1];
    assert_eq!(plain.body, "outside any span");
    assert_eq!(plain.severity_number, 9);
    assert_eq!((plain.trace_id.as_str(), plain.span_id.as_str()), ("", ""));
    assert_eq!(plain.time_unix_nano, 0);
    assert_eq!(plain.scope_name, "billing::invoice");
    assert_eq!(plain.service_name, "billing");

    // Bodies that do not decode, as JSON or as protobuf, are refused with 400; nothing recorded.
    for (content_type, bad) in [
        ("application/json", br#"{"resourceLogs": 5}"#.to_vec()),
        ("application/json", b"not json".to_vec()),
        ("application/x-protobuf", vec![0xff, 0xff, 0xff]),
    ] {
        let response = reqwest::blocking::Client::new()
            .post(receiver.http_logs_endpoint())
            .header("content-type", content_type)
            .body(bad)
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{content_type}");
    }
    assert_eq!(receiver.logs().len(), 2);
    assert_eq!(receiver.requests(), 1);
}
