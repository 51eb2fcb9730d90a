//! Runs the example in smoke-test mode (one request to itself) and checks its lines.

use serde_json::Value;

#[test]
fn every_line_of_the_request_carries_its_id() {
    // JSON lines (staging), with the outputs the profile opens kept out of the source tree.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_example-axum-service"))
        .current_dir(dir.path())
        .env("SMOKE_TEST", "1")
        .env("STRATA_ENV", "staging")
        .env_remove("RUST_LOG")
        .env_remove("STRATA_CONFIG")
        .output()
        .expect("the example runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let request: Vec<&Value> = lines.iter().filter(|l| l.get("span").is_some()).collect();
    assert!(request.len() >= 5, "{lines:?}");
    for l in &request {
        assert_eq!(l["request_id"], "smoke-1", "{l}");
    }
    let messages: Vec<&str> = request
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    for m in [
        "looking the user up",
        "query",
        "warming the cache",
        "scoring on a blocking thread",
        "request completed",
    ] {
        assert!(messages.contains(&m), "{m:?} missing from {messages:?}");
    }
    let access = request
        .iter()
        .find(|l| l["event"] == "http_request")
        .unwrap();
    assert_eq!(access["route"], "/users/{id}");
    assert_eq!(access["user_id"], 42);
    assert_eq!(access["status_code"], 200);
}
