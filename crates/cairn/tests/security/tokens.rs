//! Finding 10: tokens can be listed, revoked and made to expire; only their hashes are
//! stored; a revoked or expired token gets 401 at once; only an admin token acts as the
//! operator.

use std::time::Duration;

use cairn_test_support::{assert_error, base_rootfs, Via};
use sha2::{Digest, Sha256};

use super::{assert_healthy, tcp_daemon};

#[test]
fn tokens_are_listed_revoked_and_expire_and_only_hashes_are_kept() {
    let d = tcp_daemon(&[]);
    let alice = d.token("alice");
    let short = d.token_with("alice", &["--expires", "3s"]);
    let admin = d.token_with("ops", &["--admin", "--expires", "30d"]);
    for t in [&alice, &short, &admin] {
        let (code, _) = d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(t), None);
        assert_eq!(code, 200);
    }
    // `token ls` shows ids, accounts, roles and states, never a token or its hash.
    let r = d.cairnd(&["token", "ls", "--json"]);
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let ops = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["account"] == "ops")
        .unwrap();
    assert_eq!(
        (ops["role"].as_str(), ops["state"].as_str()),
        (Some("admin"), Some("active"))
    );
    assert!(ops["expires_at"].is_string());
    let stored = std::fs::read(d.home.join("cairn.db")).unwrap();
    for t in [&alice, &short, &admin] {
        let hash = hex::encode(Sha256::digest(t.as_bytes()));
        assert!(
            !r.stdout.contains(t.as_str()) && !r.stdout.contains(&hash),
            "{}",
            r.stdout
        );
        assert!(!String::from_utf8_lossy(&stored).contains(t.as_str()));
    }
    let table = d.cairnd(&["token", "ls"]).ok();
    assert!(
        table.contains("ACCOUNT") && table.contains("admin"),
        "{table}"
    );
    // Revoked: 401 at once, naming the token's id.
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["account"] == "alice" && t["expires_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.cairnd(&["token", "revoke", &id]).ok();
    assert_error(
        &d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&alice), None),
        401,
        "unauthenticated",
        &format!("token {id} was revoked"),
    );
    let r = d.cairnd(&["token", "revoke", "tok-00000000"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no token tok-00000000"), "{r:?}");
    // Expired: 401 once its time has passed.
    std::thread::sleep(Duration::from_millis(3500));
    assert_error(
        &d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&short), None),
        401,
        "unauthenticated",
        "expired",
    );
    let states: Vec<String> = d
        .cairnd(&["token", "ls", "--json", "--account", "alice"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&"revoked".into()) && states.contains(&"expired".into()));
    // Bad expiries are refused.
    for bad in ["soon", "0s", "99999d"] {
        let r = d.cairnd(&["token", "create", "--account", "x", "--expires", bad]);
        assert_ne!(r.code, 0, "{bad}: {r:?}");
        assert!(r.stderr.contains("--expires"), "{r:?}");
    }
    // An admin token acts as the operator: it imports a host path; a user token cannot.
    let body = serde_json::json!({ "name": "ops", "path": base_rootfs().display().to_string() })
        .to_string();
    let bob = d.token("bob");
    assert_error(
        &d.http(Via::Tcp, "POST", "/v1/images", Some(&bob), Some(&body)),
        403,
        "forbidden",
        "operator",
    );
    let (code, img) = d.http(Via::Tcp, "POST", "/v1/images", Some(&admin), Some(&body));
    assert_eq!(code, 201, "{img}");
    assert_healthy(&d);
}
