//! The web console (issue 20): cairnd serves it at `/ui` on both listeners with strict
//! headers, `cairn ui` logs a local operator in with a code that works once, and
//! `tests/console/test_console.py` drives the page in Debian's chromium with playwright
//! (both installed, pinned, by scripts/setup.sh): log in, see the sandboxes, snapshot, diff,
//! fork, pause, resume, restore and destroy through the buttons, tenant strings as text.
//! Screenshots go to target/console-screenshots/.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_test_support::{assert_error, Daemon, Via};

/// The virtual environment scripts/setup.sh makes, with playwright pinned.
const PYTHON: &str = "/opt/cairn-venv/bin/python";

/// Debian's chromium, which playwright drives (its own browser download is not used).
const CHROMIUM: &str = "/usr/bin/chromium";

fn tcp_daemon() -> Daemon {
    Daemon::tcp_with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    )
}

/// The response headers of `GET URL` (names lower-cased) and its status.
fn headers(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn the_console_is_served_with_strict_headers_on_both_listeners() {
    let d = tcp_daemon();
    let base = format!("http://{}", d.tcp.clone().unwrap());
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/tree.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let (status, h) = headers(&format!("{base}{path}"));
        assert_eq!(status, 200, "{path}: {h}");
        assert!(h.contains(&format!("content-type: {kind}")), "{path}: {h}");
        assert!(
            h.contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{path}: {h}"
        );
        assert!(!h.contains("unsafe-inline"), "{path}: {h}");
        assert!(h.contains("x-content-type-options: nosniff"), "{path}: {h}");
        assert!(h.contains("x-frame-options: deny"), "{path}: {h}");
        assert!(h.contains("referrer-policy: no-referrer"), "{path}: {h}");
    }
    // The page has no inline script and loads nothing from elsewhere.
    let (status, page) = d.http(Via::Tcp, "GET", "/ui", None, None);
    assert_eq!(status, 200);
    let page = page.as_str().unwrap().to_string();
    assert!(page.contains("<script src=\"/ui/app.js\""), "{page}");
    assert!(
        !page.contains("<script>") && !page.contains("http"),
        "{page}"
    );
    // The scripts never hand a string to the HTML parser: every API string goes in as text.
    for script in ["/ui/app.js", "/ui/tree.js"] {
        let (status, js) = d.http(Via::Tcp, "GET", script, None, None);
        assert_eq!(status, 200);
        let js = js.as_str().unwrap().to_string();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "{script} uses {sink}");
        }
    }
    // On the unix socket too, and an unknown asset is the API's JSON 404.
    let (status, page) = d.http(Via::Unix, "GET", "/ui", None, None);
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("Cairn console"));
    let resp = d.http(Via::Tcp, "GET", "/ui/nope.js", None, None);
    assert_error(&resp, 404, "not_found", "no such API path");
}

#[test]
fn cairn_ui_logs_the_operator_in_with_a_code_that_works_once() {
    let d = tcp_daemon();
    let login = d.cairn(&["--json", "ui"]).json();
    let url = login["url"].as_str().unwrap();
    let code = login["code"].as_str().unwrap();
    let addr = d.tcp.clone().unwrap();
    assert_eq!(url, format!("http://{addr}/ui#code={code}"));
    assert!(code.starts_with("cl_") && code.len() == 35, "{code}");
    let text = d.cairn(&["ui"]);
    assert!(text.ok().starts_with(&format!("http://{addr}/ui#code=cl_")));

    // The code becomes a token of the operator's account, once.
    let body = format!(r#"{{"code": "{code}"}}"#);
    let (status, session) = d.http(Via::Tcp, "POST", "/ui/session", None, Some(&body));
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["account"], "local");
    let token = session["token"].as_str().unwrap();
    let (status, list) = d.http(Via::Tcp, "GET", "/v1/sandboxes", Some(token), None);
    assert_eq!(status, 200, "{list}");
    let tokens = d.cairnd(&["token", "ls", "--json"]).json();
    let minted = &tokens.as_array().unwrap()[0];
    assert_eq!(minted["account"], "local", "{tokens}");
    assert!(!minted["expires_at"].is_null(), "{tokens}");
    assert_eq!(minted["role"], "user", "{tokens}");
    let again = d.http(Via::Tcp, "POST", "/ui/session", None, Some(&body));
    assert_error(&again, 401, "unauthenticated", "cairn ui");
    let bad = d.http(
        Via::Tcp,
        "POST",
        "/ui/session",
        None,
        Some(r#"{"code": 1}"#),
    );
    assert_error(&bad, 400, "invalid_argument", "");

    // Codes are made on the unix socket only: a tenant's token cannot make one.
    let alice = d.token("alice");
    let refused = d.http(Via::Tcp, "POST", "/ui/login", Some(&alice), None);
    assert_error(&refused, 403, "forbidden", "unix socket");
    let refused = d.http(Via::Tcp, "POST", "/ui/login", None, None);
    assert_error(&refused, 401, "unauthenticated", "");

    // Without a TCP listener, `cairn ui` says how to start one.
    let local = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    let run = local.cairn(&["ui"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--listen"), "{}", run.stderr);
}

#[test]
fn the_console_works_in_a_real_browser() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import playwright"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "playwright is not installed in {PYTHON}: run scripts/setup.sh (it installs playwright==1.65.2 there)"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium: apt-get install chromium)"
    );
    let d = tcp_daemon();
    let addr = d.tcp.clone().unwrap();
    let url = format!("http://{addr}");
    let alice = d.token("alice");
    let bob = d.token("bob");
    let as_tenant = |token: &str, args: &[&str]| {
        d.cairn_env(args, &[("CAIRN_HOST", &url), ("CAIRN_TOKEN", token)])
            .ok()
    };
    let sbx = as_tenant(
        &alice,
        &[
            "up",
            "--image",
            "base",
            "--runtime",
            "runc",
            "--name",
            "agent-1",
        ],
    );
    let xss = as_tenant(
        &alice,
        &[
            "up",
            "--image",
            "base",
            "--runtime",
            "runc",
            "--workdir",
            "/<img src=x onerror=alert(1)>",
        ],
    );
    let other = as_tenant(&bob, &["up", "--image", "base", "--runtime", "runc"]);
    let login = d.cairn(&["--json", "ui"]).json();
    let shots: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/test_console.py");
    let out = Command::new(PYTHON)
        .arg(&script)
        .env("CAIRN_URL", &url)
        .env("CAIRN_TOKEN", &alice)
        .env("CAIRN_SANDBOX", &sbx)
        .env("CAIRN_XSS_SANDBOX", &xss)
        .env("CAIRN_OTHER", &other)
        .env("CAIRN_LOGIN_URL", login["url"].as_str().unwrap())
        .env("SHOTS", &shots)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("all passed"),
        "the console's browser test failed (screenshots in {}):\n{text}",
        shots.display()
    );
}
