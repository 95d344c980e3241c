//! The engine on plain directories ([`DirStorage`]) and a runtime in memory
//! ([`FakeRuntime`]): what a user sees of sandboxes, snapshots, pauses, recovery and
//! runtime errors, in seconds and without root (scripts/test.sh runs these as `nobody`).
//!
//! Not covered here: anything that runs a command in a sandbox (the fake runs none),
//! `nat` networking (nftables and namespaces need root) and disk limits (btrfs quotas).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_db::Db;
use cairn_engine::{CreateSandbox, Engine, EngineConfig, EngineError, Principal, SnapshotLimits};
use cairn_runtime::{ContainerStatus, Runtime};
use cairn_storage::{Storage, Tree};
use cairn_test_support::{DirStorage, Failure, FakeRuntime};
use cairn_types::{NetworkMode, RuntimeKind, SandboxState};

const ACCOUNT: &str = "local";
const OPERATOR: Principal<'static> = Principal {
    account: ACCOUNT,
    operator: true,
};

/// A data directory, with the fake runtime and storage an engine on it uses.
struct Fixture {
    dir: tempfile::TempDir,
    runtime: Arc<FakeRuntime>,
    storage: Arc<DirStorage>,
}

impl Fixture {
    fn new(runtime: FakeRuntime) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(DirStorage::new(dir.path().join("home/pool")).expect("storage"));
        Fixture {
            dir,
            runtime: Arc::new(runtime),
            storage,
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Where sandbox `id`'s root filesystem is.
    fn root_of(&self, id: &str) -> PathBuf {
        self.storage.path(&Tree::sandbox(id))
    }

    fn config(&self) -> EngineConfig {
        let mut cfg = EngineConfig::new(self.home());
        cfg.default_runtime = RuntimeKind::Runc;
        cfg.disk_quota = false;
        cfg.default_disk_bytes = None;
        // Never the host's real bridge, should a test run as root.
        cfg.bridge = format!("cft{}", std::process::id());
        cfg.snapshot_limits = SnapshotLimits {
            per_sandbox: 2,
            ..SnapshotLimits::default()
        };
        cfg
    }

    /// Opens an engine on the data directory (again: recovery runs each time).
    async fn open(&self) -> Arc<Engine> {
        self.try_open().await.expect("open")
    }

    async fn try_open(&self) -> Result<Arc<Engine>, EngineError> {
        std::fs::create_dir_all(self.home()).expect("home");
        let db = Arc::new(Db::open(&self.home().join("cairn.db")).expect("db"));
        let runtime: Arc<dyn Runtime> = self.runtime.clone();
        Engine::open_with(self.config(), db, self.storage.clone(), vec![runtime]).await
    }

    /// Imports an image named `name` (a root with a /bin/sh) the way the operator does.
    async fn image(&self, engine: &Arc<Engine>, name: &str) {
        let src = self.dir.path().join(format!("image-{name}"));
        write(&src.join("bin/sh"), "#!/bin/true\n");
        write(&src.join("etc/hostname"), "image\n");
        engine
            .import_image_path(
                OPERATOR,
                name,
                src.to_str().expect("utf-8"),
                false,
                cairn_types::ProgressSink::none(),
            )
            .await
            .expect("import");
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn request(name: &str) -> CreateSandbox {
    CreateSandbox {
        image: "base".into(),
        name: Some(name.into()),
        network: Some(NetworkMode::None),
        ..CreateSandbox::default()
    }
}

/// Waits (at most 5 s) until sandbox `name` is in `state`.
async fn wait_for_state(engine: &Engine, name: &str, state: SandboxState) {
    for _ in 0..500 {
        let info = engine
            .inspect_sandbox(ACCOUNT, name)
            .await
            .expect("inspect");
        if info.state == state {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("sandbox {name} never became {state}");
}

#[tokio::test]
async fn a_sandbox_is_created_listed_stopped_started_and_destroyed() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;

    let made = engine
        .create_sandbox(ACCOUNT, &request("web"))
        .await
        .expect("create");
    assert_eq!(made.state, SandboxState::Running);
    assert_eq!(made.name.as_deref(), Some("web"));
    assert_eq!(made.runtime, RuntimeKind::Runc);
    assert_eq!(fx.runtime.status(&made.id), Some(ContainerStatus::Running));
    // Its root is a copy of the image, with its own machine id.
    let root = fx.root_of(&made.id);
    assert!(root.join("bin/sh").is_file(), "{}", root.display());

    let listed = engine.list_sandboxes(ACCOUNT).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, made.id);
    assert!(engine
        .list_sandboxes("someone-else")
        .await
        .expect("list")
        .is_empty());
    let by_name = engine
        .inspect_sandbox(ACCOUNT, "web")
        .await
        .expect("inspect");
    assert_eq!(by_name.id, made.id);

    let stopped = engine.stop_sandbox(ACCOUNT, "web").await.expect("stop");
    assert_eq!(stopped.state, SandboxState::Stopped);
    assert_ne!(fx.runtime.status(&made.id), Some(ContainerStatus::Running));
    let started = engine.start_sandbox(ACCOUNT, "web").await.expect("start");
    assert_eq!(started.state, SandboxState::Running);
    assert_eq!(fx.runtime.status(&made.id), Some(ContainerStatus::Running));

    engine
        .destroy_sandbox(ACCOUNT, "web", true, false)
        .await
        .expect("destroy");
    assert!(engine
        .list_sandboxes(ACCOUNT)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(fx.runtime.status(&made.id), None);
    assert!(!root.exists());
    match engine.inspect_sandbox(ACCOUNT, "web").await {
        Err(EngineError::NotFound(_)) => {}
        other => panic!("a destroyed sandbox is not found: {other:?}"),
    }
}

#[tokio::test]
async fn names_are_unique_per_account_and_a_missing_image_is_refused() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    engine
        .create_sandbox(ACCOUNT, &request("one"))
        .await
        .expect("create");
    match engine.create_sandbox(ACCOUNT, &request("one")).await {
        Err(EngineError::Conflict(m)) => assert!(m.contains("one"), "{m}"),
        other => panic!("a duplicate name is a conflict: {other:?}"),
    }
    assert_eq!(engine.list_sandboxes(ACCOUNT).await.expect("list").len(), 1);
    let mut nothing = request("two");
    nothing.image = "no-such-image".into();
    match engine.create_sandbox(ACCOUNT, &nothing).await {
        Err(EngineError::NotFound(_)) => {}
        other => panic!("an unknown image is not found: {other:?}"),
    }
}

#[tokio::test]
async fn pause_and_resume_change_the_state_and_take_an_automatic_snapshot() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    let made = engine
        .create_sandbox(ACCOUNT, &request("p"))
        .await
        .expect("create");

    let paused = engine
        .pause_sandbox(ACCOUNT, "p", false)
        .await
        .expect("pause");
    assert_eq!(paused.state, SandboxState::Paused);
    assert_eq!(fx.runtime.status(&made.id), Some(ContainerStatus::Paused));
    let snaps = engine
        .list_snapshots(ACCOUNT, "p", true)
        .await
        .expect("snapshots");
    assert_eq!(snaps.len(), 1);
    assert!(snaps[0].auto && !snaps[0].stateful, "{:?}", snaps[0]);

    let resumed = engine.resume_sandbox(ACCOUNT, "p").await.expect("resume");
    assert_eq!(resumed.state, SandboxState::Running);
    assert_eq!(fx.runtime.status(&made.id), Some(ContainerStatus::Running));
    // Only a paused sandbox resumes; a stopped one does not pause.
    engine.stop_sandbox(ACCOUNT, "p").await.expect("stop");
    match engine.pause_sandbox(ACCOUNT, "p", false).await {
        Err(EngineError::Conflict(_)) => {}
        other => panic!("pausing a stopped sandbox is a conflict: {other:?}"),
    }
}

#[tokio::test]
async fn snapshots_are_named_limited_per_sandbox_and_forked() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    let made = engine
        .create_sandbox(ACCOUNT, &request("s"))
        .await
        .expect("create");
    let root = fx.root_of(&made.id);
    write(&root.join("data.txt"), "first");

    let first = engine
        .create_snapshot(ACCOUNT, "s", Some("first"), false)
        .await
        .expect("snapshot");
    assert_eq!(first.name, "first");
    assert_eq!(first.sandbox, made.id);
    match engine
        .create_snapshot(ACCOUNT, "s", Some("first"), false)
        .await
    {
        Err(EngineError::Conflict(m)) => assert!(m.contains("first"), "{m}"),
        other => panic!("a snapshot name is unique per sandbox: {other:?}"),
    }
    let unnamed = engine
        .create_snapshot(ACCOUNT, "s", None, false)
        .await
        .expect("snapshot without a name");
    assert!(unnamed.name.starts_with("20"), "{}", unnamed.name);
    // The limit is 2 per sandbox (see `Fixture::config`).
    match engine
        .create_snapshot(ACCOUNT, "s", Some("third"), false)
        .await
    {
        Err(EngineError::Limit(m)) => assert!(m.contains("limit is 2"), "{m}"),
        other => panic!("a third snapshot is over the limit: {other:?}"),
    }
    // Found by SANDBOX:NAME, forked into a sandbox with the snapshot's files.
    let found = engine
        .inspect_snapshot(ACCOUNT, "s:first")
        .await
        .expect("inspect");
    assert_eq!(found.id, first.id);
    let fork = engine
        .create_sandbox(
            ACCOUNT,
            &CreateSandbox {
                from_snapshot: Some("s:first".into()),
                name: Some("fork".into()),
                ..CreateSandbox::default()
            },
        )
        .await
        .expect("fork");
    let fork_root = fx.root_of(&fork.id);
    assert_eq!(
        std::fs::read_to_string(fork_root.join("data.txt")).expect("read"),
        "first"
    );
    // A snapshot that is deleted makes room for another.
    engine
        .delete_snapshot(ACCOUNT, &unnamed.id)
        .await
        .expect("delete");
    engine
        .create_snapshot(ACCOUNT, "s", Some("third"), false)
        .await
        .expect("room again");
}

#[tokio::test]
async fn a_sandbox_whose_runtime_ends_on_its_own_is_recorded_stopped() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    let made = engine
        .create_sandbox(ACCOUNT, &request("d"))
        .await
        .expect("create");
    fx.runtime.kill_outside(&made.id);
    wait_for_state(&engine, "d", SandboxState::Stopped).await;
    let info = engine.inspect_sandbox(ACCOUNT, "d").await.expect("inspect");
    assert!(info.state_reason.is_some(), "a death says why: {info:?}");
    // It starts again.
    let started = engine.start_sandbox(ACCOUNT, "d").await.expect("start");
    assert_eq!(started.state, SandboxState::Running);
}

