//! Finding 4: errors name only the caller's own objects, and an internal error is a
//! generic message with a reference whose details only the log has.

use cairn_test_support::{assert_error, Daemon, PrivateNet, Via};

use super::{assert_healthy, tcp_daemon};

fn create(d: &Daemon, token: Option<&str>, body: &str) -> String {
    let via = if token.is_some() { Via::Tcp } else { Via::Unix };
    let (code, sbx) = d.http(via, "POST", "/v1/sandboxes", token, Some(body));
    assert_eq!(code, 201, "{sbx}");
    sbx["id"].as_str().unwrap().to_string()
}

#[test]
fn an_image_in_use_names_only_the_callers_sandboxes_and_snapshots() {
    let d = tcp_daemon(&[]);
    let alice = d.token("alice");
    let bob = d.token("bob");
    let a = create(&d, Some(&alice), r#"{"image":"base","runtime":"runc"}"#);
    let b = create(&d, Some(&bob), r#"{"image":"base","runtime":"runc"}"#);
    let (code, snap) = d.http(
        Via::Tcp,
        "POST",
        &format!("/v1/sandboxes/{b}/snapshots"),
        Some(&bob),
        Some(r#"{"name":"kept"}"#),
    );
    assert_eq!(code, 201, "{snap}");
    let mine = create(&d, None, r#"{"image":"base","runtime":"runc"}"#);
    // The operator owns base: told of their own sandbox, and only counts of the others.
    let resp = d.http(Via::Unix, "DELETE", "/v1/images/base", None, None);
    assert_error(&resp, 409, "conflict", &format!("your {mine}"));
    let text = resp.1.to_string();
    assert!(
        text.contains("3 sandbox(es) or snapshot(s) of other accounts"),
        "{text}"
    );
    for other in [a.as_str(), b.as_str(), snap["id"].as_str().unwrap()] {
        assert!(!text.contains(other), "{text}");
    }
    // A tenant is not told the image exists as something they could remove.
    let resp = d.http(Via::Tcp, "DELETE", "/v1/images/base", Some(&alice), None);
    assert_error(&resp, 404, "not_found", "you have no image named 'base'");
    assert!(!resp.1.to_string().contains(&b), "{resp:?}");
    assert_healthy(&d);
}

#[test]
fn internal_errors_carry_a_reference_and_no_detail() {
    // A runtime that fails every command: creating a gVisor sandbox is an internal error.
    let work = tempfile::tempdir().unwrap();
    let fake = work.path().join("runsc");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"runsc: broken at $CAIRN_HOME\" >&2\nexit 3\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let d = tcp_daemon(&["--runsc", fake.to_str().unwrap()]);
    let alice = d.token("alice");
    let resp = d.http(
        Via::Tcp,
        "POST",
        "/v1/sandboxes",
        Some(&alice),
        Some(r#"{"image":"base","runtime":"gvisor"}"#),
    );
    assert_error(&resp, 500, "internal", "reference");
    let text = resp.1.to_string();
    let home = d.home.display().to_string();
    assert!(!text.contains(&home) && !text.contains("runsc"), "{text}");
    // The reference leads the operator to the details in the log.
    let msg = resp.1["error"]["message"].as_str().unwrap();
    let reference = msg
        .split("reference ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap();
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(reference))
        .unwrap_or_else(|| panic!("reference {reference} is not in the log:\n{log}"));
    assert!(line.contains("broken at"), "{line}");
    // Nothing was left: the create rolled back.
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&alice), None);
    assert_eq!(list, serde_json::json!([]));
    assert_healthy(&d);
}

#[test]
fn a_taken_host_port_does_not_name_another_tenants_sandbox() {
    let net = PrivateNet::next("cse", 230);
    let d = tcp_daemon(&net.args());
    let alice = d.token("alice");
    let bob = d.token("bob");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let body = format!(r#"{{"image":"base","runtime":"runc","publish":["{port}:80"]}}"#);
    let a = create(&d, Some(&alice), &body);
    let resp = d.http(Via::Tcp, "POST", "/v1/sandboxes", Some(&bob), Some(&body));
    assert_error(&resp, 409, "conflict", "already taken by another sandbox");
    assert!(!resp.1.to_string().contains(&a), "{resp:?}");
    // Alice herself is told which of hers holds it.
    let resp = d.http(Via::Tcp, "POST", "/v1/sandboxes", Some(&alice), Some(&body));
    assert_error(&resp, 409, "conflict", &format!("your sandbox {a}"));
    let (code, _) = d.http(
        Via::Tcp,
        "DELETE",
        &format!("/v1/sandboxes/{a}?force=true"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 204);
    assert_healthy(&d);
}
