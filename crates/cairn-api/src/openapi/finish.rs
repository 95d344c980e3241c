//! The pass over the generated document that adds what every operation shares, so that the
//! annotations need only say what is particular to each: the bearer scheme on every operation
//! (none on a signed link's download), the errors any request can get (401, 500, 503, and 400,
//! 404, 408, 413, 415 where the operation takes a query, a path, a body or only JSON), the error
//! body and a description on every error response, binary schemas for byte bodies; then keys
//! in one order, so that the committed copy changes only when the API does.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use cairn_types::ErrorCode;

/// The operations a caller reaches without a token (the signed URL is the credential).
const PUBLIC: &[&str] = &["downloadSnapshotLink"];

/// The OpenAPI document served at `/v1/openapi.json`.
pub fn document() -> Result<Value, serde_json::Error> {
    let mut doc = serde_json::to_value(super::ApiDoc::openapi())?;
    finish(&mut doc);
    Ok(sorted(doc))
}

/// The document as committed in `docs/openapi.json`: pretty-printed with its keys sorted and
/// a final newline (`cargo run -p cairn-api --example openapi > docs/openapi.json`).
pub fn document_json() -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(&document()?)?;
    text.push('\n');
    Ok(text)
}

/// Adds the shared parts to a generated document.
fn finish(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from 'cairnd token create' (ck_…). Every request over TCP needs one; over the unix socket (the operator) none is needed."
        }
    });
    doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["description"] =
        Value::String(code_description());
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            finish_operation(op);
        }
    }
}

/// Adds the shared parts to one operation.
fn finish_operation(op: &mut Map<String, Value>) {
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let public = PUBLIC.contains(&id.as_str());
    for key in ["summary", "description"] {
        if let Some(text) = op.get(key).and_then(Value::as_str) {
            let text = plain(text, key == "summary");
            op.insert(key.into(), Value::String(text));
        }
    }
    op.insert(
        "security".into(),
        if public {
            json!([])
        } else {
            json!([{ "bearer": [] }])
        },
    );
    let params = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |place: &str| params.iter().any(|p| p["in"] == place);
    // 415 is for bodies that can only be JSON (an image upload takes any type).
    let body = op.get_mut("requestBody").map(|b| {
        binary_contents(b);
        b["content"]
            .as_object()
            .is_some_and(|c| c.keys().all(|media| media == "application/json"))
    });
    let mut statuses = vec![500, 503];
    if !public {
        statuses.push(401);
    }
    if has("query") || body.is_some() {
        statuses.push(400);
    }
    if has("path") {
        statuses.push(404);
    }
    if let Some(json) = body {
        statuses.extend([408, 413]);
        if json {
            statuses.push(415);
        }
    }
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for status in statuses {
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        let code: u16 = status.parse().unwrap_or(0);
        if code >= 400 {
            error_response(code, response);
        } else {
            binary_contents(response);
        }
    }
}

/// A doc comment as plain text: rustdoc's links (`` [`ExecEvent`] ``) as code spans, and a
/// summary on one line.
fn plain(text: &str, one_line: bool) -> String {
    let text = text.replace("[`", "`").replace("`]", "`");
    if one_line {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        text
    }
}

/// An error response: the JSON error body, and a description naming its codes when the
/// annotation gave none.
fn error_response(status: u16, response: &mut Value) {
    let described = response["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty());
    if !described {
        response["description"] = Value::String(status_description(status));
    }
    response["content"] = json!({
        "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } }
    });
}

/// The codes answered with `status`, and when.
fn status_description(status: u16) -> String {
    let codes: Vec<String> = ErrorCode::ALL
        .into_iter()
        .filter(|c| c.status() == status)
        .map(|c| format!("{}: {}", c.as_str(), when(c)))
        .collect();
    codes.join("; ")
}

/// When a code is answered, in a few words (docs/api.md says more).
fn when(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "bad JSON, an unknown field, a bad name, size, path, query value or a value above a cap",
        ErrorCode::Unauthenticated => "no, unknown, revoked or expired token",
        ErrorCode::Forbidden => "only the operator may do this",
        ErrorCode::NotFound => "no such object for this account, or no such path",
        ErrorCode::MethodNotAllowed => "a known path with another method",
        ErrorCode::RequestTimeout => "the request body stopped arriving",
        ErrorCode::Conflict => "a name taken or the wrong state",
        ErrorCode::LimitExceeded => "a limit reached (named with its value)",
        ErrorCode::RuntimeIdentityMismatch => "a stateful snapshot's processes cannot resume on this host (details say why; fresh works)",
        ErrorCode::Busy => "the sandbox cannot be checkpointed at this moment: retry",
        ErrorCode::CheckpointFailed => "the processes hold something a checkpoint cannot save",
        ErrorCode::TooLarge => "a body over a cap",
        ErrorCode::UnsupportedMediaType => "a JSON endpoint got another Content-Type",
        ErrorCode::Internal => "cairnd's own failure; the message carries a reference into its log",
        ErrorCode::Unavailable => "a host prerequisite or service is missing",
        ErrorCode::TooManyConnections => "a connection over a cap",
        ErrorCode::PoolFull => "the storage pool has no room",
    }
}

