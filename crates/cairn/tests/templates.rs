//! Templates (issue 21): `cairn template build` from a Cairnfile (RUN, COPY, ENV, WORKDIR,
//! USER) run step by step in a build sandbox and cached by its inputs, `template create
//! --from-snapshot`, `up --template` (a fork of the template's snapshot), a stateful
//! template whose background process runs in every sandbox, a failing step that leaves
//! nothing, COPY that cannot leave its context, the snapshot a template holds, and another
//! account that can neither see, use nor remove a template.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use cairn_test_support::{both_runtimes, Daemon};

fn daemon() -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    )
}

/// A context directory with a file, a directory, and a Cairnfile using every instruction.
fn context(dir: &Path, last_run: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("src/sub")).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from the context\n").unwrap();
    std::fs::write(dir.join("src/sub/a.py"), "print('a')\n").unwrap();
    let file = dir.join("Cairnfile");
    std::fs::write(
        &file,
        format!(
            "# a template for the tests\nFROM base\nRUN mkdir -p /opt/app \\\n    && echo built > /opt/app/state\nCOPY hello.txt /opt/app/\nCOPY src /opt/app/src\nENV GREETING=\"hi there\" MODE=test\nWORKDIR /opt/app\nRUN chown 1000:1000 /opt/app\nUSER 1000:1000\nRUN [\"sh\", \"-c\", \"echo $GREETING > greeting; pwd > where\"]\nRUN {last_run}\n"
        ),
    )
    .unwrap();
    file
}

fn build(
    d: &Daemon,
    name: &str,
    file: &Path,
    ctx: &Path,
    runtime: &str,
) -> cairn_test_support::Run {
    d.cairn(&[
        "template",
        "build",
        name,
        "-f",
        file.to_str().unwrap(),
        ctx.to_str().unwrap(),
        "--runtime",
        runtime,
    ])
}

fn cached_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains(" cached: ")).count()
}

fn running_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains(" running: ")).count()
}

/// The steps' files, environment and working directory are in a sandbox of the template;
/// a rebuild after changing only the last RUN runs only that step.
fn build_copies_files_and_sets_defaults_and_rebuilds_only_what_changed(runtime: &str) {
    let d = daemon();
    let ctx = d.scratch().join("ctx");
    let file = context(&ctx, "echo one > /opt/app/last");
    let r = build(&d, "app", &file, &ctx, runtime);
    assert_eq!(r.ok(), "app", "{}", r.stderr);
    assert_eq!(cached_lines(&r.stderr), 0, "{}", r.stderr);

    let id = d.cairn(&["up", "--template", "app"]).ok();
    let out = d
        .cairn(&[
            "exec",
            &id,
            "cat /opt/app/state /opt/app/hello.txt /opt/app/src/sub/a.py greeting where last; echo \"$MODE|$GREETING|$(pwd)|$(id -u)|$(stat -c %u greeting)\"",
        ])
        .ok();
    assert_eq!(
        out,
        "built\nhello from the context\nprint('a')\nhi there\n/opt/app\none\ntest|hi there|/opt/app|1000|1000"
    );
    let t = d.cairn(&["template", "inspect", "app", "--json"]).json();
    assert_eq!(t["user"], "1000:1000");
    assert_eq!(t["workdir"], "/opt/app");
    assert_eq!(t["runtime"], runtime);
    let ls = d.cairn(&["template", "ls"]).ok();
    assert!(ls.contains("app") && ls.contains("NAME"), "{ls}");

    // Root when asked.
    assert_eq!(d.cairn(&["exec", "-u", "0", &id, "id -u"]).ok(), "0");

    // Only the last RUN changed: steps 1..9 cached, step 10 runs.
    context(&ctx, "echo two > /opt/app/last");
    let r = build(&d, "app", &file, &ctx, runtime);
    assert_eq!(r.ok(), "app", "{}", r.stderr);
    assert_eq!(cached_lines(&r.stderr), 9, "{}", r.stderr);
    assert_eq!(running_lines(&r.stderr), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("step 10/10 running: RUN echo two"),
        "{}",
        r.stderr
    );
    let id2 = d.cairn(&["up", "--template", "app"]).ok();
    assert_eq!(d.cairn(&["exec", &id2, "cat /opt/app/last"]).ok(), "two");
    // The first sandbox is a fork of the old snapshot: unchanged.
    assert_eq!(d.cairn(&["exec", &id, "cat /opt/app/last"]).ok(), "one");

    // A changed COPY source invalidates that step and the later ones.
    std::fs::write(ctx.join("hello.txt"), "changed\n").unwrap();
    let r = build(&d, "app", &file, &ctx, runtime);
    assert_eq!(r.ok(), "app", "{}", r.stderr);
    assert_eq!(cached_lines(&r.stderr), 2, "{}", r.stderr);
    let id3 = d.cairn(&["up", "--template", "app"]).ok();
    assert_eq!(
        d.cairn(&["exec", &id3, "cat /opt/app/hello.txt"]).ok(),
        "changed"
    );

    // No build sandbox is left; removing the template deletes its build steps.
    let names = d.cairn(&["ls", "--json"]).json();
    assert!(
        !names.to_string().contains("build-app"),
        "the build sandbox is left: {names}"
    );
    for s in [&id, &id2, &id3] {
        d.cairn(&["destroy", s, "--force"]).ok();
    }
    d.cairn(&["template", "rm", "app"]).ok();
    d.cairn(&["template", "prune"]).ok();
    let left = d.cairn(&["snapshot", "list", "--json"]).json();
    assert_eq!(left.as_array().unwrap().len(), 0, "{left}");
}