#[tokio::test]
async fn recovery_marks_stopped_a_running_sandbox_whose_container_is_gone() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    let gone = engine
        .create_sandbox(ACCOUNT, &request("gone"))
        .await
        .expect("create");
    let kept = engine
        .create_sandbox(ACCOUNT, &request("kept"))
        .await
        .expect("create");
    drop(engine);
    // As after a host reboot for one of them, while cairnd was down.
    fx.runtime.forget(&gone.id);

    let engine = fx.open().await;
    let info = engine
        .inspect_sandbox(ACCOUNT, "gone")
        .await
        .expect("inspect");
    assert_eq!(info.state, SandboxState::Stopped);
    let reason = info.state_reason.unwrap_or_default();
    assert!(reason.contains("cairn start"), "{reason}");
    let info = engine
        .inspect_sandbox(ACCOUNT, "kept")
        .await
        .expect("inspect");
    assert_eq!(info.state, SandboxState::Running);
    assert_eq!(fx.runtime.status(&kept.id), Some(ContainerStatus::Running));
    // A container no row owns is removed.
    engine
        .destroy_sandbox(ACCOUNT, "kept", true, false)
        .await
        .expect("destroy");
    assert_eq!(fx.runtime.status(&kept.id), None);
}

#[tokio::test]
async fn runtime_errors_become_the_engines_own_kinds() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    let made = engine
        .create_sandbox(ACCOUNT, &request("e"))
        .await
        .expect("create");

    fx.runtime.fail_next("pause", Failure::Busy);
    match engine.pause_sandbox(ACCOUNT, "e", false).await {
        Err(EngineError::Busy(m)) => assert!(m.contains("busy"), "{m}"),
        other => panic!("a busy runtime is Busy: {other:?}"),
    }
    // Nothing changed, and the next try works.
    let info = engine.inspect_sandbox(ACCOUNT, "e").await.expect("inspect");
    assert_eq!(info.state, SandboxState::Running);
    engine
        .pause_sandbox(ACCOUNT, "e", false)
        .await
        .expect("pause");

    fx.runtime.fail_next("create_and_start", Failure::Missing);
    match engine.create_sandbox(ACCOUNT, &request("missing")).await {
        Err(EngineError::Unavailable(m)) => assert!(m.contains("install"), "{m}"),
        other => panic!("a missing runtime program is Unavailable: {other:?}"),
    }
    // The failed create left nothing behind.
    let names: Vec<String> = engine
        .list_sandboxes(ACCOUNT)
        .await
        .expect("list")
        .into_iter()
        .filter_map(|s| s.name)
        .collect();
    assert_eq!(names, ["e"]);
    assert_eq!(fx.runtime.status(&made.id), Some(ContainerStatus::Paused));
}

