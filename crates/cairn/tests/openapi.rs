//! The API document against a real cairnd (issue 20): every operation docs/openapi.json
//! describes is served, answers what the document says to the requests any client can get
//! wrong — no token (401, and only where the document asks for the bearer scheme), an object
//! that does not exist (404), a JSON body of another type (415) — with the JSON error body,
//! and each of those statuses is among the operation's documented responses.

#![allow(clippy::unwrap_used)]

use cairn_test_support::{Daemon, Via};
use serde_json::Value;

fn committed() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every operation: (method, path template, the operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    ops
}

/// The template with objects that do not exist.
fn concrete(path: &str) -> String {
    let id = if path.starts_with("/v1/snapshots") || path.starts_with("/v1/remote") {
        "snap-00000000"
    } else {
        "sbx-00000000"
    };
    path.replace("{id}", id)
        .replace("{name}", "no-such-image")
        .replace("{pid}", "4242")
        .replace("{token}", "not-a-link")
}

/// A request with `token` (none: no header) and, for operations that take JSON, `{}` sent
/// as `content_type`; its status and JSON error code.
fn call(
    d: &Daemon,
    method: &str,
    path: &str,
    op: &Value,
    token: Option<&str>,
    content_type: &str,
) -> (u16, String) {
    let mut args: Vec<String> = vec!["-X".into(), method.into()];
    let json = op["requestBody"]["content"]["application/json"].is_object();
    if json {
        args.extend([
            "-H".into(),
            format!("Content-Type: {content_type}"),
            "--data-binary".into(),
            "{}".into(),
        ]);
    }
    let (status, body) = d.curl(Via::Tcp, &concrete(path), token, &args);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code)
}

fn documents(op: &Value, status: u16) -> bool {
    let r = &op["responses"][status.to_string()];
    r.is_object()
        && r["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"
}

#[test]
fn every_operation_answers_the_errors_the_document_lists() {
    let d = Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        true,
        &[],
    );
    let alice = d.token("alice");
    let doc = committed();
    let ops = operations(&doc);
    assert!(ops.len() >= 40, "{} operations", ops.len());
    let mut wrong = Vec::new();
    for (method, path, op) in &ops {
        let id = op["operationId"].as_str().unwrap();
        let public = op["security"].as_array().unwrap().is_empty();

        // No token.
        let (status, code) = call(&d, method, path, op, None, "application/json");
        if public {
            if status == 401 {
                wrong.push(format!("{id}: documented without a token, answered 401"));
            }
        } else if status != 401 || code != "unauthenticated" || !documents(op, 401) {
            wrong.push(format!("{id}: no token gave {status} {code}"));
        }

        // An object that does not exist: 404 (a signed link: 403), or a documented error
        // found first (a body or query this blind request gets wrong, a missing remote);
        // except the listing of a sandbox's snapshots, which lists a destroyed sandbox's by
        // the id or name it had, so that any sandbox reference answers a list.
        if path.contains('{') && id != "listSandboxSnapshots" {
            let (status, code) = call(&d, method, path, op, Some(&alice), "application/json");
            let found_first = match status {
                // (attach: this request is no WebSocket upgrade)
                400 => {
                    op["requestBody"].is_object()
                        || op["parameters"].as_array().unwrap().len() > 1
                        || id == "attachSandbox"
                }
                503 => code == "unavailable",
                403 => public,
                _ => false,
            };
            if (status != 404 && !found_first) || !documents(op, status) || code.is_empty() {
                wrong.push(format!("{id}: a missing object gave {status} {code}"));
            }
        }

        // A JSON body of another type, where only JSON is taken.
        let content = op["requestBody"]["content"].as_object();
        if content.is_some_and(|c| c.keys().all(|media| media == "application/json")) {
            let (status, code) = call(&d, method, path, op, Some(&alice), "text/plain");
            if status != 415 || code != "unsupported_media_type" || !documents(op, 415) {
                wrong.push(format!("{id}: a text/plain body gave {status} {code}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the document and cairnd disagree:\n{}",
        wrong.join("\n")
    );
}
