//! Findings 6 and 7: images belong to their account (the operator publishes), and a name
//! can never stand for another object's id.

use std::process::Command;

use cairn_test_support::{assert_error, base_rootfs, Daemon, Via};

use super::{assert_healthy, tcp_daemon};

/// Uploads the busybox root filesystem as image `name` for `token`; (status, body).
fn upload(d: &Daemon, token: &str, name: &str) -> (u16, serde_json::Value) {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("img.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(base_rootfs())
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    d.curl(
        Via::Tcp,
        &format!("/v1/images?name={name}"),
        Some(token),
        &["--data-binary".into(), format!("@{}", archive.display())],
    )
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn images_belong_to_their_account_and_only_the_operator_publishes() {
    let d = tcp_daemon(&[]);
    let alice = d.token("alice");
    let bob = d.token("bob");
    let (code, tools) = upload(&d, &alice, "tools");
    assert_eq!(code, 201, "{tools}");
    let tools_id = tools["id"].as_str().unwrap().to_string();
    // Bob sees only the public base; he cannot use, remove or publish alice's image.
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/images", Some(&bob), None);
    assert_eq!(names(&list), ["base"]);
    assert_eq!(
        list[0]["source"], "",
        "a public image's host path is the operator's"
    );
    for image in ["tools", tools_id.as_str()] {
        let body = serde_json::json!({ "image": image, "runtime": "runc" }).to_string();
        assert_error(
            &d.http(Via::Tcp, "POST", "/v1/sandboxes", Some(&bob), Some(&body)),
            404,
            "not_found",
            "no image named",
        );
        assert_error(
            &d.http(
                Via::Tcp,
                "DELETE",
                &format!("/v1/images/{image}"),
                Some(&bob),
                None,
            ),
            404,
            "not_found",
            "you have no image",
        );
    }
    // Nor the operator's public base.
    assert_error(
        &d.http(Via::Tcp, "DELETE", "/v1/images/base", Some(&bob), None),
        404,
        "not_found",
        "you have no image",
    );
    // Names are per account: bob may have his own "tools", and sees his own first.
    let (code, bobs) = upload(&d, &bob, "tools");
    assert_eq!(code, 201, "{bobs}");
    assert_ne!(bobs["id"], tools["id"]);
    // Tenants cannot publish, not even their own image, nor import it as public.
    assert_error(
        &d.http(
            Via::Tcp,
            "POST",
            "/v1/images/tools/publish",
            Some(&alice),
            Some(r#"{"public":true}"#),
        ),
        403,
        "forbidden",
        "operator",
    );
    let resp = d.curl(
        Via::Tcp,
        "/v1/images?name=pub&public=true",
        Some(&alice),
        &["--data-binary".into(), "x".into()],
    );
    assert_error(&resp, 403, "forbidden", "operator");
    // The operator publishes alice's image by id; bob keeps seeing his own "tools" by name,
    // and alice's by id; a second public image cannot take a public name.
    let (code, img) = d.http(
        Via::Unix,
        "POST",
        &format!("/v1/images/{tools_id}/publish"),
        None,
        Some(r#"{"public":true}"#),
    );
    assert_eq!(code, 200, "{img}");
    assert_eq!(img["public"], true);
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/images", Some(&bob), None);
    assert_eq!(names(&list), ["base", "tools", "tools"]);
    let body = serde_json::json!({ "image": tools_id, "runtime": "runc" }).to_string();
    let (code, sbx) = d.http(Via::Tcp, "POST", "/v1/sandboxes", Some(&bob), Some(&body));
    assert_eq!(code, 201, "{sbx}");
    assert_error(
        &d.http(
            Via::Unix,
            "POST",
            &format!("/v1/images/{}/publish", bobs["id"].as_str().unwrap()),
            None,
            Some(r#"{"public":true}"#),
        ),
        409,
        "conflict",
        "public image named 'tools' already exists",
    );
    // Alice still owns it: bob's sandbox keeps it in use, and she is told of it without
    // learning bob's sandbox.
    let resp = d.http(Via::Tcp, "DELETE", "/v1/images/tools", Some(&alice), None);
    assert_error(
        &resp,
        409,
        "conflict",
        "1 sandbox(es) or snapshot(s) of other accounts",
    );
    assert!(
        !resp.1.to_string().contains(sbx["id"].as_str().unwrap()),
        "{resp:?}"
    );
    // Bob removes his own image; alice's is untouched.
    let (code, _) = d.http(Via::Tcp, "DELETE", "/v1/images/tools", Some(&bob), None);
    assert_eq!(code, 204);
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/images", Some(&alice), None);
    assert_eq!(names(&list), ["base", "tools"]);
    assert_eq!(list[1]["owned"], true);
    assert_healthy(&d);
}

#[test]
fn names_shaped_like_ids_are_refused_and_an_id_always_means_that_object() {
    let d = tcp_daemon(&[]);
    let alice = d.token("alice");
    let create = |body: &str| d.http(Via::Tcp, "POST", "/v1/sandboxes", Some(&alice), Some(body));
    let (code, x1) = create(r#"{"image":"base","runtime":"runc"}"#);
    assert_eq!(code, 201, "{x1}");
    let x1 = x1["id"].as_str().unwrap().to_string();
    // The review's attack: a second sandbox named like the first one's id.
    for name in [x1.as_str(), "sbx-deadbeef", "img-0000abcd", "snap-12345678"] {
        let body = serde_json::json!({ "image": "base", "runtime": "runc", "name": name });
        assert_error(
            &create(&body.to_string()),
            400,
            "invalid_argument",
            "shape of an id",
        );
    }
    let (code, x2) = create(r#"{"image":"base","runtime":"runc","name":"x2"}"#);
    assert_eq!(code, 201, "{x2}");
    let x2 = x2["id"].as_str().unwrap().to_string();
    // Snapshots and images refuse such names too.
    assert_error(
        &d.http(
            Via::Tcp,
            "POST",
            &format!("/v1/sandboxes/{x1}/snapshots"),
            Some(&alice),
            Some(r#"{"name":"snap-0badf00d"}"#),
        ),
        400,
        "invalid_argument",
        "shape of an id",
    );
    assert_error(
        &upload(&d, &alice, "img-1234abcd"),
        400,
        "invalid_argument",
        "shape of an id",
    );
    // Deleting by X1's id destroys X1 and nothing else.
    let (code, _) = d.http(
        Via::Tcp,
        "DELETE",
        &format!("/v1/sandboxes/{x1}?force=true"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 204);
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&alice), None);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [x2.as_str()]);
    assert_healthy(&d);
}