#[tokio::test]
async fn a_stateful_snapshot_needs_a_runtime_that_checkpoints() {
    let without = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = without.open().await;
    without.image(&engine, "base").await;
    engine
        .create_sandbox(ACCOUNT, &request("m"))
        .await
        .expect("create");
    assert!(engine
        .create_snapshot(ACCOUNT, "m", Some("mem"), true)
        .await
        .is_err());

    let with = Fixture::new(FakeRuntime::new(RuntimeKind::Runc).with_checkpoints());
    let engine = with.open().await;
    with.image(&engine, "base").await;
    engine
        .create_sandbox(ACCOUNT, &request("m"))
        .await
        .expect("create");
    let snap = engine
        .create_snapshot(ACCOUNT, "m", Some("mem"), true)
        .await
        .expect("stateful snapshot");
    assert!(snap.stateful);
}

#[tokio::test]
async fn restoring_a_snapshot_discards_what_was_written_since() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    let made = engine
        .create_sandbox(ACCOUNT, &request("r"))
        .await
        .expect("create");
    write(&fx.root_of(&made.id).join("data.txt"), "first");
    let snap = engine
        .create_snapshot(ACCOUNT, "r", Some("before"), false)
        .await
        .expect("snapshot");
    write(&fx.root_of(&made.id).join("data.txt"), "second");
    write(&fx.root_of(&made.id).join("new.txt"), "new");

    let restored = engine
        .restore_snapshot(ACCOUNT, &snap.id, None, false)
        .await
        .expect("restore");
    assert_eq!(restored.state, SandboxState::Running);
    assert_eq!(fx.runtime.status(&made.id), Some(ContainerStatus::Running));
    let root = fx.root_of(&made.id);
    assert_eq!(
        std::fs::read_to_string(root.join("data.txt")).expect("read"),
        "first"
    );
    assert!(!root.join("new.txt").exists());
}