/// A failing RUN stops the build with its step, exit code and output; no template and no
/// sandbox is left.
fn a_failing_step_leaves_nothing(runtime: &str) {
    let d = daemon();
    let ctx = d.scratch().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let file = ctx.join("Cairnfile");
    std::fs::write(
        &file,
        "FROM base\nRUN echo first\nRUN echo oops >&2; exit 7\nRUN echo never\n",
    )
    .unwrap();
    let r = build(&d, "bad", &file, &ctx, runtime);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("step 3/4 failed with exit code 7"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("oops"), "{}", r.stderr);
    assert!(!r.stderr.contains("never\n"), "{}", r.stderr);
    let ls = d.cairn(&["template", "ls", "--json"]).json();
    assert_eq!(ls.as_array().unwrap().len(), 0, "{ls}");
    let sandboxes = d.cairn(&["ls", "--json"]).json();
    assert_eq!(sandboxes.as_array().unwrap().len(), 0, "{sandboxes}");
    let r = d.cairn(&["up", "--template", "bad", "--json"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);
    // The finished steps are cached; a prune deletes them (no template uses them).
    let pruned = d.cairn(&["template", "prune", "--json"]).json();
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 2, "{pruned}");
}

/// A template built with --stateful starts every sandbox with the process the Cairnfile
/// started in the background already running.
fn a_stateful_template_starts_with_its_processes_running(runtime: &str) {
    let d = daemon();
    let ctx = d.scratch().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let file = ctx.join("Cairnfile");
    std::fs::write(
        &file,
        "FROM base\nRUN setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done' >/dev/null 2>&1 &\nRUN sleep 0.5; test -s /tmp/count\n",
    )
    .unwrap();
    let r = d.cairn(&[
        "template",
        "build",
        "warm",
        "-f",
        file.to_str().unwrap(),
        ctx.to_str().unwrap(),
        "--runtime",
        runtime,
        "--stateful",
    ]);
    assert_eq!(r.ok(), "warm", "{}", r.stderr);
    assert_eq!(
        d.cairn(&["template", "inspect", "warm", "--json"]).json()["stateful"],
        true
    );
    for _ in 0..2 {
        let id = d.cairn(&["up", "--template", "warm"]).ok();
        let a: u64 = d
            .cairn(&["exec", &id, "cat /tmp/count"])
            .ok()
            .parse()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(600));
        let b: u64 = d
            .cairn(&["exec", &id, "cat /tmp/count"])
            .ok()
            .parse()
            .unwrap();
        assert!(
            b > a,
            "the loop does not run in the template's sandbox: {a} then {b}"
        );
        d.cairn(&["destroy", &id, "--force"]).ok();
    }
}

