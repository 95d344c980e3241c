//! Finding 9: every request is bounded. Resources above the operator's caps, sizes that
//! overflow, huge or malformed environments, NUL bytes: a 400 that names the problem, the
//! same rules for create and exec, and nothing created.

use cairn_test_support::{assert_error, Via};

use super::{assert_healthy, tcp_daemon};

#[test]
fn out_of_range_requests_get_a_400_and_create_nothing() {
    let d = tcp_daemon(&[
        "--max-memory",
        "2G",
        "--max-cpus",
        "2",
        "--max-pids",
        "4096",
    ]);
    let alice = d.token("alice");
    let create =
        |body: String| d.http(Via::Tcp, "POST", "/v1/sandboxes", Some(&alice), Some(&body));
    let base = |extra: &str| format!(r#"{{"image":"base","runtime":"runc",{extra}}}"#);
    let huge_env: Vec<String> = (0..150_000).map(|i| format!("K{i}=v")).collect();
    let cases: Vec<(String, &str)> = vec![
        (base(r#""memory":"16777215T""#), "invalid size"),
        (base(r#""memory":"16000T""#), "--max-memory"),
        (base(r#""memory":"3G""#), "--max-memory"),
        (base(r#""cpus":1024"#), "--max-cpus"),
        (base(r#""cpus":2.5"#), "--max-cpus"),
        (base(r#""pids_limit":4294967295"#), "--max-pids"),
        (base(r#""pids_limit":4294967296"#), "invalid request body"),
        (
            base(&format!(
                r#""env":{}"#,
                serde_json::to_string(&huge_env).unwrap()
            )),
            "at most 1024 variables",
        ),
        (base(r#""env":["A=x\u0000y"]"#), "NUL"),
        (base(r#""env":["bad key=1"]"#), "KEY=VALUE"),
        (
            base(r#""workdir":"/a\u0000b""#),
            "invalid working directory",
        ),
        (
            base(&format!(r#""workdir":"/{}""#, "a".repeat(5000))),
            "invalid working directory",
        ),
        (
            base(r#""idle_timeout":"99999d""#),
            "between 1 second and 30 days",
        ),
        (
            base(&format!(
                r#""publish":{}"#,
                serde_json::to_string(
                    &(0..100)
                        .map(|i| format!("{}:80", 20000 + i))
                        .collect::<Vec<_>>()
                )
                .unwrap()
            )),
            "at most 64",
        ),
    ];
    for (body, mentions) in &cases {
        let resp = create(body.clone());
        assert_error(&resp, 400, "invalid_argument", mentions);
        // The answer quotes the caller's input briefly, never whole.
        assert!(resp.1.to_string().len() < 2000, "{}", resp.1);
    }
    let (_, list) = d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(&alice), None);
    assert_eq!(list, serde_json::json!([]), "nothing was created");
    // Within the caps it works.
    let (code, sbx) = create(base(r#""memory":"2G","cpus":2,"pids_limit":4096"#));
    assert_eq!(code, 201, "{sbx}");
    let id = sbx["id"].as_str().unwrap();
    // Exec is held to the same rules as create.
    let exec = |body: &str| {
        d.http(
            Via::Tcp,
            "POST",
            &format!("/v1/sandboxes/{id}/exec"),
            Some(&alice),
            Some(body),
        )
    };
    for (body, mentions) in [
        (r#"{"cmd":["true"],"env":["bad key=1"]}"#, "KEY=VALUE"),
        (r#"{"cmd":["true"],"env":["A=x\u0000y"]}"#, "NUL"),
        (r#"{"cmd":["echo","a\u0000b"]}"#, "NUL"),
        (
            r#"{"cmd":["true"],"workdir":"/tmp\u0000x"}"#,
            "invalid working directory",
        ),
        (
            r#"{"cmd":["true"],"timeout_secs":9223372036854775807}"#,
            "between 1 second and 30 days",
        ),
        (r#"{"cmd":[]}"#, "no command"),
    ] {
        assert_error(&exec(body), 400, "invalid_argument", mentions);
    }
    let env = serde_json::to_string(&huge_env).unwrap();
    assert_error(
        &exec(&format!(r#"{{"cmd":["true"],"env":{env}}}"#)),
        400,
        "invalid_argument",
        "at most 1024 variables",
    );
    // The sandbox and the daemon are fine.
    let r = d.cairn_env(
        &["exec", id, "echo fine"],
        &[
            ("CAIRN_HOST", &format!("http://{}", d.tcp.as_ref().unwrap())),
            ("CAIRN_TOKEN", &alice),
        ],
    );
    assert_eq!(r.ok(), "fine");
    assert_healthy(&d);
}