#[tokio::test]
async fn memory_released_at_pause_comes_back_at_resume_and_in_forks() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc).with_checkpoints());
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    let made = engine
        .create_sandbox(ACCOUNT, &request("mem"))
        .await
        .expect("create");

    let paused = engine
        .pause_sandbox(ACCOUNT, "mem", true)
        .await
        .expect("pause --release-memory");
    assert_eq!(paused.state, SandboxState::Paused);
    assert!(paused.memory_released, "{paused:?}");
    // Its processes live in the checkpoint only.
    assert_eq!(fx.runtime.status(&made.id), None);
    assert!(fx
        .runtime
        .calls()
        .contains(&format!("checkpoint {}", made.id)));
    let resumed = engine.resume_sandbox(ACCOUNT, "mem").await.expect("resume");
    assert_eq!(resumed.state, SandboxState::Running);
    assert!(!resumed.memory_released);
    assert_eq!(fx.runtime.status(&made.id), Some(ContainerStatus::Running));
    assert_eq!(
        fx.runtime.calls().last(),
        Some(&format!("restore {}", made.id))
    );

    // A stateful snapshot's fork resumes its processes (a restore, not a boot).
    engine
        .create_snapshot(ACCOUNT, "mem", Some("live"), true)
        .await
        .expect("stateful snapshot");
    let fork = engine
        .create_sandbox(
            ACCOUNT,
            &CreateSandbox {
                from_snapshot: Some("mem:live".into()),
                name: Some("mem-fork".into()),
                ..CreateSandbox::default()
            },
        )
        .await
        .expect("fork");
    assert_eq!(fork.state, SandboxState::Running);
    assert_eq!(fx.runtime.status(&fork.id), Some(ContainerStatus::Running));
    let asked: Vec<String> = fx
        .runtime
        .calls()
        .into_iter()
        .filter(|c| c.ends_with(&fork.id))
        .collect();
    assert_eq!(asked, [format!("restore {}", fork.id)]);
}