/// COPY of `..`, or of a link that leads out of the context, is refused before anything runs.
#[test]
fn copy_cannot_leave_the_context() {
    let d = daemon();
    let ctx = d.scratch().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(d.scratch().join("secret"), "host secret\n").unwrap();
    std::os::unix::fs::symlink(d.scratch().join("secret"), ctx.join("link")).unwrap();
    for (copy, says) in [
        ("COPY ../secret /x", "leaves the context"),
        ("COPY link /x", "leads out of the context"),
        ("COPY /../secret /x", "leaves the context"),
    ] {
        let file = ctx.join("Cairnfile");
        std::fs::write(&file, format!("FROM base\n{copy}\n")).unwrap();
        let r = build(&d, "esc", &file, &ctx, "runc");
        assert_eq!(r.code, 1, "{copy}: {r:?}");
        assert!(r.stderr.contains(says), "{copy}: {}", r.stderr);
    }
    assert_eq!(
        d.cairn(&["ls", "--json"]).json().as_array().unwrap().len(),
        0
    );
    assert_eq!(
        d.cairn(&["template", "ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// A build sandbox an interrupted build left is destroyed by the next build of that name; a
/// sandbox of the user's that merely has the name is left alone (the build is refused).
#[test]
fn a_build_cleans_what_an_interrupted_one_left() {
    let d = daemon();
    let ctx = d.scratch().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let file = ctx.join("Cairnfile");
    std::fs::write(&file, "FROM base\nWORKDIR /w/x\n").unwrap();
    let left = d
        .cairn(&[
            "up",
            "--image",
            "base",
            "--runtime",
            "runc",
            "--name",
            "build-x",
        ])
        .ok();
    let r = build(&d, "x", &file, &ctx, "runc");
    assert_eq!(r.ok(), "x", "{}", r.stderr);
    assert!(
        r.stderr.contains("left by an interrupted build"),
        "{}",
        r.stderr
    );
    let r = d.cairn(&["inspect", &left]);
    assert_eq!(r.code, 1, "{r:?}");
    let id = d.cairn(&["up", "--template", "x"]).ok();
    assert_eq!(d.cairn(&["exec", &id, "pwd"]).ok(), "/w/x");

    let mine = d
        .cairn(&[
            "up",
            "--image",
            "base",
            "--runtime",
            "runc",
            "--name",
            "build-y",
        ])
        .ok();
    d.cairn(&["snapshot", "create", &mine, "--name", "keep"])
        .ok();
    std::fs::write(&file, "FROM base\nRUN echo y > /y\n").unwrap();
    let r = build(&d, "y", &file, &ctx, "runc");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is no build sandbox"), "{}", r.stderr);
    d.cairn(&["inspect", &mine]).ok();
}

/// `template create --from-snapshot`; its snapshot cannot be deleted while the template
/// holds it (409 naming the template and the fix); `template rm` keeps a snapshot the user
/// took; another account can neither see, use nor remove the template.
#[test]
fn templates_from_snapshots_are_held_and_private() {
    let d = Daemon::start_with(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        true,
    );
    d.import_base();
    let id = d
        .cairn(&[
            "up",
            "--image",
            "base",
            "--runtime",
            "runc",
            "--name",
            "src",
        ])
        .ok();
    d.cairn(&["exec", &id, "echo saved > /root/f"]).ok();
    let snap = d
        .cairn(&["snapshot", "create", &id, "--name", "ready"])
        .ok();
    let t = d
        .cairn(&[
            "template",
            "create",
            "py",
            "--from-snapshot",
            "src:ready",
            "--env",
            "A=1",
            "--json",
        ])
        .json();
    assert_eq!(t["snapshot"], snap.as_str());
    let fork = d.cairn(&["up", "--template", "py"]).ok();
    assert_eq!(
        d.cairn(&["exec", &fork, "cat /root/f; echo $A"]).ok(),
        "saved\n1"
    );
    let r = d.cairn(&["template", "create", "py", "--from-snapshot", &snap]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);

    let r = d.cairn(&["snapshot", "delete", &snap, "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("\"conflict\""), "{}", r.stderr);
    assert!(
        r.stderr.contains("template 'py'") && r.stderr.contains("cairn template rm py"),
        "{}",
        r.stderr
    );

    // Bob: not found everywhere, never named.
    let bob = d.token("bob");
    let tcp = format!("http://{}", d.tcp.as_ref().unwrap());
    let as_bob = |args: &[&str]| d.cairn_env(args, &[("CAIRN_HOST", &tcp), ("CAIRN_TOKEN", &bob)]);
    assert_eq!(
        as_bob(&["template", "ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    for args in [
        vec!["template", "inspect", "py", "--json"],
        vec!["template", "rm", "py", "--json"],
        vec!["up", "--template", "py", "--json"],
    ] {
        let r = as_bob(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains("not_found"), "{args:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains(&snap),
            "{args:?} names the snapshot: {}",
            r.stderr
        );
    }
    let r = as_bob(&[
        "template",
        "create",
        "mine",
        "--from-snapshot",
        &snap,
        "--json",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);
    // Bob's template of the same name is his own.
    let bobs_sbx = as_bob(&["up", "--image", "base", "--runtime", "runc"]).ok();
    as_bob(&["snapshot", "create", &bobs_sbx, "--name", "b"]).ok();
    as_bob(&["template", "create", "py", "--from-snapshot", "b"]).ok();
    assert_ne!(
        as_bob(&["template", "inspect", "py", "--json"]).json()["snapshot"],
        snap.as_str()
    );

    // Removing the template keeps the snapshot the user took; then it can be deleted.
    d.cairn(&["template", "rm", "py"]).ok();
    assert_eq!(
        as_bob(&["template", "ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    d.cairn(&["snapshot", "inspect", &snap]).ok();
    d.cairn(&["snapshot", "delete", &snap]).ok();
}

both_runtimes!(
    build_copies_files_and_sets_defaults_and_rebuilds_only_what_changed,
    a_failing_step_leaves_nothing,
    a_stateful_template_starts_with_its_processes_running,
);

/// The seeds' workflow, as `examples/up-from-template.sh` runs it: a stateful template built
/// from a Cairnfile (the second build all cached), three sandboxes from it, each with the
/// template's files, environment, working directory and running "kernel".
#[test]
fn the_up_from_template_example_runs() {
    let d = Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    );
    let example = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/up-from-template.sh");
    let r = d.script(&example, &["runc", "base"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let greeted: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("hello from the template, "))
        .collect();
    assert_eq!(greeted.len(), 3, "{}", r.stdout);
    let hosts: std::collections::HashSet<&&str> = greeted.iter().collect();
    assert_eq!(hosts.len(), 3, "each sandbox is its own: {}", r.stdout);
    assert_eq!(r.stdout.matches("numpy-ish 1.0").count(), 3, "{}", r.stdout);
    assert_eq!(
        r.stdout.matches("cwd /work, kernel ticks ").count(),
        3,
        "{}",
        r.stdout
    );
}