/// The description of `ErrorDetail.code`: every code, with its status.
fn code_description() -> String {
    let codes: Vec<String> = ErrorCode::ALL
        .into_iter()
        .map(|c| format!("{} ({})", c.as_str(), c.status()))
        .collect();
    format!(
        "Stable machine-readable code, one of: {}. Clients should accept codes they do not know.",
        codes.join(", ")
    )
}

/// Byte bodies (every content but JSON and NDJSON) as binary strings rather than the arrays
/// of integers `Vec<u8>` would give.
fn binary_contents(part: &mut Value) {
    let Some(content) = part.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    for (media, entry) in content.iter_mut() {
        if media.contains("json") {
            continue;
        }
        entry["schema"] = json!({ "type": "string", "format": "binary" });
    }
}

/// `value` with every object's keys in sorted order (whatever order serde_json keeps).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed copy, read when the test runs.
    fn committed() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn the_committed_document_is_the_served_one() {
        let served = document_json().unwrap();
        assert!(
            served == committed(),
            "docs/openapi.json differs from the document cairnd serves: regenerate it with\n\n    cargo run -q -p cairn-api --example openapi > docs/openapi.json\n\n(and regenerate the SDKs: see docs/sdk.md)"
        );
    }

    fn operations(doc: &Value) -> Vec<(String, &Map<String, Value>)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                ops.push((format!("{method} {path}"), op.as_object().unwrap()));
            }
        }
        ops
    }

    #[test]
    fn every_operation_has_a_camel_case_id_a_tag_and_security() {
        let doc = document().unwrap();
        let tags: Vec<&str> = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        let mut ids = std::collections::HashSet::new();
        let ops = operations(&doc);
        assert!(ops.len() >= 40, "{} operations", ops.len());
        for (name, op) in ops {
            let id = op["operationId"].as_str().unwrap();
            assert!(
                id.chars().next().unwrap().is_ascii_lowercase()
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}: operation id {id} is not camelCase"
            );
            assert!(
                ids.insert(id.to_string()),
                "{name}: operation id {id} twice"
            );
            let op_tags = op["tags"].as_array().unwrap();
            assert_eq!(op_tags.len(), 1, "{name}: {op_tags:?}");
            assert!(
                tags.contains(&op_tags[0].as_str().unwrap()),
                "{name}: {op_tags:?}"
            );
            let security = op["security"].as_array().unwrap();
            assert_eq!(security.is_empty(), PUBLIC.contains(&id), "{name}");
        }
        assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
        assert!(!doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .any(|p| p.starts_with("/e2b")));
    }

    #[test]
    fn every_error_response_carries_the_error_body() {
        let doc = document().unwrap();
        for (name, op) in operations(&doc) {
            let responses = op["responses"].as_object().unwrap();
            for status in ["500", "503"] {
                assert!(responses.contains_key(status), "{name}: no {status}");
            }
            for (status, r) in responses {
                if status.as_str() >= "400" {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name} {status}"
                    );
                    assert!(
                        !r["description"].as_str().unwrap().is_empty(),
                        "{name} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn exec_streams_ndjson_events_and_archives_are_binary() {
        let doc = document().unwrap();
        let exec = &doc["paths"]["/v1/sandboxes/{id}/exec"]["post"]["responses"]["200"];
        assert_eq!(
            exec["content"]["application/x-ndjson"]["schema"]["$ref"],
            "#/components/schemas/ExecEvent"
        );
        let export = &doc["paths"]["/v1/snapshots/{id}/archive"]["get"]["responses"]["200"];
        for media in ["application/zstd", "application/gzip"] {
            assert_eq!(
                export["content"][media]["schema"]["format"], "binary",
                "{media}"
            );
        }
    }
}