#[tokio::test]
async fn recovery_reconciles_containers_with_their_rows() {
    let fx = Fixture::new(FakeRuntime::new(RuntimeKind::Runc));
    let engine = fx.open().await;
    fx.image(&engine, "base").await;
    let mut ids = Vec::new();
    for name in ["frozen", "thawed", "ended"] {
        let made = engine
            .create_sandbox(ACCOUNT, &request(name))
            .await
            .expect("create");
        ids.push(made.id);
    }
    engine
        .pause_sandbox(ACCOUNT, "thawed", false)
        .await
        .expect("pause");
    drop(engine);
    // While cairnd was down: a snapshot's pause window cut short (row running, container
    // paused), a resume cut short (row paused, container running), a runtime that ended,
    // and a container no sandbox owns.
    let rt: &dyn Runtime = &*fx.runtime;
    rt.pause(&ids[0]).await.expect("freeze");
    rt.resume(&ids[1]).await.expect("thaw");
    fx.runtime.kill_outside(&ids[2]);
    let stray = cairn_types::SandboxId::generate().to_string();
    let stray = stray.as_str();
    let bundle = fx.dir.path().join("stray");
    write(&bundle.join("config.json"), "{}");
    rt.create_and_start(stray, &bundle).await.expect("stray");

    let engine = fx.open().await;
    let state = |id: &str| fx.runtime.status(id);
    let info = engine
        .inspect_sandbox(ACCOUNT, "frozen")
        .await
        .expect("inspect");
    assert_eq!(info.state, SandboxState::Running);
    assert_eq!(state(&ids[0]), Some(ContainerStatus::Running));
    let info = engine
        .inspect_sandbox(ACCOUNT, "thawed")
        .await
        .expect("inspect");
    assert_eq!(info.state, SandboxState::Paused);
    assert_eq!(state(&ids[1]), Some(ContainerStatus::Paused));
    let info = engine
        .inspect_sandbox(ACCOUNT, "ended")
        .await
        .expect("inspect");
    assert_eq!(info.state, SandboxState::Stopped);
    assert!(info.state_reason.is_some(), "{info:?}");
    assert_eq!(state(&ids[2]), None);
    assert_eq!(state(stray), None);
}
